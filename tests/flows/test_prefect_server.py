"""Prefect's temporary API server as `paretolab run` starts it: a start-up that times out
is one line with the remedy (the server dying with its run is checked in
test_crash_resume.py, by SIGKILL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.configs import write_config

pytestmark = pytest.mark.slow


def test_a_server_that_does_not_answer_in_time_is_one_line_naming_the_remedy(tmp_path):
    config = write_config(tmp_path / "config.yaml", rounds=1)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1",  # no server starts in 1 s here
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    paretolab = str(Path(sys.executable).with_name("paretolab"))
    done = subprocess.run(
        [paretolab, "run", str(config), "--dir", str(tmp_path / "c")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Prefect's temporary API server did not answer within 1 s, 2 times" in lines[0]
    assert "set PREFECT_API_URL" in lines[0] and "Traceback" not in done.stderr
