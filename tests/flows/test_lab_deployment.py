"""A lab campaign run as a Prefect deployment: while it waits for the lab its flow run is
*suspended* (its process has exited), the Prefect UI's form resumes it with results, and
``paretolab submit`` (a file) or ``Campaign.tell`` (Python) records results and resumes
it. Real server, real runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run
from prefect.input.actions import read_flow_run_input

import paretolab as pl
from paretolab.data.results import ID_COLUMN
from paretolab.data.store import CampaignStore
from tests.conftest import ROOT
from tests.flows.test_lab_campaign import TRUTH, _config, _request, scientist

pytestmark = pytest.mark.slow


def _state(flow_run_id: UUID):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _wait_for(flow_run_id: UUID, want: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(flow_run_id)
        if state and state.name == want:
            return
        if state and state.is_final():
            raise AssertionError(f"flow run ended {state.name}: {state.message}")
        time.sleep(1)
    raise AssertionError(f"flow run still {_state(flow_run_id).name} after {timeout} s, wanted {want}")


def _rounds_done(campaign: Path) -> list[int]:
    with CampaignStore.open(campaign, lock=False) as store:
        return store.read("rounds")["round"].tolist()


def test_deployment_suspends_while_the_lab_works_and_resumes_on_results(prefect_api, tmp_path):
    config = _config(tmp_path / "lab.yaml", rounds=3)
    campaign = tmp_path / "campaign"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PYTHONPATH": str(ROOT),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.serve_campaign", "lab-test"],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "runner.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                run = run_deployment(
                    "paretolab-campaign/lab-test",
                    parameters={"config_path": str(config), "campaign_dir": str(campaign)},
                    timeout=0,
                )
                break
            except Exception:  # the runner has not registered the deployment yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

        # round 0's request is out; the flow run is suspended and holds no process
        _wait_for(run.id, "Suspended")
        request = _request(campaign, 0)
        assert _rounds_done(campaign) == []

        # the resume form says what is awaited and where, and lists the owed candidates
        keyset = _state(run.id).state_details.run_input_keyset
        description = read_flow_run_input(keyset["description"], flow_run_id=run.id)
        assert "Round 0 waits for the lab" in description and str(request) in description
        schema = read_flow_run_input(keyset["schema"], flow_run_id=run.id)
        owed = pd.read_csv(request, dtype=str, keep_default_na=False)
        prefilled = schema["properties"]["results"]["default"]
        assert [(r[ID_COLUMN], r["candidate"]) for r in prefilled] == list(
            zip(owed[ID_COLUMN], owed["candidate"], strict=True)
        )
        with CampaignStore.open(campaign) as store:  # nobody holds the campaign
            assert store.meta["lab_suspended"]["flow_run_id"] == str(run.id)

        # the Prefect UI's form: results entered for round 0, validated and recorded on resume
        rows = pd.read_csv(request, dtype=str, keep_default_na=False)
        values = TRUTH(rows["candidate"].tolist()).values.tolist()
        form = [
            {ID_COLUMN: cid, "branin": v[0], "currin": v[1]}
            for cid, v in zip(rows[ID_COLUMN], values, strict=True)
        ]
        resume_flow_run(run.id, run_input={"results": form})
        deadline = time.monotonic() + 240
        while _rounds_done(campaign) != [0] or _state(run.id).name != "Suspended":
            assert time.monotonic() < deadline, _state(run.id)
            time.sleep(1)
        assert _request(campaign, 1).is_file()  # round 1's request went out, then it suspended again

        # `paretolab submit` records the file and resumes the run, which goes on to round 2
        paretolab = str(Path(sys.executable).with_name("paretolab"))
        done = scientist(_request(campaign, 1), tmp_path / "round1.csv")
        submitted = subprocess.run(
            [paretolab, "submit", str(campaign), str(done)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert submitted.returncode == 0, submitted.stderr
        assert f"resumed flow run {run.id}" in submitted.stdout
        deadline = time.monotonic() + 240
        while _rounds_done(campaign) != [0, 1] or _state(run.id).name != "Suspended":
            assert time.monotonic() < deadline, _state(run.id)
            time.sleep(1)

        # results told from Python are recorded, round 2 closes, and the run resumes to round 3
        pending = pl.Campaign.open(campaign).pending()
        values = TRUTH(pending["candidate"].tolist()).values.tolist()
        told = pl.Campaign.open(campaign).tell(
            pending[[ID_COLUMN]].assign(
                **{"branin [mm]": [v[0] for v in values], "currin [s]": [v[1] for v in values]}
            )
        )
        assert told.recorded == 2 and told.closed_rounds == (2,)
        deadline = time.monotonic() + 240
        while not _request(campaign, 3).is_file() or _state(run.id).name != "Suspended":
            assert time.monotonic() < deadline, _state(run.id)
            time.sleep(1)
        assert _rounds_done(campaign) == [0, 1, 2]

        # the form is filled in for round 3, but before the suspended run runs again another
        # run takes the campaign over (here `paretolab run`; in a team, the next scheduled
        # run): it records the form's input, cancels the old run, and finishes the campaign
        server.send_signal(signal.SIGSTOP)  # the runner cannot pick the resumed run up
        rows = pd.read_csv(_request(campaign, 3), dtype=str, keep_default_na=False)
        values = TRUTH(rows["candidate"].tolist()).values.tolist()
        resume_flow_run(
            run.id,
            run_input={
                "results": [
                    {ID_COLUMN: cid, "branin": v[0], "currin": v[1]}
                    for cid, v in zip(rows[ID_COLUMN], values, strict=True)
                ]
            },
        )
        local = subprocess.run(
            [paretolab, "run", str(config), "--dir", str(campaign)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert local.returncode == 0, local.stderr[-3000:]
        assert _state(run.id).name == "Cancelled"
        assert _rounds_done(campaign) == [0, 1, 2, 3]
        with CampaignStore.open(campaign, lock=False) as store:
            observations = store.read("observations")
            assert store.meta["lab_suspended"] is None
        assert observations["candidate"].is_unique and observations["valid"].all()
        assert len(observations) == 10
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait(timeout=30)
