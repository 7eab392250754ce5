"""``paretolab ui``: a real ``mlflow ui`` on 127.0.0.1 for a campaign's local store, an
address that opens the campaign's run in the runs view, and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from paretolab.data.store import CampaignStore
from paretolab.flows.cli import app
from paretolab.flows.mlflow_ui import MODEL_TRAINING_VIEW, UiError, UiTarget, find_target
from tests.flows.test_ask_tell import _campaign, measured
from tests.helpers.network import free_port

BIN = Path(sys.executable).parent
runner = CliRunner()


def test_the_store_is_found_from_a_campaign_a_folder_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UiError, match=r"runs/mlflow.db does not exist here"):
        find_target(None)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mlflow.db").touch()
    assert find_target(None) == UiTarget(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    assert find_target(tmp_path / "runs") == find_target(None)
    with pytest.raises(UiError, match=r"neither a campaign directory nor a folder with an mlflow\.db"):
        find_target(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert find_target(None) == UiTarget("http://127.0.0.1:5999")
    result = runner.invoke(app, ["ui"])
    assert result.exit_code == 2 and "is an MLflow server already" in result.output


@pytest.mark.slow
def test_paretolab_ui_serves_the_campaigns_run_and_stops_cleanly(tmp_path):
    campaign = _campaign(tmp_path / "ui")
    campaign.tell(measured(campaign.ask()))  # round 0 closes and is logged to runs' sqlite
    with CampaignStore.open(campaign.directory, lock=False) as store:
        run_id = store.meta["mlflow_run_id"]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ui = subprocess.Popen(
        [str(BIN / "paretolab"), "ui", str(campaign.directory), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [ui.stdout.readline() for _ in range(2)]  # printed once the UI answers
        address = lines[1].split("open: ", 1)[1].strip()
        assert address.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        assert address.endswith(f"/runs/{run_id}?{MODEL_TRAINING_VIEW}")
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10
        )
        assert answer.json()["run"]["info"]["run_id"] == run_id  # the campaign's own store
        busy = runner.invoke(app, ["ui", str(campaign.directory), "--port", str(port)])
        assert busy.exit_code == 2 and f"port {port} on 127.0.0.1 is in use" in busy.output
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the server went with it
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
        except httpx.HTTPError:
            break
        time.sleep(0.5)
    else:
        pytest.fail("mlflow ui still answers after paretolab ui stopped")
