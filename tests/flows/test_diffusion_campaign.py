"""The shipped diffusion campaign through the real flow (Prefect, MLflow on disk, BoTorch
fits) and through ask/tell, shrunk to run in seconds; everything else is the shipped file."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

import paretolab as pl
from paretolab.data.molecules import nci_seed_path
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from tests.conftest import ROOT

SMALL = {"initial_design": 12, "batch_size": 4}
TINY_DIFFUSION = {
    "pool_size": 48,
    "steps_per_round": 8,
    "warm_start_steps": 8,
    "hidden": 16,
    "heads": 2,
    "ensemble": 2,
    "guidance_steps": 4,
}


def _shrunk(tmp_path, rounds: int) -> str:
    config = yaml.safe_load((ROOT / "campaigns" / "ngram_diffusion.yaml").read_text())
    assert [g["kind"] for g in config["generators"]] == ["diffusion", "genetic"]
    config.update(SMALL, rounds=rounds)
    config["generators"] = [config["generators"][0] | TINY_DIFFUSION, {"kind": "genetic", "pool_size": 48}]
    config["acquisition"]["mc_samples"] = 32
    path = tmp_path / f"ngram_diffusion_{rounds}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.slow
def test_the_shipped_diffusion_campaign_runs_logs_and_resumes_through_the_flow(tmp_path, prefect_api):
    straight = tmp_path / "straight"
    result = run_campaign(_shrunk(tmp_path, 2), str(straight))
    assert len(result["hypervolume"]) == 3

    with CampaignStore.open(straight, lock=False) as store:
        proposals, training, batches = store.read("proposals"), store.read("training"), store.read("batches")
        run_id = store.meta["mlflow_run_id"]
    diffusion = proposals[proposals["generator"] == "diffusion"]
    assert diffusion["round"].nunique() == 2 and diffusion["canonical"].notna().all()
    assert sorted((straight / "checkpoints" / "diffusion").iterdir())[-1].name == "round_0002.pt"
    steps = TINY_DIFFUSION["steps_per_round"]
    assert (
        len(training[training["metric"] == "denoiser_loss"]) == 2 * steps + TINY_DIFFUSION["warm_start_steps"]
    )

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    logged = client.get_run(run_id).data.metrics
    for key in (
        "generator/diffusion/denoiser_loss",
        "generator/diffusion/value_spearman",
        "generator/diffusion/guidance_acceptance",
        "batch_share/diffusion",
    ):
        assert key in logged, key
    assert len(client.get_metric_history(run_id, "generator/diffusion/guidance_acceptance")) == 2
    assert len(client.get_metric_history(run_id, "generator/diffusion/train/denoiser_loss")) == 24
    shares = client.get_metric_history(run_id, "batch_share/diffusion")
    picked = (
        batches[batches["round"] > 0].groupby("round")["generator"].apply(lambda g: (g == "diffusion").mean())
    )
    assert [m.value for m in sorted(shares, key=lambda m: m.step)] == pytest.approx(picked.tolist())

    # stop after round 1, continue in a fresh process setup: round 2 is the uninterrupted one
    resumed = tmp_path / "resumed"
    run_campaign(_shrunk(tmp_path, 1), str(resumed))
    run_campaign(_shrunk(tmp_path, 2), str(resumed))
    with CampaignStore.open(resumed, lock=False) as store:
        again, proposed_again = store.read("batches"), store.read("proposals")
    pd.testing.assert_frame_equal(
        again.drop(columns="metrics").reset_index(drop=True),
        batches.drop(columns="metrics").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(proposed_again.reset_index(drop=True), proposals.reset_index(drop=True))


@pytest.mark.slow
@pytest.mark.parametrize("space", ["sequence", "molecule"])
def test_a_diffusion_campaign_asks_and_tells_the_same_batches_for_the_same_seed(tmp_path, space):
    if space == "sequence":
        made = pl.SequenceSpace(alphabet="ACDEFG", min_length=6, max_length=10)
    else:
        smiles = [line.split()[0] for line in nci_seed_path().read_text().splitlines()[:200]]
        (tmp_path / "seeds.smi").write_text("\n".join(smiles) + "\n")
        made = pl.MoleculeSpace(seeds=str(tmp_path / "seeds.smi"), max_length=40)

    def value(candidate: str) -> list[float]:  # any deterministic two-objective assay
        return [float(sum(map(ord, candidate)) % 17), float(len(candidate) % 5 + candidate.count("C"))]

    asked = []
    for name in ("a", "b"):
        campaign = pl.Campaign.create(
            tmp_path / name,
            space=made,
            objectives=[pl.Objective("f", "max"), pl.Objective("g", "min")],
            generator=[{"kind": "diffusion", **TINY_DIFFUSION}, {"kind": "genetic", "pool_size": 32}],
            batch_size=4,
            seed=5,
            initial_design=10,
            acquisition={"kind": "sampled_hvi", "mc_samples": 16},
        )
        batches = []
        for _ in range(3):
            batch = campaign.ask()
            values = [value(c) for c in batch["candidate"]]
            campaign.tell(
                batch[[batch.columns[0]]].assign(f=[v[0] for v in values], g=[v[1] for v in values])
            )
            batches.append(batch.drop(columns=batch.columns[0]))
        with CampaignStore.open(campaign.directory, lock=False) as store:
            proposals = store.read("proposals")
        assert set(proposals["generator"]) == {"diffusion", "genetic"}
        assert (proposals.loc[proposals["generator"] == "diffusion", "round"].nunique()) == 2
        asked.append(batches)
    for mine, theirs in zip(asked[0], asked[1], strict=True):
        pd.testing.assert_frame_equal(mine, theirs)

    # infilling with the trained generator of a reopened campaign: only the given positions change
    reopened = pl.Campaign.open(tmp_path / "a")
    measured = reopened.measurements()["candidate"].tolist()[:3]
    where = [[0, 1], [2], [1, 3]]
    for guided in (True, False):
        filled = reopened.infill(measured, where, guided=guided)
        assert filled == reopened.infill(measured, where, guided=guided)  # reproducible
        if space == "sequence":
            for before, after, positions in zip(measured, filled, where, strict=True):
                assert all(
                    a == b for i, (a, b) in enumerate(zip(before, after, strict=True)) if i not in positions
                )
        else:  # SELFIES positions of the canonical SMILES; no position: the same molecule back
            assert len(filled) == 3 and all(isinstance(f, str) and f for f in filled)
            assert reopened.infill(measured, [[], [], []], guided=guided) == measured
    with pytest.raises(ValueError, match="not members of the space"):
        reopened.infill(["not a candidate!"], [[0]])
