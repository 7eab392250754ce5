"""A campaign past ``proxy.max_points`` through the real flow (Prefect, MLflow on disk,
BoTorch fits): the proxy is fitted on a bounded subset, recorded and loadable."""

from __future__ import annotations

import torch
from mlflow.tracking import MlflowClient

import paretolab
from paretolab.data.dataset import Dataset
from paretolab.data.pareto import pareto_mask
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.config import load_config
from paretolab.flows.steps import _baseline
from paretolab.models.proxies.gp import fit_gp_proxy, training_inputs
from tests.helpers.configs import write_config


def test_a_campaign_past_max_points_fits_a_bounded_proxy_and_records_it(tmp_path, prefect_api):
    path = write_config(tmp_path / "bounded.yaml", rounds=3, batch_size=4, proxy={"max_points": 8})
    result = run_campaign(str(path), str(tmp_path / "campaign"))
    assert len(result["hypervolume"]) == 4
    with CampaignStore.open(tmp_path / "campaign", lock=False) as store:
        run_id = store.meta["mlflow_run_id"]
        observations = store.read("observations")
        batches = store.read("batches")
    assert len(batches) == 6 + 3 * 4 and batches["candidate"].is_unique
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    n_train = {m.step: m.value for m in client.get_metric_history(run_id, "n_train")}
    n_fitted = {m.step: m.value for m in client.get_metric_history(run_id, "proxy/n_fitted")}
    assert n_train == {1: 6, 2: 10, 3: 14} and n_fitted == {2: 8, 3: 8}  # round 1 fits all 6
    # the stored proxy of round 3 is the subset model, rebuilt from the MLflow run alone
    proxy = paretolab.load_proxy(run_id, 3, tracking_uri=uri)
    measured = observations[observations["round"] < 3]
    assert len(proxy.candidates) == 8 and set(proxy.candidates) <= set(measured["candidate"])
    config = load_config(path)
    assert config.proxy.max_points == 8
    assert (
        config.identity_hash() != load_config(write_config(tmp_path / "auto.yaml", rounds=3)).identity_hash()
    )


def test_past_max_points_the_qlognehvi_baseline_holds_the_subset_and_the_whole_front():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(120, 2, generator=g, dtype=torch.double)
    Y = torch.stack([X[:, 0], 1 - X[:, 0] + 0.01 * X[:, 1]], -1)  # many points on the front
    dataset = Dataset([str(i) for i in range(120)], X, Y)
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=g, max_points=10)
    baseline = _baseline(model, dataset)
    rows = {tuple(r) for r in baseline.tolist()}
    assert {tuple(r) for r in X[pareto_mask(Y)].tolist()} <= rows
    assert {tuple(r) for r in training_inputs(model).tolist()} <= rows
    assert int(pareto_mask(Y).sum()) > 5  # more front points than the subset's best half
    whole, _ = fit_gp_proxy(X[:8], Y[:8], holdout_fraction=0.0, rng=g, max_points=10)
    assert torch.equal(_baseline(whole, Dataset([str(i) for i in range(8)], X[:8], Y[:8])), X[:8])
