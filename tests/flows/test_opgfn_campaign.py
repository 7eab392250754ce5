"""The shipped OP-GFN campaigns (n-gram, molecules) through the real flow: Prefect, MLflow
on disk, RDKit, BoTorch fits. Budgets are cut so they run in seconds; everything else is
the shipped file."""

from __future__ import annotations

import pytest
import yaml
from mlflow.tracking import MlflowClient

from paretolab.data.molecules import nci_seed_path
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from tests.conftest import ROOT

SMALL = {"initial_design": 10, "rounds": 2, "batch_size": 4}
SMALL_OPGFN = {"pool_size": 24, "steps_per_round": 6, "trajectories_per_step": 8, "hidden": 16, "layers": 2}


def _shrunk(tmp_path, name: str, **space) -> str:
    config = yaml.safe_load((ROOT / "campaigns" / f"{name}.yaml").read_text())
    assert config["generators"][0]["kind"] == "opgfn"
    config.update(SMALL, generators=[config["generators"][0] | SMALL_OPGFN])
    config["space"].update(space)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ngram_opgfn", "molecules_opgfn"])
def test_shipped_opgfn_campaign_runs_through_the_flow(tmp_path, prefect_api, name):
    space = {}
    if name.startswith("molecules"):  # 400 NCI molecules as seeds instead of all 5,000
        seeds = tmp_path / "seeds.smi"
        seeds.write_text("\n".join(nci_seed_path().read_text().splitlines()[:400]) + "\n")
        space = {"seeds": str(seeds)}
    directory = tmp_path / "campaign"
    result = run_campaign(_shrunk(tmp_path, name, **space), str(directory))
    assert len(result["hypervolume"]) == 3

    with CampaignStore.open(directory, lock=False) as store:
        proposals, training = store.read("proposals"), store.read("training")
        run_id = store.meta["mlflow_run_id"]
    opgfn = proposals[proposals["generator"] == "opgfn"]
    assert len(opgfn) > 0 and opgfn["round"].nunique() == 2
    assert len(training[training["metric"] == "loss"]) == 2 * SMALL_OPGFN["steps_per_round"]
    assert sorted((directory / "checkpoints" / "opgfn").iterdir())[-1].name == "round_0002.pt"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(client.get_metric_history(run_id, "generator/opgfn/train/loss")) == 12
