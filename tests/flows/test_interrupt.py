"""Ctrl-C during `paretolab run`: one line saying how to resume, exit 130, nothing else;
the rerun resumes where it stopped without measuring anything twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from paretolab.data.store import CampaignStore
from tests.helpers.configs import write_config

pytestmark = pytest.mark.slow


def test_ctrl_c_is_one_line_with_the_resume_command_and_exit_130(tmp_path):
    config = write_config(tmp_path / "c.yaml", rounds=200)
    campaign = tmp_path / "camp"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PARETOLAB_KILL_AT")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'm.db'}"
    )
    command = [str(Path(sys.executable).with_name("paretolab")), "run", str(config), "--dir", str(campaign)]
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # a pytest-xdist worker ignores SIGINT, and children inherit that: give the run a
        # terminal's default, as a user's shell does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    while not list((campaign / "tables" / "rounds").glob("*.parquet")):  # round 0 closed: mid-campaign
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.2)
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("interrupted; everything measured so far is kept:") and "resumes" in lines[0]
    with CampaignStore.open(campaign, lock=False) as store:
        closed = len(store.read("rounds"))
    resume = [*command, "--rounds-per-run", "1"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    with CampaignStore.open(campaign, lock=False) as store:
        observations = store.read("observations")
        assert observations["candidate"].is_unique and len(store.read("rounds")) == closed + 1
