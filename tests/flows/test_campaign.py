"""End to end through a real Prefect API, a real MLflow store on disk and real BoTorch fits."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter, defaultdict

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from typer.testing import CliRunner

from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.campaign_dir import CampaignMismatchError
from paretolab.flows.cli import app
from paretolab.flows.commands import command
from paretolab.flows.engine import NotEnoughDataError
from paretolab.flows.tracking import run_name
from tests.helpers.configs import write_config
from tests.helpers.oracles import CALL_LOG

runner = CliRunner()


def _store(path):
    return CampaignStore.open(path, lock=False)


def test_three_round_campaign_end_to_end_and_resume(tmp_path, prefect_api):
    config = write_config(tmp_path / "c.yaml")
    campaign = tmp_path / "runs" / "demo"
    state = run_campaign(str(config), str(campaign), return_state=True)
    assert state.is_completed()
    result = state.result()

    with get_client(sync_client=True) as client:
        rounds = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    assert sorted(r.name for r in rounds) == ["round-0", "round-1", "round-2", "round-3"]
    assert all(r.state.is_completed() for r in rounds)

    with _store(campaign) as store:
        batches, observations = store.read("batches"), store.read("observations")
        rounds_table, requests = store.read("rounds"), store.read("requests")
        ref = store.meta["ref_point"]
    assert batches.groupby("round").size().tolist() == [6, 3, 3, 3]
    assert len(observations) == 15 and observations["candidate"].is_unique
    assert observations["valid"].all()
    assert len(requests) == 15 and (requests["attempt"] == 1).all()
    assert set(batches.loc[batches["round"] > 0, "generator"]) <= {"random", "genetic"}
    hv = rounds_table["hypervolume"].tolist()
    assert hv == result["hypervolume"] and len(hv) == 4
    assert all(b >= a for a, b in itertools.pairwise(hv)) and hv[-1] > hv[0]
    assert ref == [-18.0, -6.0]  # BoTorch's Branin-Currin reference point, maximized
    metrics = json.loads(rounds_table["metrics"].iloc[3])  # 12 points: held-out metrics
    assert {"proxy/rmse", "pool_size", "time/fit_proxy", "time/select_batch"} <= metrics.keys()

    mlflow = MlflowClient(result["mlflow_tracking_uri"])
    assert result["mlflow_tracking_uri"] == f"sqlite:///{(tmp_path / 'runs' / 'mlflow.db').resolve()}"
    run = mlflow.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == "3" and run.data.params["generators.1.kind"] == "genetic"
    history = mlflow.get_metric_history(run.info.run_id, "hypervolume")
    assert [m.step for m in history] == [0, 1, 2, 3] and [m.value for m in history] == hv
    for key in ("proxy/rmse", "oracle_calls", "n_pareto", "time/science", "pool_size"):
        assert mlflow.get_metric_history(run.info.run_id, key), key
    # what each generator supplied, per round: shares of the batch and of the new Pareto members
    keys = set(run.data.metrics)
    assert {"batch_share/initial", "batch_share/random", "batch_share/genetic", "n_new_pareto"} <= keys

    def sums(prefix):
        total = defaultdict(float)
        for key in (k for k in keys if k.startswith(prefix)):
            for m in mlflow.get_metric_history(run.info.run_id, key):
                total[m.step] += m.value
        return dict(total)

    assert sums("batch_share/") == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    new = {m.step: m.value for m in mlflow.get_metric_history(run.info.run_id, "n_new_pareto")}
    assert sorted(new) == [0, 1, 2, 3] and new[0] > 0
    assert sums("new_pareto_share/") == pytest.approx({r: 1.0 for r, n in new.items() if n > 0})
    pareto = {a.path for a in mlflow.list_artifacts(run.info.run_id, "pareto")}
    assert {f"pareto/round_{r:04d}.html" for r in range(4)} | {"pareto/final.png"} <= pareto
    page = open(mlflow.download_artifacts(run.info.run_id, "pareto/round_0003.html", str(tmp_path))).read()
    assert "Plotly.newPlot" in page and '<script src="http' not in page  # self-contained: offline
    assert observations["candidate"].iloc[-1] in page and "reference point" in page
    # step-indexed images: the MLflow UI's round slider
    images = [a.path for a in mlflow.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    steps = {
        key: sorted(int(p.split("+step+")[1].split("+")[0]) for p in images if f"/{key}+" in p)
        for key in ("pareto_front", "surrogate")
    }
    assert steps["pareto_front"] == [0, 1, 2, 3]
    assert steps["surrogate"] == [1, 2, 3]  # model-based rounds: predicted against measured
    coverage = mlflow.get_metric_history(run.info.run_id, "surrogate/branin/coverage_2sd")
    assert [m.step for m in coverage] == [1, 2, 3] and all(0 <= m.value <= 1 for m in coverage)
    window = json.loads(run.data.tags["paretolab.plot_window"])
    assert len(window) == 2 and all(low < high for low, high in window)
    # what the campaign learned: the proxy of every model-based round (no learned generator here)
    checkpoints = {a.path for a in mlflow.list_artifacts(run.info.run_id, "checkpoints/proxy")}
    assert checkpoints == {f"checkpoints/proxy/round_{r:04d}.pt" for r in (1, 2, 3)}
    tables = {a.path for a in mlflow.list_artifacts(run.info.run_id, "tables")}
    assert {"tables/observations.parquet", "tables/observations.json", "tables/pareto_front.json"} <= tables
    # a name unique to this directory, and what the run is, as tags
    assert run.info.run_name == run_name("test_campaign", campaign)
    assert run_name("test_campaign", tmp_path / "elsewhere" / "demo") != run.info.run_name
    tags = run.data.tags
    assert tags["paretolab.space"] == "grid" and tags["paretolab.oracle"] == "branin_currin"
    assert tags["paretolab.generators"] == "random,genetic"
    assert tags["paretolab.prefect_flow_run_id"] == str(state.state_details.flow_run_id)
    assert "test_campaign" in tags["mlflow.note.content"]

    # A rerun of a finished campaign measures nothing and leaves its run as it was;
    # more rounds continue where it stopped, in the same run.
    again = run_campaign(str(config), str(campaign))
    assert again["oracle_calls"] == 15 and again["mlflow_run_id"] == result["mlflow_run_id"]
    rerun = mlflow.get_run(result["mlflow_run_id"])
    assert rerun.info.status == "FINISHED" and rerun.info.end_time == run.info.end_time
    assert rerun.data.tags["paretolab.prefect_flow_run_id"] == tags["paretolab.prefect_flow_run_id"]
    write_config(config, rounds=4)
    extended = run_campaign(str(config), str(campaign))
    assert extended["rounds_done"] == 4 and extended["oracle_calls"] == 18
    more = mlflow.get_run(result["mlflow_run_id"])
    assert more.info.status == "FINISHED" and more.info.end_time > run.info.end_time
    assert more.data.tags["paretolab.prefect_flow_run_id"] != tags["paretolab.prefect_flow_run_id"]
    # the final tables are written whole, not appended to the first finish's
    table = json.loads(
        open(mlflow.download_artifacts(run.info.run_id, "tables/observations.json", str(tmp_path))).read()
    )
    assert len(table["data"]) == 18
    assert extended["hypervolume"][:4] == hv
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "hypervolume")] == [0, 1, 2, 3, 4]


def test_same_seed_same_campaign(tmp_path, prefect_api):
    config = write_config(tmp_path / "c.yaml", rounds=2)
    first = run_campaign(str(config), str(tmp_path / "a"))
    second = run_campaign(str(config), str(tmp_path / "b"))
    assert first["hypervolume"] == second["hypervolume"]
    with _store(tmp_path / "a") as a, _store(tmp_path / "b") as b:
        # everything but the step timings stored with each batch
        assert a.read("batches").drop(columns="metrics").equals(b.read("batches").drop(columns="metrics"))


def test_changed_config_is_refused_and_force_new_keeps_the_old_campaign(tmp_path, prefect_api):
    config = write_config(tmp_path / "c.yaml", rounds=1)
    campaign = tmp_path / "camp"
    run_campaign(str(config), str(campaign))
    write_config(config, rounds=1, batch_size=2)
    with pytest.raises(CampaignMismatchError, match=r"changed: batch_size.*--force-new"):
        run_campaign(str(config), str(campaign))
    result = runner.invoke(app, ["run", str(config), "--dir", str(campaign)])
    assert result.exit_code == 2 and "different config" in result.output
    fresh = run_campaign(str(config), str(campaign), force_new=True)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("camp.old-")]
    assert len(kept) == 1 and len(_store(kept[0]).read("observations")) == 9
    assert fresh["oracle_calls"] == 8


def test_failed_candidates_are_recorded_and_the_round_goes_on(tmp_path, prefect_api, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv(CALL_LOG, str(calls))
    config = write_config(
        tmp_path / "c.yaml",
        oracle={"target": "tests.helpers.oracles:FlakyOracle"},
        initial_design=12,
        rounds=2,
    )
    result = run_campaign(str(config), str(tmp_path / "camp"))
    with _store(tmp_path / "camp") as store:
        observations, requests = store.read("observations"), store.read("requests")
    assert result["rounds_done"] == 2 and len(observations) == 18 and observations["candidate"].is_unique
    first = observations["candidate"].str.split(",").str[0].astype(int)
    expected = {1: "non-finite value for branin", 2: "non-finite value for currin", 3: "instrument error"}
    for level, reason in expected.items():
        rows = observations[first == level]
        assert (~rows["valid"]).all() and rows["reason"].str.contains(reason).all(), level
        assert rows[["branin", "currin"]].isna().all().all()
    assert observations.loc[~first.isin(expected), "valid"].all()
    assert (first == 3).any(), "the test needs a batch in which the oracle raised"
    # every send is in the ledger: the batch that raised was re-sent one candidate at a time
    asked = Counter(calls.read_text().split())
    assert asked == Counter(requests["candidate"])
    assert requests["request_id"].str.contains("single").any()


def test_oracle_down_for_a_whole_batch_is_retried_then_resumed(tmp_path, prefect_api, monkeypatch):
    repaired = tmp_path / "repaired"
    monkeypatch.setenv("PARETOLAB_TEST_REPAIRED", str(repaired))
    config = write_config(
        tmp_path / "c.yaml",
        oracle={"target": "tests.helpers.oracles:BrokenOracle"},
        rounds=1,
        oracle_retries=1,
    )
    state = run_campaign(str(config), str(tmp_path / "camp"), return_state=True)
    assert state.is_failed()
    with _store(tmp_path / "camp") as store:
        requests = store.read("requests")
        assert store.read("observations").empty and store.read("rounds").empty
        run_id = store.meta["mlflow_run_id"]
    # first try + one retry, each a batch call and then one call per candidate
    assert requests["attempt"].unique().tolist() == [1, 2] and len(requests) == 2 * (6 + 6)
    assert MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id).info.status == "FAILED"

    repaired.touch()
    result = run_campaign(str(config), str(tmp_path / "camp"))
    with _store(tmp_path / "camp") as store:
        requests, observations = store.read("requests"), store.read("observations")
    assert result["rounds_done"] == 1 and result["mlflow_run_id"] == run_id
    assert requests.loc[requests["round"] == 0, "attempt"].max() == 3
    assert observations["candidate"].is_unique and len(observations) == 9 and observations["valid"].all()
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id)
    assert run.info.status == "FINISHED" and "paretolab.error" not in run.data.tags


def test_a_resumed_round_does_not_measure_again(tmp_path, prefect_api, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv(CALL_LOG, str(calls))
    config = write_config(
        tmp_path / "c.yaml", oracle={"target": "tests.helpers.oracles:CountingOracle"}, rounds=1
    )
    run_campaign(str(config), str(tmp_path / "camp"))
    with CampaignStore.open(tmp_path / "camp") as store:  # forget that round 1 was closed
        rounds = store.read("rounds")
    part = sorted((tmp_path / "camp" / "tables" / "rounds").glob("*.parquet"))[-1]
    part.unlink()  # the last write of the campaign: no gap in the sequence
    manifest = tmp_path / "camp" / "manifest.jsonl"  # as if killed before that write
    seq = int(part.stem)
    kept = [line for line in manifest.read_text().splitlines(keepends=True) if f'"part":{seq},' not in line]
    manifest.write_text("".join(kept))
    assert len(rounds) == 2
    run_campaign(str(config), str(tmp_path / "camp"))
    assert max(Counter(calls.read_text().split()).values()) == 1


def test_budget_caps_the_initial_design_and_the_rounds(tmp_path, prefect_api):
    config = write_config(tmp_path / "c.yaml", initial_design=8, budget=5, rounds=3)
    result = run_campaign(str(config), str(tmp_path / "camp"))
    assert result["oracle_calls"] == 5 and result["stopped_by"] == "budget" and result["rounds_done"] == 0
    write_config(config, initial_design=8, budget=7, rounds=3)
    result = run_campaign(str(config), str(tmp_path / "camp"))
    assert result["oracle_calls"] == 7 and result["rounds_done"] == 1


def test_no_valid_measurement_is_a_clear_error(tmp_path, prefect_api):
    config = write_config(
        tmp_path / "c.yaml", oracle={"target": "tests.helpers.oracles:NaNOracle"}, ref_point=None
    )
    with pytest.raises(NotEnoughDataError, match=r"need at least 2 valid measurement.*6 x non-finite value"):
        run_campaign(str(config), str(tmp_path / "camp"))


def test_cli_run_and_status(tmp_path, prefect_api, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_config(tmp_path / "c.yaml", rounds=1)
    result = runner.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    for text in (
        "Pareto front",
        "oracle calls: 9",
        "runs/test_campaign",
        f"open the MLflow UI: {command('paretolab')} ui runs/test_campaign",
    ):
        assert text in result.output
    # not a terminal: one line per round, as it closes
    assert result.output.index("round 0/1  hypervolume") < result.output.index("round 1/1  hypervolume")
    status = runner.invoke(app, ["status", "runs/test_campaign"])
    assert status.exit_code == 0, status.output
    assert "rounds done: 1" in status.output and "oracle calls used: 9" in status.output
    assert "current Pareto set" in status.output
    missing = runner.invoke(app, ["status", "nowhere"])
    assert missing.exit_code == 2 and "does not hold a campaign" in missing.output


def test_each_step_is_timed_inside_its_task(tmp_path, prefect_api):
    """``time/<step>`` is the step's own work (timed inside the task body; the generators'
    side-by-side update and sampling by their wall time), and ``time/science`` is the sum
    of the science steps: what the overhead benchmark reads."""
    config = write_config(tmp_path / "config.yaml", rounds=1)
    run_campaign(str(config), str(tmp_path / "camp"))
    with CampaignStore.open(tmp_path / "camp", lock=False) as store:
        rounds = store.read("rounds").set_index("round")
    metrics = json.loads(rounds.loc[1, "metrics"])
    science = (
        "fit_proxy",
        "fit_feasibility",
        "build_acquisition",
        "update_generator",
        "propose",
        "select_batch",
        "evaluate",
    )
    for step in (*science, "load_dataset", "build_pool"):
        assert metrics[f"time/{step}"] > 0, step
    assert metrics["time/science"] == pytest.approx(sum(metrics[f"time/{s}"] for s in science))
    assert (
        metrics["time/evaluate"] < 0.5
    )  # the oracle is a formula; Prefect's task bookkeeping is not counted


def test_a_runs_logs_and_artifacts_reach_prefect_keyed_by_campaign(tmp_path, prefect_api):
    """paretolab's INFO lines are in the flow run's logs; each round leaves a summary, the
    Pareto set with units and a link to the MLflow run as artifacts keyed by campaign.
    Run as a user runs it, `paretolab run` in its own process, against the session's server."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterName,
        LogFilter,
        LogFilterFlowRunId,
    )

    config = write_config(tmp_path / "c.yaml", name="Shown_In.Prefect", rounds=1)
    env = {k: v for k, v in os.environ.items() if k != "PARETOLAB_KILL_AT"}
    env.update(PREFECT_API_URL=prefect_api, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}")
    paretolab = str(Path(sys.executable).with_name("paretolab"))
    done = subprocess.run(
        [paretolab, "run", str(config), "--dir", str(tmp_path / "camp")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "round 0 closed" not in done.stdout + done.stderr  # INFO goes to Prefect, not the terminal
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["Shown_In.Prefect-from-round-0"]))
        )
        assert len(runs) == 1
        for _ in range(60):  # a process's last logs may still be on their way
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
            ours = [log.message for log in logs if log.name == "paretolab.flows.campaign"]
            if any(m.startswith("round 1 closed") for m in ours):
                break
            time.sleep(0.5)
        keys = ["shown-in-prefect-summary", "shown-in-prefect-pareto-set", "shown-in-prefect-mlflow-run"]
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert any(m.startswith("round 0 closed") for m in ours), [(log.name, log.message) for log in logs]
    assert any(m.startswith("round 1 closed") for m in ours), [(log.name, log.message) for log in logs]
    assert all(log.level >= logging.INFO for log in logs if log.name.startswith("paretolab."))
    by_key: dict[str, list] = {}
    for artifact in artifacts:
        by_key.setdefault(artifact.key, []).append(artifact)
    assert sorted(by_key) == sorted(keys) and all(len(v) == 2 for v in by_key.values())  # rounds 0, 1
    # created on a background thread, still in their round's flow run and publish task
    assert all(a.flow_run_id is not None and a.task_run_id is not None for a in artifacts)
    assert runs[0].id not in {a.flow_run_id for a in artifacts}  # the round subflows', not the campaign's
    summaries = sorted(a.data for a in by_key["shown-in-prefect-summary"])
    assert "round 1" in summaries[-1] and "| hypervolume |" in summaries[-1]
    assert "| genetic |" in summaries[-1] or "| random |" in summaries[-1]
    table = json.loads(sorted(by_key["shown-in-prefect-pareto-set"], key=lambda a: a.created)[-1].data)
    assert table and {"candidate", "branin", "currin"} <= set(table[0])
    link = by_key["shown-in-prefect-mlflow-run"][0].data
    assert "/runs/" in link and "workflowType=machine_learning" in link
