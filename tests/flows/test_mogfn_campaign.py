"""A MOGFN-PC campaign through the real flow: Prefect, MLflow on disk, BoTorch fits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from data.store import CampaignStore
from flows.campaign import run_campaign
from flows.config import load_config
from tests.conftest import ROOT
from tests.helpers.configs import write_config

MOGFN = {
    "kind": "mogfn",
    "pool_size": 48,
    "steps_per_round": 12,
    "batch_size": 16,
    "hidden": 16,
    "layers": 2,
    "thermometer_bins": 8,
    "replay_fraction": 0.25,
}


def _config(tmp_path, rounds):
    return write_config(
        tmp_path / f"mogfn_{rounds}.yaml",
        space={"kind": "grid", "dims": 2, "levels": 12},
        oracle={"name": "hypergrid", "params": {"functions": ["branin", "currin"]}},
        rounds=rounds,
        generators=[MOGFN],
    )


def test_mogfn_campaign_logs_training_curves_and_resumes_from_checkpoints(tmp_path, prefect_api):
    straight = tmp_path / "straight"
    result = run_campaign(str(_config(tmp_path, 2)), str(straight))
    assert len(result["hypervolume"]) == 3

    with CampaignStore.open(straight, lock=False) as store:
        batches, training = store.read("batches"), store.read("training")
        run_id = store.meta["mlflow_run_id"]
    assert set(batches.loc[batches["round"] > 0, "generator"]) == {"mogfn"}
    assert sorted((straight / "checkpoints" / "mogfn").iterdir())[-1].name == "round_0002.pt"
    assert len(training[training["metric"] == "loss"]) == 2 * 12

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    curve = client.get_metric_history(run_id, "generator/mogfn/train/loss")
    assert [m.step for m in curve] == list(range(24))  # steps counted across rounds
    assert client.get_metric_history(run_id, "generator/mogfn/log_z")

    # stop after round 1, then continue in a fresh setup: the warm start comes from the
    # stored checkpoint, so round 2 is exactly the uninterrupted one
    resumed = tmp_path / "resumed"
    run_campaign(str(_config(tmp_path, 1)), str(resumed))
    run_campaign(str(_config(tmp_path, 2)), str(resumed))
    with CampaignStore.open(resumed, lock=False) as store:
        again = store.read("batches")
    assert again["candidate"].tolist() == batches["candidate"].tolist()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, prefect_api) -> Path:
    """The two-round MOGFN campaign run straight through, once for the kill tests."""
    root = tmp_path_factory.mktemp("uninterrupted")
    run_campaign(str(_config(root, 2)), str(root / "campaign"))
    return root / "campaign"


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at",
    [
        "store.checkpoint_saved:2",  # round 1 trained and stored, nothing proposed yet
        "store.appended.training:2",  # round 2 trained, curves stored, nothing proposed yet
        "store.appended.proposals:2",  # round 2 proposed, batch not selected yet
    ],
)
def test_mogfn_campaign_killed_mid_round_resumes_exactly(tmp_path, prefect_api, uninterrupted, kill_at):
    config = _config(tmp_path, 2)
    killed = tmp_path / "killed"
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [str(Path(sys.executable).with_name("paretolab")), "run", str(config), "--dir", str(killed)]
    died = subprocess.run(
        command, env={**env, "PARETOLAB_KILL_AT": kill_at}, capture_output=True, timeout=300
    )
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with CampaignStore.open(uninterrupted, lock=False) as a, CampaignStore.open(killed, lock=False) as b:
        assert b.read("batches")["candidate"].tolist() == a.read("batches")["candidate"].tolist()
        assert b.read("observations")["candidate"].tolist() == a.read("observations")["candidate"].tolist()


@pytest.mark.parametrize("name", ["hypergrid_mogfn", "ngram_mogfn"])
def test_shipped_mogfn_campaigns_are_valid(name):
    config = load_config(Path(__file__).resolve().parents[2] / "campaigns" / f"{name}.yaml")
    assert config.generators[0].kind == "mogfn"
