"""A round's mapped tasks on a local Dask cluster (prefect-dask), run by `paretolab run` as a
user would: oracle chunks, pool-scoring chunks and the generators' updates run on the
workers, the same seed gives the same campaign as the default thread runner, and Dask
workers killed right after measuring a chunk (before its result is collected, so Dask runs
the finished task again) never make the oracle charge for a candidate twice."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from paretolab.data.store import CampaignStore
from tests.conftest import ROOT
from tests.helpers.configs import write_config
from tests.helpers.oracles import CHARGE_LOG

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


GENERATORS = [
    {"kind": "random", "pool_size": 64},
    {"kind": "genetic", "pool_size": 64},
    {"kind": "mogfn", "pool_size": 32, "steps_per_round": 10, "trajectories_per_step": 16, "hidden": 16},
]


def _run(
    tmp_path: Path, api: str, name: str, task_runner: dict, kill: str | None = None
) -> tuple[Path, list[str]]:
    config = write_config(
        tmp_path / f"{name}.yaml",
        name=name,
        oracle={"target": "tests.helpers.oracles:ChargingOracle", "params": {"delay": 0.3}},
        initial_design=8,
        batch_size=6,
        rounds=2,
        generators=GENERATORS,
        runtime={"task_runner": task_runner | {"score_chunk": 48, "generator_updates": "runner"}},
    )
    charges = tmp_path / f"{name}.charges"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PARETOLAB_KILL"))}
    env.update(
        {
            CHARGE_LOG: str(charges),
            "PYTHONPATH": str(ROOT),  # the Dask workers import the test oracle
            "PREFECT_API_URL": api,
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        }
    )
    if kill:
        env["PARETOLAB_KILL_AT"] = kill
    campaign = tmp_path / name
    done = subprocess.run(
        [str(BIN / "paretolab"), "run", str(config), "--dir", str(campaign)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return campaign, charges.read_text().split("\n")[:-1]


def _tables(campaign: Path):
    with CampaignStore.open(campaign, lock=False) as store:
        return store.read("batches"), store.read("observations"), store.read("requests")


def _task_runs(name: str) -> Counter[str]:
    """How many task runs of each name the campaign ``name``'s rounds ran (and completed)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterParentFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        (campaign,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=name)))
        rounds = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[campaign.id]))
        )
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[r.id for r in rounds]))
        )
    assert all(t.state.is_completed() for t in tasks if t.name.startswith(("update-", "score_chunk")))
    return Counter(t.name if t.name.startswith("update-") else t.name.rsplit("-", 1)[0] for t in tasks)


def test_dask_workers_measure_the_same_campaign_and_a_killed_worker_never_charges_twice(
    tmp_path, prefect_api
):
    threads, thread_charges = _run(tmp_path, prefect_api, "threads", {"kind": "threads"})
    # every worker process dies right after the receipt of its 2nd chunk is written: its
    # result is lost and Dask runs that finished chunk again on a fresh worker
    dask, dask_charges = _run(
        tmp_path,
        prefect_api,
        "daskrun",
        {"kind": "dask", "workers": 2, "oracle_chunk": 2},
        kill="oracle_chunk.receipt_written:2",
    )
    batches, observations, requests = _tables(dask)
    t_batches, t_observations, _ = _tables(threads)

    charged = Counter(line.split()[0] for line in dask_charges)
    assert sorted(charged) == sorted(observations["candidate"]) and set(charged.values()) == {1}
    assert len(requests) == len(observations) == 20 and observations["candidate"].is_unique
    # the chunks ran on the workers, and killed ones were replaced: more than 2 processes
    assert len({line.split()[1] for line in dask_charges}) >= 3
    # the same seed gives the same campaign as the default runner, to the last value
    assert batches["candidate"].tolist() == t_batches["candidate"].tolist()
    for column in ("candidate", "branin", "currin"):
        assert observations[column].tolist() == t_observations[column].tolist()
    assert len(thread_charges) == 20
    # the rounds' generators updated side by side, as tasks (on the workers with Dask, MOGFN
    # continuing in round 2 from the state that came back from round 1's worker); the pool was
    # scored in chunks on the Dask workers (6 picks, each over every chunk of the pool), and
    # here in turn on threads
    updates = {"update-random": 2, "update-genetic": 2, "update-mogfn": 2}
    on_dask, on_threads = _task_runs("daskrun"), _task_runs("threads")
    pools = [json.loads(batches.loc[batches["round"] == r, "metrics"].iloc[0])["pool_size"] for r in (1, 2)]
    assert {k: on_dask[k] for k in updates} == updates == {k: on_threads[k] for k in updates}
    assert on_dask["score_chunk"] == sum(6 * math.ceil(p / 48) for p in pools) and min(pools) > 96
    assert on_threads["score_chunk"] == 0
    assert not (dask / "oracle_receipts").exists() or not any((dask / "oracle_receipts").iterdir())
