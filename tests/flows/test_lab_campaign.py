"""A lab campaign end to end: request files, a scientist filling them in with real
Branin-Currin values, ``paretolab submit`` and the inbox, through a real Prefect API, a
real store and a real MLflow store on disk."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from paretolab.data.results import FAILURE_COLUMN, ID_COLUMN
from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign import run_campaign
from paretolab.flows.cli import app
from paretolab.flows.commands import command
from paretolab.flows.engine import pareto_table
from paretolab.flows.ingest import stored_objectives
from paretolab.flows.lab import lab_progress
from paretolab.oracles.synthetic import BraninCurrinOracle
from tests.helpers.configs import write_config

runner = CliRunner()
BRANIN, CURRIN = "branin [mm]", "currin [s]"
REQUEST_COLUMNS = [ID_COLUMN, "candidate", "round", BRANIN, CURRIN, FAILURE_COLUMN]
TRUTH = BraninCurrinOracle(GridSpace(2, 16))  # the same 16x16 grid as write_config's space


def _config(path: Path, **overrides) -> Path:
    oracle = {
        "name": "lab",
        "params": {
            "objectives": [
                {"name": "branin", "direction": "min", "unit": "mm"},
                {"name": "currin", "direction": "min", "unit": "s"},
            ]
        },
    }
    settings = {
        "name": "lab_test",
        "oracle": oracle,
        "ref_point": [18.0, 6.0],
        "initial_design": 4,
        "batch_size": 2,
        "rounds": 1,
        "generators": [{"kind": "random", "pool_size": 32}],
    }
    return write_config(path, **(settings | overrides))


def _tables(campaign: Path, *names: str) -> list[pd.DataFrame]:
    with CampaignStore.open(campaign, lock=False) as store:
        return [store.read(name) for name in names]


def _observations(campaign: Path) -> pd.DataFrame:
    return _tables(campaign, "observations")[0]


def _request(campaign: Path, round_: int) -> Path:
    return campaign / "lab" / "requests" / f"round{round_}-lab.csv"


def _snapshot(paths: list[Path]) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}


def scientist(request: Path, out: Path, rows=None, *, values=None, edit=None) -> Path:
    """Fill ``rows`` (positions in the request; default all) with the real Branin-Currin
    values of their candidates (``values`` overrides some: {row: (branin, currin)}), leave
    the other rows blank, apply ``edit(table)`` and write ``out``."""
    table = pd.read_csv(request, dtype=str, keep_default_na=False)
    truth = TRUTH(table["candidate"].tolist()).values.tolist()
    for i in range(len(table)) if rows is None else rows:
        branin, currin = (values or {}).get(i, truth[i])
        table.loc[i, BRANIN], table.loc[i, CURRIN] = str(branin), str(currin)
    if edit is not None:
        edit(table)
    table.to_csv(out, index=False)
    return out


def submit(campaign: Path, path: Path, *extra: str):
    # a wide terminal: rich would otherwise wrap long paths at 80 columns
    return runner.invoke(app, ["submit", str(campaign), str(path), *extra], env={"COLUMNS": "1000"})


def _truth_of(candidates: list[str]) -> list[list[float]]:
    return TRUTH(candidates).values.tolist()


def test_lab_campaign_requests_takes_results_and_continues(tmp_path, prefect_api):
    config = _config(tmp_path / "lab.yaml")
    campaign = tmp_path / "runs" / "lab"
    inbox = campaign / "lab" / "inbox"

    # a. The first run writes round 0's request and stops without measuring anything.
    first = run_campaign(str(config), str(campaign))
    assert first["stopped_by"] == "awaiting lab results"
    assert first["awaiting"] == {
        "from": "the lab",
        "round": 0,
        "pending": 4,
        "requested": 4,
        "request_dir": str(campaign / "lab" / "requests"),
        "inbox_dir": str(inbox),
    }
    assert first["rounds_done"] == -1 and first["hypervolume"] == [] and first["pareto_front"] == []
    request = _request(campaign, 0)
    assert request.is_file() and request.with_suffix(".parquet").is_file()
    assert request.read_text().splitlines()[0] == ",".join(REQUEST_COLUMNS)
    csv_table = pd.read_csv(request, dtype=str, keep_default_na=False)
    parquet_table = pd.read_parquet(request.with_suffix(".parquet"))
    assert list(parquet_table.columns) == REQUEST_COLUMNS
    with CampaignStore.open(campaign, lock=False) as store:
        cid = store.meta["campaign_id"]
        batches, observations, requests, events, rounds = (
            store.read(t) for t in ("batches", "observations", "requests", "lab_events", "rounds")
        )
        assert stored_objectives(store)[0].column == BRANIN
    round0 = batches.loc[batches["round"] == 0].sort_values("position")
    assert (
        csv_table["candidate"].tolist() == parquet_table["candidate"].tolist() == round0["candidate"].tolist()
    )
    assert csv_table[ID_COLUMN].tolist() == [f"{cid}-r0-{p:03d}" for p in range(4)]
    assert (csv_table["round"] == "0").all() and (parquet_table["round"] == 0).all()
    assert (csv_table[[BRANIN, CURRIN, FAILURE_COLUMN]] == "").all().all()
    assert parquet_table[[BRANIN, CURRIN]].isna().all().all()
    assert observations.empty and rounds.empty
    assert requests["request_id"].tolist() == ["round0-lab"] * 4
    assert events["event"].tolist() == ["submitted"]
    mlflow = MlflowClient(first["mlflow_tracking_uri"])
    run = mlflow.get_run(first["mlflow_run_id"])
    assert run.info.status == "RUNNING"
    assert run.data.tags["paretolab.status"] == "awaiting lab results: round 0, 4 of 4 pending"
    sent = _snapshot([request, request.with_suffix(".parquet")])
    truth = _truth_of(round0["candidate"].tolist())

    # b. A file with any problem records nothing and names the file, the row and the column.
    bad = scientist(request, tmp_path / "bad.csv", values={2: ("n/a", 1.0)})
    result = submit(campaign, bad)
    assert result.exit_code == 2, result.output
    assert f"{bad}: rejected, nothing was recorded (1 problem(s))" in result.output
    assert "row 4: column 'branin [mm]': 'n/a' is not a number" in result.output
    assert _observations(campaign).equals(observations)

    # A partial file: the filled rows are recorded, the blank ones stay pending.
    partial = scientist(request, tmp_path / "partial.csv", rows=[0, 1])
    with CampaignStore.open(campaign):  # a running campaign holds the lock: use the inbox
        result = submit(campaign, partial)
    assert result.exit_code == 2 and "drop the file into the campaign's inbox folder" in result.output
    assert _observations(campaign).equals(observations)
    result = submit(campaign, partial)
    assert result.exit_code == 0, result.output
    assert f"{partial}: recorded 2 result(s); 2 row(s) left blank stay pending" in result.output
    assert "round 0: 2 of 4 candidate(s) still pending" in result.output
    assert f"continue the campaign: {command('paretolab')} run {campaign}" in result.output
    recorded = _observations(campaign)
    assert recorded["candidate"].tolist() == round0["candidate"].tolist()[:2]
    assert recorded[["branin", "currin"]].values.tolist() == truth[:2]
    assert (recorded["round"] == 0).all() and recorded["valid"].all()
    assert recorded["request_id"].str.startswith("round0-lab/").all()

    # The same file again, under any name, records nothing new.
    for again in (partial, shutil.copy(partial, tmp_path / "partial-copy.csv")):
        result = submit(campaign, Path(again))
        assert result.exit_code == 0, result.output
        assert "already recorded earlier; nothing new" in result.output
        assert _observations(campaign).equals(recorded)

    # A value for a measured candidate is refused, and taken with --replace (history kept).
    better = scientist(request, tmp_path / "remeasured.csv", rows=[0], values={0: (0.0, 0.0)})
    result = submit(campaign, better)
    assert result.exit_code == 2, result.output
    assert (
        "row 2: " in result.output
        and "is already measured; new values in" in result.output
        and "use --replace" in result.output
    )
    assert _observations(campaign).equals(recorded)
    result = submit(campaign, better, "--replace")
    assert result.exit_code == 0, result.output
    assert "recorded 1 result(s) (1 replacing earlier values, kept in the history)" in result.output
    history = _observations(campaign)
    first_candidate = round0["candidate"].iloc[0]
    assert history.loc[history["candidate"] == first_candidate, ["branin", "currin"]].values.tolist() == [
        truth[0],
        [0.0, 0.0],
    ]
    with CampaignStore.open(campaign, lock=False) as store:
        front = pareto_table(store, stored_objectives(store))
    # (0, 0) dominates every real Branin-Currin value: the front is that one new value
    assert front.to_dict("records") == [
        {"round": 0, "candidate": first_candidate, "branin": 0.0, "currin": 0.0}
    ]

    # c + d. The rest, dropped into the inbox, is taken in by the next run, which closes
    # round 0 and sends round 1's request; round 0's request is not written again.
    assert inbox.is_dir()  # created with the first request
    scientist(request, inbox / "results.csv", rows=[2, 3])
    second = run_campaign(str(config), str(campaign))
    assert second["stopped_by"] == "awaiting lab results"
    assert second["awaiting"]["round"] == 1 and second["awaiting"]["pending"] == 2
    assert second["rounds_done"] == 0 and second["mlflow_run_id"] == first["mlflow_run_id"]
    assert second["hypervolume"] == [pytest.approx(18.0 * 6.0)]  # the replaced (0, 0) dominates
    assert not (inbox / "results.csv").exists() and (inbox / "processed" / "results.csv").is_file()
    assert _snapshot(list(sent)) == sent
    request1 = _request(campaign, 1)
    assert request1.is_file() and request1.with_suffix(".parquet").is_file()
    batches, observations, requests, events = _tables(
        campaign, "batches", "observations", "requests", "lab_events"
    )
    round1 = batches.loc[batches["round"] == 1, "candidate"].tolist()
    assert len(round1) == 2 and not set(round1) & set(round0["candidate"])
    assert pd.read_csv(request1, dtype=str)["candidate"].tolist() == round1
    assert sorted(observations["candidate"].unique()) == sorted(round0["candidate"])
    assert len(observations) == 5  # four measured, one of them twice
    assert requests.groupby("request_id").size().to_dict() == {"round0-lab": 4, "round1-lab": 2}
    assert events.loc[events["event"] == "submitted", "round"].tolist() == [0, 1]

    # d. A bad file in the inbox is moved to rejected/ with its reasons; nothing recorded.
    sent = _snapshot([request, request1, request1.with_suffix(".parquet")])
    scientist(request1, inbox / "round1.csv", edit=lambda t: t.__setitem__(CURRIN, ["inf", "2.0"]))
    third = run_campaign(str(config), str(campaign))
    assert third["awaiting"] == second["awaiting"]
    assert not (inbox / "round1.csv").exists()
    assert (inbox / "rejected" / "round1.csv").is_file()
    errors = (inbox / "rejected" / "round1.csv.errors.txt").read_text()
    assert "round1.csv: rejected, nothing was recorded" in errors
    assert "row 2: column 'currin [s]': 'inf' is not finite" in errors
    assert _observations(campaign).equals(observations)
    assert _snapshot(list(sent)) == sent

    # Round 1's results (a name already used in processed/ is kept beside the old file).
    scientist(request1, inbox / "results.csv")
    last = run_campaign(str(config), str(campaign))
    assert last["stopped_by"] == "rounds" and last["awaiting"] is None and last["rounds_done"] == 1
    assert (inbox / "processed" / "results.1.csv").is_file() and not list(inbox.glob("*.csv"))
    observations, requests, rounds = _tables(campaign, "observations", "requests", "rounds")
    assert rounds["round"].tolist() == [0, 1]
    assert len(observations) == 7 and observations["valid"].all()
    assert observations.loc[observations["round"] == 1, ["branin", "currin"]].values.tolist() == _truth_of(
        round1
    )
    assert requests.groupby("request_id").size().to_dict() == {"round0-lab": 4, "round1-lab": 2}
    assert _snapshot(list(sent)) == sent
    assert not _request(campaign, 2).exists()
    assert mlflow.get_run(first["mlflow_run_id"]).info.status == "FINISHED"


def test_continue_after_hours_closes_a_round_with_what_arrived(tmp_path, prefect_api):
    config = _config(tmp_path / "lab.yaml")
    campaign = tmp_path / "runs" / "lab"
    first = run_campaign(str(config), str(campaign))
    assert first["awaiting"]["round"] == 0
    request = _request(campaign, 0)
    result = submit(campaign, scientist(request, tmp_path / "some.csv", rows=[0, 2]))
    assert result.exit_code == 0, result.output

    # Without continue_after_hours the round waits for every result (here through the CLI).
    waiting = runner.invoke(app, ["run", str(config), "--dir", str(campaign)], env={"COLUMNS": "1000"})
    assert waiting.exit_code == 0, waiting.output
    assert "waiting for the lab: round 0 sent 4 candidate(s), 2 still pending." in waiting.output
    assert f"send results:  {command('paretolab')} submit {campaign} RESULTS.csv" in waiting.output
    assert _tables(campaign, "rounds")[0].empty

    # With it (lab settings may change between runs), the round closes with what arrived.
    _config(config, lab={"continue_after_hours": 0.0})
    going_on = run_campaign(str(config), str(campaign))
    assert going_on["rounds_done"] == 0 and going_on["awaiting"]["round"] == 1
    batches, requests, events, rounds = _tables(campaign, "batches", "requests", "lab_events", "rounds")
    assert rounds["round"].tolist() == [0] and rounds["n_observations"].tolist() == [2]
    round0 = batches.loc[batches["round"] == 0].sort_values("position")["candidate"].tolist()
    late = [round0[1], round0[3]]
    round1 = batches.loc[batches["round"] == 1, "candidate"].tolist()
    assert not set(late) & set(round1)  # pending ones are neither proposed nor requested again
    assert set(requests.loc[requests["request_id"] == "round1-lab", "candidate"]) == set(round1)
    assert events.loc[events["event"] == "continued", "round"].tolist() == [0]
    with CampaignStore.open(campaign, lock=False) as store:
        progress = lab_progress(store, 0)
    assert progress.pending == 2 and progress.continued

    # A late result for round 0 is still accepted and recorded under round 0.
    result = submit(campaign, scientist(request, tmp_path / "late.csv", rows=[1]))
    assert result.exit_code == 0, result.output
    assert "round 0: 1 of 4 candidate(s) still pending" in result.output
    assert "round 1: 2 of 2 candidate(s) still pending" in result.output
    observations = _observations(campaign)
    row = observations.loc[observations["candidate"] == late[0]]
    assert row["round"].tolist() == [0] and row["request_id"].str.startswith("round0-lab/").all()
    assert row[["branin", "currin"]].values.tolist() == _truth_of([late[0]])

    # The next run keeps waiting for round 1 and asks for nothing again.
    sent = _snapshot([request, _request(campaign, 1)])
    again = run_campaign(str(config), str(campaign))
    assert again["awaiting"]["round"] == 1 and again["awaiting"]["pending"] == 2
    assert _snapshot(list(sent)) == sent
    requests, events = _tables(campaign, "requests", "lab_events")
    assert requests.groupby("request_id").size().to_dict() == {"round0-lab": 4, "round1-lab": 2}
    assert (events["event"] == "continued").sum() == 1


def test_a_round_closed_with_too_few_results_does_not_strand_the_campaign(tmp_path, prefect_api):
    config = _config(tmp_path / "lab.yaml", lab={"continue_after_hours": 0.0})
    campaign = tmp_path / "runs" / "lab"
    run_campaign(str(config), str(campaign))
    request = _request(campaign, 0)
    assert submit(campaign, scientist(request, tmp_path / "one.csv", rows=[0])).exit_code == 0
    waiting = run_campaign(str(config), str(campaign))  # one valid result is too few to go on
    assert waiting["awaiting"]["round"] == 0
    inbox = campaign / "lab" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    scientist(request, inbox / "rest.csv", rows=[1, 2, 3])
    result = run_campaign(str(config), str(campaign))  # the rest arrived: go on to round 1
    assert result["awaiting"]["round"] == 1
    assert (inbox / "processed" / "rest.csv").is_file()
