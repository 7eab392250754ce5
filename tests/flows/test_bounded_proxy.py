"""A campaign past ``proxy.max_points`` through the real flow (Prefect, MLflow on disk,
BoTorch fits): the proxy is fitted on a bounded subset, recorded and loadable."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

import paretolab
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.config import load_config
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
