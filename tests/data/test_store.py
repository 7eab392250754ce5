import subprocess
import sys

import pandas as pd
import pytest

from paretolab.data.store import CampaignLockedError, CampaignStore, StoreError


def _batch(round_, candidates):
    return pd.DataFrame(
        {
            "round": round_,
            "position": range(len(candidates)),
            "candidate": candidates,
            "generator": "random",
            "acquisition_value": 0.5,
            "metrics": "{}",
        }
    )


def test_append_read_and_reopen(tmp_path):
    store = CampaignStore.create(tmp_path / "c", {"config_hash": "abc"})
    store.append("batches", _batch(0, ["1,2", "3,4"]))
    store.append("batches", _batch(1, ["5,6"]))
    assert store.read("batches")["candidate"].tolist() == ["1,2", "3,4", "5,6"]
    store.close()
    with CampaignStore.open(tmp_path / "c") as again:
        assert again.read("batches")["round"].tolist() == [0, 0, 1]
        assert again.meta["config_hash"] == "abc"
        assert again.read("observations").empty


def test_missing_columns_are_rejected(tmp_path):
    with CampaignStore.create(tmp_path / "c", {}) as store:
        with pytest.raises(ValueError, match="lack columns"):
            store.append("batches", pd.DataFrame({"round": [0]}))


def test_second_runner_is_refused(tmp_path):
    store = CampaignStore.create(tmp_path / "c", {})
    with pytest.raises(CampaignLockedError, match="in use by another process"):
        CampaignStore.open(tmp_path / "c")
    code = f"from data.store import CampaignStore; CampaignStore.open({str(tmp_path / 'c')!r})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0 and "in use by another process" in other.stderr
    store.close()
    CampaignStore.open(tmp_path / "c").close()


def test_read_only_open_cannot_write(tmp_path):
    CampaignStore.create(tmp_path / "c", {}).close()
    with CampaignStore.open(tmp_path / "c", lock=False) as reader:
        with pytest.raises(StoreError, match="read-only"):
            reader.append("batches", _batch(0, ["1,1"]))


def test_truncated_part_is_detected_and_left_alone(tmp_path):
    with CampaignStore.create(tmp_path / "c", {}) as store:
        store.append("batches", _batch(0, ["1,2"]))
    part = next((tmp_path / "c" / "tables" / "batches").glob("*.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=f"{part.name}: corrupted or truncated"):
        CampaignStore.open(tmp_path / "c")
    assert part.read_bytes() == data[: len(data) // 2]


def test_missing_part_is_detected(tmp_path):
    with CampaignStore.create(tmp_path / "c", {}) as store:
        store.append("batches", _batch(0, ["1,2"]))
        store.append("batches", _batch(1, ["2,2"]))
    sorted((tmp_path / "c" / "tables" / "batches").glob("*.parquet"))[0].unlink()
    with pytest.raises(StoreError, match="missing"):
        CampaignStore.open(tmp_path / "c")


def test_unfinished_write_is_discarded_on_open(tmp_path):
    with CampaignStore.create(tmp_path / "c", {}) as store:
        store.append("batches", _batch(0, ["1,2"]))
    leftover = tmp_path / "c" / "tables" / "batches" / ".00000001.parquet.tmp"
    leftover.write_bytes(b"half a parquet file")
    with CampaignStore.open(tmp_path / "c") as store:
        assert len(store.read("batches")) == 1
    assert not leftover.exists()


def test_corrupted_meta_and_foreign_directory(tmp_path):
    with pytest.raises(StoreError, match="does not hold a campaign"):
        CampaignStore.open(tmp_path)
    CampaignStore.create(tmp_path / "c", {}).close()
    (tmp_path / "c" / "campaign.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable campaign meta"):
        CampaignStore.open(tmp_path / "c")
