"""A MOGFN-PC campaign through the real flow: Prefect, MLflow on disk, BoTorch fits."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.config import load_config
from tests.helpers.configs import write_config

MOGFN = {
    "kind": "mogfn",
    "pool_size": 48,
    "steps_per_round": 12,
    "trajectories_per_step": 16,
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


@pytest.mark.parametrize("name", ["hypergrid_mogfn", "ngram_mogfn"])
def test_shipped_mogfn_campaigns_are_valid(name):
    config = load_config(Path(__file__).resolve().parents[2] / "campaigns" / f"{name}.yaml")
    assert config.generators[0].kind == "mogfn"
