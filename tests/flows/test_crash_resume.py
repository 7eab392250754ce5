"""Kill a real campaign process (SIGKILL) at many points, resume it, check nothing is lost or paid twice.

Each run is a separate ``paretolab run`` process talking to the session's Prefect API;
the test oracle logs every candidate it is asked to measure to a file before measuring.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from data.store import CampaignStore
from tests.conftest import ROOT
from tests.helpers.configs import write_config
from tests.helpers.oracles import CALL_LOG

pytestmark = pytest.mark.slow

PARETOLAB = str(Path(sys.executable).with_name("paretolab"))
KILL_POINTS = [
    "evaluate.before_oracle:1",  # request recorded, oracle not called yet
    "evaluate.after_oracle:2",  # round 1 measured by the oracle, not yet recorded
    "store.before_rename:5",  # round 0's observations in a temporary file, not yet renamed
    "store.appended.batches:2",  # round 1 batch selected, not yet measured
    "store.appended.observations:2",  # round 1 recorded, round summary not yet written
    "store.appended.rounds:1",  # round 0 closed, not yet published to MLflow
    "store.appended.proposals:3",  # between the two generators of round 2
]

RESULTS_LOST = {"evaluate.after_oracle:2", "store.before_rename:5"}
"""Kills after the oracle answered but before its results were durably recorded."""


def _run(config: Path, campaign: Path, api: str, calls: Path, kill_at: str | None = None):
    env = {**os.environ, "PREFECT_API_URL": api, "PYTHONPATH": str(ROOT), CALL_LOG: str(calls)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("PARETOLAB_KILL_AT", None)
    if kill_at:
        env["PARETOLAB_KILL_AT"] = kill_at
    return subprocess.run(
        [PARETOLAB, "run", str(config), "--dir", str(campaign)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=campaign.parent,
    )


def _tables(campaign: Path) -> dict[str, pd.DataFrame]:
    with CampaignStore.open(campaign, lock=False) as store:
        return {t: store.read(t) for t in ("proposals", "batches", "observations", "requests", "rounds")}


def _science(tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    observations = tables["observations"][["round", "candidate", "valid", "branin", "currin"]]
    return (
        tables["batches"].drop(columns="metrics").sort_values(["round", "position"]).reset_index(drop=True),
        observations.sort_values(["round", "candidate"]).reset_index(drop=True),
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "crash.yaml"
    return write_config(
        path,
        oracle={"target": "tests.helpers.oracles:CountingOracle"},
        initial_design=5,
        rounds=2,
        batch_size=3,
    )


@pytest.fixture(scope="module")
def baseline(config, prefect_api, tmp_path_factory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("baseline")
    done = _run(config, root / "campaign", prefect_api, root / "calls.txt")
    assert done.returncode == 0, done.stderr
    return _tables(root / "campaign")


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_kill_and_resume(kill_at, config, baseline, prefect_api, tmp_path):
    campaign, calls = tmp_path / "campaign", tmp_path / "calls.txt"
    killed = _run(config, campaign, prefect_api, calls, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    if kill_at.startswith("store.before_rename"):
        assert list((campaign / "tables" / "observations").glob(".*.parquet.tmp"))
    before = _tables(campaign)
    resumed = _run(config, campaign, prefect_api, calls)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = _tables(campaign)

    # Everything recorded before the kill is still there, unchanged.
    kept = before["observations"].merge(after["observations"], how="left", indicator=True)
    assert (kept["_merge"] == "both").all()

    # Each candidate measured exactly once; the final store equals an uninterrupted run.
    assert after["observations"]["candidate"].is_unique
    batches, observations = _science(after)
    base_batches, base_observations = _science(baseline)
    pd.testing.assert_frame_equal(observations, base_observations)
    pd.testing.assert_frame_equal(batches, base_batches)
    pd.testing.assert_frame_equal(after["proposals"], baseline["proposals"])  # none twice
    # every round reports its proxy metrics, even one that was cut off and resumed
    for row in after["rounds"].itertuples():
        metrics = json.loads(row.metrics)
        assert "time/science" in metrics and (row.round == 0 or "pool_size" in metrics), row.round

    # Every oracle call was in the ledger before it was made; only what the kill
    # interrupted was asked again, as the next attempt.
    asked = Counter(calls.read_text().split())
    requested = Counter(after["requests"]["candidate"])
    assert set(asked) == set(after["observations"]["candidate"])
    for candidate, n in asked.items():
        assert n <= requested[candidate], (candidate, n)
    if kill_at in RESULTS_LOST:
        assert max(asked.values()) == 2 and (after["requests"]["attempt"] == 2).any()
    else:
        assert max(asked.values()) == 1
    if kill_at.startswith("evaluate.before_oracle"):
        assert (after["requests"]["attempt"] == 2).any()

    # MLflow has each round exactly once, in the campaign's one run.
    with CampaignStore.open(campaign, lock=False) as store:
        meta = store.meta
    history = MlflowClient(meta["mlflow_tracking_uri"]).get_metric_history(
        meta["mlflow_run_id"], "hypervolume"
    )
    assert sorted(m.step for m in history) == [0, 1, 2]
