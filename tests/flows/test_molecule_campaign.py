"""A molecular campaign through the real flow: Prefect, MLflow on disk, RDKit, BoTorch."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from paretolab.data.molecules import nci_seed_path
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.campaign_dir import CampaignMismatchError, prepare
from paretolab.flows.config import ConfigError
from tests.helpers.configs import write_config

OBJECTIVES = [
    {"name": "qed", "property": "qed"},
    {"name": "sa", "property": "sa"},
    {"name": "similarity", "property": "similarity", "targets": ["celecoxib"]},
]


def _molecule_config(tmp_path, seeds="seeds.csv", objectives=OBJECTIVES):
    return write_config(
        tmp_path / "molecules.yaml",
        name="molecules_test",
        space={
            "kind": "molecule",
            "max_length": 40,
            "seeds": seeds,
            "filters": {
                "elements": ["C", "N", "O", "S", "F", "Cl", "Br"],
                "neutral": True,
                "no_radicals": True,
            },
        },
        oracle={"name": "molecular", "params": {"objectives": objectives}},
        ref_point=[0.0, 10.0, 0.0],
        initial_design=12,
        rounds=2,
        batch_size=4,
        generators=[
            {"kind": "genetic", "pool_size": 64},
            {
                "kind": "mogfn",
                "pool_size": 16,
                "steps_per_round": 4,
                "trajectories_per_step": 8,
                "hidden": 16,
                "layers": 2,
            },
        ],
    )


@pytest.fixture
def seeds_csv(tmp_path):
    """A user's seed file next to the config: 300 NCI molecules and two broken rows."""
    smiles = [line.split()[0] for line in nci_seed_path().read_text().splitlines()[:300]]
    rows = pd.DataFrame({"id": range(302), "smiles": [*smiles, "C1CC", "not-a-molecule"]})
    rows.to_csv(tmp_path / "seeds.csv", index=False)
    return tmp_path / "seeds.csv"


def test_molecular_campaign_runs_and_logs_pareto_molecules(tmp_path, prefect_api, seeds_csv, caplog):
    campaign = tmp_path / "campaign"
    with caplog.at_level("WARNING", logger="paretolab.data.molecules"):
        result = run_campaign(str(_molecule_config(tmp_path)), str(campaign))
    assert "row 301: 'C1CC'" in caplog.text and "row 302: 'not-a-molecule'" in caplog.text
    assert len(result["hypervolume"]) == 3 and result["hypervolume"][0] > 0

    with CampaignStore.open(campaign, lock=False) as store:
        observations, batches, proposals = (
            store.read("observations"),
            store.read("batches"),
            store.read("proposals"),
        )
        run_id = store.meta["mlflow_run_id"]
    assert len(observations) == 12 + 2 * 4 and observations["valid"].all()
    assert observations["candidate"].is_unique  # one canonical SMILES per molecule
    assert set(batches.loc[batches["round"] > 0, "generator"]) <= {"genetic", "mogfn"}
    assert set(proposals["generator"]) == {"genetic", "mogfn"}
    assert (observations["sa"].between(1, 10)).all() and (observations["qed"].between(0, 1)).all()

    assert prepare(_molecule_config(tmp_path), None, False).setup.proxy_kernel == "minmax"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    metrics = client.get_run(run_id).data.metrics
    assert metrics["proxy/spearman"] == metrics["proxy/spearman"]  # held-out metrics were computed
    artifacts = {a.path for a in client.list_artifacts(run_id, "pareto")}
    for round_ in range(3):
        assert f"pareto/molecules_round_{round_:04d}.png" in artifacts
        assert f"pareto/front_round_{round_:04d}.json" in artifacts
    grid = Image.open(client.download_artifacts(run_id, "pareto/molecules_round_0002.png", str(tmp_path)))
    assert grid.size[0] >= 300
    front = json.loads(
        open(client.download_artifacts(run_id, "pareto/front_round_0002.json", str(tmp_path))).read()
    )
    assert front["columns"] == ["round", "candidate", "qed", "sa", "similarity"] and front["data"]

    # an edited seed file changes the SELFIES alphabet: resuming would misread stored states
    pd.DataFrame({"smiles": ["CCO", "c1ccccc1", "CC(=O)O"]}).to_csv(seeds_csv, index=False)
    with pytest.raises(CampaignMismatchError, match=r"token vocabulary changed .*gone: "):
        prepare(_molecule_config(tmp_path), str(campaign), False)


def test_molecule_space_config_errors_name_the_field(tmp_path, seeds_csv):
    with pytest.raises(ConfigError, match=r"space\.seeds: seed file .*missing\.csv does not exist"):
        prepare(_molecule_config(tmp_path, seeds="missing.csv"), None, False)
    (tmp_path / "nocol.csv").write_text("name\naspirin\n")
    with pytest.raises(ConfigError, match=r"space\.seeds: .*no SMILES column"):
        prepare(_molecule_config(tmp_path, seeds="nocol.csv"), None, False)
    with pytest.raises(ConfigError, match=r"proxy\.kernel: minmax needs count or bit features"):
        prepare(write_config(tmp_path / "grid.yaml", proxy={"kernel": "minmax"}), None, False)
    config = _molecule_config(tmp_path, objectives=[{"name": "logp", "property": "logp"}])
    with pytest.raises(ConfigError, match="say whether logp is maximized or minimized"):
        prepare(config, None, False)
