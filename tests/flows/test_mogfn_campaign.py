"""A MOGFN-PC campaign through the real flow: Prefect, MLflow on disk, BoTorch fits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import paretolab
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup
from paretolab.flows.steps import round_rng
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
    "local_share": 0.5,  # half of each pool near the best measured points (a grid: a DAG)
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

    # what the campaign learned, loaded back from the MLflow run alone
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    generator = paretolab.load_generator(run_id, tracking_uri=uri)
    assert generator.name == "mogfn" and generator.trained_round == 2
    stored = torch.load(straight / "checkpoints" / "mogfn" / "round_0002.pt", weights_only=True)
    loaded = generator.state_dict()
    assert _same(loaded, stored)
    setup = build_setup(load_config(_config(tmp_path, 2)))
    twin = setup.generators[0]
    twin.load_state_dict(stored)
    assert generator.propose(16, torch.Generator().manual_seed(5)) == twin.propose(
        16, torch.Generator().manual_seed(5)
    )
    # with the round's random stream it proposes what it proposed in round 2, local samples included
    with CampaignStore.open(straight, lock=False) as store:
        proposals = store.read("proposals")
    recorded = proposals[(proposals["round"] == 2) & (proposals["generator"] == "mogfn")][
        "candidate"
    ].tolist()
    again = generator.propose(MOGFN["pool_size"], round_rng(setup.config.seed, 2, "propose-mogfn"))
    assert again == recorded and generator.proposal_metrics["local_share"] == 0.5
    assert paretolab.load_generator(run_id, 1, tracking_uri=uri).trained_round == 1
    with pytest.raises(paretolab.SharedModelError, match="it has rounds 1, 2"):
        paretolab.load_generator(run_id, 7, tracking_uri=uri)
    # the proxy of round 2 predicts the round's batch exactly as it did when choosing it
    proxy = paretolab.load_proxy(run_id, 2, tracking_uri=uri)
    with CampaignStore.open(straight, lock=False) as store:
        predicted = store.read("predictions")
    predicted = predicted[predicted["round"] == 2].reset_index(drop=True)
    again = proxy.predict(predicted["candidate"].drop_duplicates().tolist())
    assert again["mean"].to_numpy() == pytest.approx(predicted["mean"].to_numpy(), rel=1e-6, abs=1e-9)
    assert again["std"].to_numpy() == pytest.approx(predicted["std"].to_numpy(), rel=1e-6, abs=1e-9)

    # stop after round 1, then continue in a fresh setup: the warm start comes from the
    # stored checkpoint, so round 2 is exactly the uninterrupted one
    resumed = tmp_path / "resumed"
    run_campaign(str(_config(tmp_path, 1)), str(resumed))
    run_campaign(str(_config(tmp_path, 2)), str(resumed))
    with CampaignStore.open(resumed, lock=False) as store:
        again = store.read("batches")
    assert again["candidate"].tolist() == batches["candidate"].tolist()


def _same(a, b):
    """Nested state dicts hold equal values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a.cpu(), b.cpu())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", ["hypergrid_mogfn", "ngram_mogfn"])
def test_shipped_mogfn_campaigns_are_valid(name):
    config = load_config(Path(__file__).resolve().parents[2] / "campaigns" / f"{name}.yaml")
    assert config.generators[0].kind == "mogfn"
