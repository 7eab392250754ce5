import json
import subprocess
import sys

import pandas as pd
import pytest

from paretolab.data.store import CampaignLockedError, CampaignStore, StoreError

META = {"objectives": [["f", "max", None], ["g", "min", "mg"]]}


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
    store = CampaignStore.create(tmp_path / "c", {**META, "config_hash": "abc"})
    store.append("batches", _batch(0, ["1,2", "3,4"]))
    store.append("batches", _batch(1, ["5,6"]))
    assert store.read("batches")["candidate"].tolist() == ["1,2", "3,4", "5,6"]
    store.close()
    with CampaignStore.open(tmp_path / "c") as again:
        assert again.read("batches")["round"].tolist() == [0, 0, 1]
        assert again.meta["config_hash"] == "abc"
        assert again.read("observations").empty


def test_missing_columns_are_rejected(tmp_path):
    with CampaignStore.create(tmp_path / "c", META) as store:
        with pytest.raises(ValueError, match="lack columns"):
            store.append("batches", pd.DataFrame({"round": [0]}))


def test_second_runner_is_refused(tmp_path):
    store = CampaignStore.create(tmp_path / "c", META)
    with pytest.raises(CampaignLockedError, match="in use by another process"):
        CampaignStore.open(tmp_path / "c")
    code = f"from data.store import CampaignStore; CampaignStore.open({str(tmp_path / 'c')!r})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0 and "in use by another process" in other.stderr
    store.close()
    CampaignStore.open(tmp_path / "c").close()


def test_read_only_open_cannot_write(tmp_path):
    CampaignStore.create(tmp_path / "c", META).close()
    with CampaignStore.open(tmp_path / "c", lock=False) as reader:
        with pytest.raises(StoreError, match="read-only"):
            reader.append("batches", _batch(0, ["1,1"]))


def test_truncated_part_is_detected_and_left_alone(tmp_path):
    with CampaignStore.create(tmp_path / "c", META) as store:
        store.append("batches", _batch(0, ["1,2"]))
    part = next((tmp_path / "c" / "tables" / "batches").glob("*.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=f"{part.name}: corrupted or truncated"):
        CampaignStore.open(tmp_path / "c")
    assert part.read_bytes() == data[: len(data) // 2]


def test_missing_part_is_detected(tmp_path):
    with CampaignStore.create(tmp_path / "c", META) as store:
        store.append("batches", _batch(0, ["1,2"]))
        store.append("batches", _batch(1, ["2,2"]))
    sorted((tmp_path / "c" / "tables" / "batches").glob("*.parquet"))[0].unlink()
    with pytest.raises(StoreError, match="missing"):
        CampaignStore.open(tmp_path / "c")


def test_unfinished_write_is_discarded_on_open(tmp_path):
    with CampaignStore.create(tmp_path / "c", META) as store:
        store.append("batches", _batch(0, ["1,2"]))
    leftover = tmp_path / "c" / "tables" / "batches" / ".00000001.parquet.tmp"
    leftover.write_bytes(b"half a parquet file")
    with CampaignStore.open(tmp_path / "c") as store:
        assert len(store.read("batches")) == 1
    assert not leftover.exists()


def test_corrupted_meta_and_foreign_directory(tmp_path):
    with pytest.raises(StoreError, match="does not hold a campaign"):
        CampaignStore.open(tmp_path)
    CampaignStore.create(tmp_path / "c", META).close()
    (tmp_path / "c" / "campaign.json").write_text("{not json")
    with pytest.raises(StoreError, match="unreadable campaign meta"):
        CampaignStore.open(tmp_path / "c")


def _snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _three_rounds(root):
    with CampaignStore.create(root, {**META, "name": "t"}) as store:
        for r in range(3):
            store.append("batches", _batch(r, [f"{r},1", f"{r},2"]))
        store.update_meta(ref_point=[0.0, -5.0])
    return sorted((root / "tables" / "batches").glob("*.parquet"))


def test_deleting_the_lock_note_does_not_let_a_second_runner_in(tmp_path):
    store = CampaignStore.create(tmp_path / "c", META)
    note = tmp_path / "c" / "campaign.lock"
    assert f"pid {__import__('os').getpid()}" in note.read_text()
    note.unlink()  # a user tidying up
    code = f"from paretolab.data.store import CampaignStore; CampaignStore.open({str(tmp_path / 'c')!r})"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert other.returncode != 0 and "in use by another process" in other.stderr
    store.close()
    CampaignStore.open(tmp_path / "c").close()


def test_the_lock_note_is_gone_after_a_clean_release_and_a_left_one_holds_nothing(tmp_path):
    CampaignStore.create(tmp_path / "c", META).close()
    note = tmp_path / "c" / "campaign.lock"
    assert not note.exists()
    note.write_text("pid 999999 on somewhere since 2020-01-01\n")  # left by a killed process
    with CampaignStore.open(tmp_path / "c"):
        assert "pid 999999" not in note.read_text()


@pytest.mark.parametrize("newest", [1, 2])
def test_deleted_newest_parts_are_refused_naming_the_part_and_left_alone(tmp_path, newest):
    parts = _three_rounds(tmp_path / "c")
    for part in parts[-newest:]:
        part.unlink()
    before = _snapshot(tmp_path / "c")
    for lock in (True, False):  # `run` and `status` alike
        with pytest.raises(StoreError, match=rf"{parts[-newest].name}: missing: manifest.jsonl records it"):
            CampaignStore.open(tmp_path / "c", lock=lock)
    assert _snapshot(tmp_path / "c") == before


def test_a_missing_middle_part_is_refused_by_a_reader_too(tmp_path):
    parts = _three_rounds(tmp_path / "c")
    parts[1].unlink()
    with pytest.raises(StoreError, match=rf"{parts[1].name}: missing"):
        CampaignStore.open(tmp_path / "c", lock=False)


def test_one_flipped_byte_in_a_part_is_refused(tmp_path):
    parts = _three_rounds(tmp_path / "c")
    data = bytearray(parts[0].read_bytes())
    data[len(data) // 3] ^= 0x01
    parts[0].write_bytes(bytes(data))
    before = _snapshot(tmp_path / "c")
    with pytest.raises(StoreError, match=rf"{parts[0].name}: corrupted or truncated store file: its"):
        CampaignStore.open(tmp_path / "c", lock=False)
    assert _snapshot(tmp_path / "c") == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("ref_point", [0.5, -5.0]), ("objectives", [["f", "min", None], ["g", "min", "mg"]])],
)
def test_an_edited_identity_field_of_campaign_json_is_refused_naming_it(tmp_path, field, value):
    _three_rounds(tmp_path / "c")
    path = tmp_path / "c" / "campaign.json"
    meta = json.loads(path.read_text())
    meta[field] = value
    path.write_text(json.dumps(meta, indent=2))
    before = _snapshot(tmp_path / "c")
    for lock in (True, False):
        with pytest.raises(StoreError, match=rf"campaign.json: edited by hand \(changed: {field}\)"):
            CampaignStore.open(tmp_path / "c", lock=lock)
    assert _snapshot(tmp_path / "c") == before


def test_bookkeeping_fields_may_change_and_identity_fields_are_fixed_once_set(tmp_path):
    _three_rounds(tmp_path / "c")
    with CampaignStore.open(tmp_path / "c") as store:
        store.update_meta(mlflow_run_id="abc")
        with pytest.raises(StoreError, match="ref_point is fixed once set"):
            store.update_meta(ref_point=[1.0, 1.0])
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        assert store.meta["mlflow_run_id"] == "abc" and store.meta["ref_point"] == [0.0, -5.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a JSON object of campaign fields, found list"),
        ('{"schema_version": 1}', "lacks 'objectives'"),
        ('{"schema_version": 1, "objectives": [["f"]]}', "has malformed 'objectives'"),
    ],
)
def test_a_campaign_json_of_the_wrong_shape_is_one_clear_error(tmp_path, text, message):
    CampaignStore.create(tmp_path / "c", META).close()
    (tmp_path / "c" / "campaign.json").write_text(text)
    with pytest.raises(StoreError, match=message):
        CampaignStore.open(tmp_path / "c", lock=False)


def test_a_deleted_manifest_is_refused(tmp_path):
    _three_rounds(tmp_path / "c")
    (tmp_path / "c" / "manifest.jsonl").unlink()
    with pytest.raises(StoreError, match=r"manifest\.jsonl: missing"):
        CampaignStore.open(tmp_path / "c")


def test_a_part_renamed_but_not_recorded_before_a_crash_is_kept(tmp_path):
    """The one window a crash leaves: the part is complete in place, its manifest line not
    written, or written in part. The writer keeps the part and records it."""
    parts = _three_rounds(tmp_path / "c")
    manifest = tmp_path / "c" / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    last_part_line = max(i for i, line in enumerate(lines) if b'"part":2' in line)
    kept = b"".join(lines[:last_part_line]) + lines[last_part_line][:7]  # torn mid-line
    manifest.write_bytes(kept)
    with CampaignStore.open(tmp_path / "c", lock=False) as reader:  # a reader sees the record
        assert reader.read("batches")["round"].tolist() == [0, 0, 1, 1]
    with CampaignStore.open(tmp_path / "c") as writer:
        assert writer.read("batches")["round"].tolist() == [0, 0, 1, 1, 2, 2]
    assert manifest.read_bytes().endswith(b"\n") and parts[-1].exists()
    with CampaignStore.open(tmp_path / "c", lock=False) as reader:
        assert len(reader.read("batches")) == 6


def test_a_store_from_before_the_manifest_gets_one_and_is_checked_from_then_on(tmp_path):
    parts = _three_rounds(tmp_path / "c")
    (tmp_path / "c" / "manifest.jsonl").unlink()
    meta_path = tmp_path / "c" / "campaign.json"
    meta = json.loads(meta_path.read_text())
    del meta["identity_sha256"]
    meta_path.write_text(json.dumps(meta))
    with CampaignStore.open(tmp_path / "c", lock=False) as reader:  # read as before
        assert len(reader.read("batches")) == 6
    CampaignStore.open(tmp_path / "c").close()  # the writer records the manifest
    assert "identity_sha256" in json.loads(meta_path.read_text())
    parts[-1].unlink()
    with pytest.raises(StoreError, match=r"missing: manifest\.jsonl records it"):
        CampaignStore.open(tmp_path / "c", lock=False)
