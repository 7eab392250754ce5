"""A round's generators update side by side (mapped Prefect tasks on the thread runner)
and ask exactly what they ask one after another (the Python API); when one fails, those
before it are kept and a rerun asks what an uninterrupted run asks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)

import paretolab as pl
from paretolab.data.results import ID_COLUMN
from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.oracles.synthetic import BraninCurrinOracle
from tests.helpers.configs import write_config

TINY = {"pool_size": 32, "steps_per_round": 30, "trajectories_per_step": 16, "hidden": 16, "layers": 2}
GENERATORS = [{"kind": "mogfn", **TINY}, {"kind": "opgfn", **TINY}, {"kind": "genetic", "pool_size": 32}]
TRUTH = BraninCurrinOracle(GridSpace(2, 16))


def _batches(directory: Path) -> pd.DataFrame:
    with CampaignStore.open(directory, lock=False) as store:
        batches = store.read("batches")
    return batches[["round", "position", "candidate", "generator"]].reset_index(drop=True)


def test_generators_update_side_by_side_and_ask_what_they_ask_one_after_another(tmp_path, prefect_api):
    config = write_config(
        tmp_path / "c.yaml", rounds=2, initial_design=8, batch_size=4, generators=GENERATORS
    )
    state = run_campaign(str(config), str(tmp_path / "flow"), return_state=True)
    assert state.is_completed()

    with get_client(sync_client=True) as client:
        rounds = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
        updates = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[r.id for r in rounds]))
        )
    by_round: dict[str, dict[str, object]] = {}
    for run in updates:
        if run.name.startswith("update-"):
            assert run.state.is_completed()
            by_round.setdefault(str(run.flow_run_id), {})[run.name.split("-")[1]] = run
    assert len(by_round) == 2  # rounds 1 and 2, each with one task per generator
    for runs in by_round.values():
        assert set(runs) == {"mogfn", "opgfn", "genetic"}
        mogfn, opgfn = runs["mogfn"], runs["opgfn"]
        # side by side: each started before the other ended
        assert mogfn.start_time < opgfn.end_time and opgfn.start_time < mogfn.end_time

    campaign = pl.Campaign.create(
        tmp_path / "api",
        space=pl.GridSpace(dims=2, levels=16),
        objectives=[pl.Objective("branin", "min"), pl.Objective("currin", "min")],
        ref_point=list(TRUTH.ref_point),
        generator=GENERATORS,
        batch_size=4,
        seed=3,
        initial_design=8,
        acquisition={"kind": "qlognehvi", "mc_samples": 32},
    )
    for _ in range(3):
        batch = campaign.ask()
        values = TRUTH(batch["candidate"].tolist()).values.numpy()
        campaign.tell(
            pd.DataFrame({ID_COLUMN: batch[ID_COLUMN], "branin": values[:, 0], "currin": values[:, 1]})
        )
    flow, api = _batches(tmp_path / "flow"), _batches(tmp_path / "api")
    with CampaignStore.open(tmp_path / "flow", lock=False) as store:
        proposals = store.read("proposals")
    assert proposals.groupby("round")["generator"].apply(set).tolist() == [{"mogfn", "opgfn", "genetic"}] * 2
    pd.testing.assert_frame_equal(flow, api)


def test_a_failing_generator_keeps_the_ones_before_it_and_a_rerun_asks_the_same(
    tmp_path, prefect_api, monkeypatch
):
    from paretolab.models.generators.genetic import GeneticGenerator

    generators = [{"kind": "random", "pool_size": 32}, {"kind": "genetic", "pool_size": 32}, GENERATORS[0]]
    config = write_config(
        tmp_path / "c.yaml", rounds=1, initial_design=8, batch_size=4, generators=generators
    )
    run_campaign(str(config), str(tmp_path / "baseline"))

    update = GeneticGenerator.update

    def broken(self, *args, **kwargs):
        raise RuntimeError("the genetic generator broke")

    monkeypatch.setattr(GeneticGenerator, "update", broken)
    state = run_campaign(str(config), str(tmp_path / "broken"), return_state=True)
    assert state.is_failed()
    with CampaignStore.open(tmp_path / "broken", lock=False) as store:
        proposals = store.read("proposals")
    # random, before the failing one, is stored; mogfn, after it, is trained again on rerun
    assert set(proposals.loc[proposals["round"] == 1, "generator"]) == {"random"}

    monkeypatch.setattr(GeneticGenerator, "update", update)
    run_campaign(str(config), str(tmp_path / "broken"))
    pd.testing.assert_frame_equal(_batches(tmp_path / "broken"), _batches(tmp_path / "baseline"))
