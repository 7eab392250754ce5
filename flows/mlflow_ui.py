"""``paretolab ui``: the MLflow UI for a local tracking store, on 127.0.0.1.

It finds the store a campaign logs to (the campaign directory's record of it, else
``MLFLOW_TRACKING_URI``, else ``runs/mlflow.db``: where ``paretolab run`` puts it by
default), starts ``mlflow ui`` for it, waits until it answers and gives the address that
opens the campaign's run (or its experiment) in "Model training" mode, the runs view: MLflow
3 opens experiments in its GenAI view otherwise ("Traces 0 / No data").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from paretolab.flows.child_process import dies_with_parent

__all__ = ["MODEL_TRAINING_VIEW", "UiError", "UiTarget", "find_target", "start_ui", "ui_url"]

MODEL_TRAINING_VIEW = "workflowType=machine_learning"
"""The URL query that opens MLflow 3's runs view (a UI preference; no tag switches it)."""

STARTUP_TIMEOUT_S = 120.0


class UiError(RuntimeError):
    """No store to show, a port in use, or a UI that did not start (the message says which)."""


@dataclass(frozen=True)
class UiTarget:
    """The tracking store to serve, and the campaign's run in it (when one was named)."""

    tracking_uri: str
    run_id: str | None = None
    experiment: str | None = None


def find_target(where: Path | None) -> UiTarget:
    """The store for ``where``: a campaign directory, a folder holding ``mlflow.db``, or
    nothing (``MLFLOW_TRACKING_URI``, else ``runs/mlflow.db`` here)."""
    if where is not None:
        meta_path = where / "campaign.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as exc:
                raise UiError(f"{meta_path}: unreadable ({exc})") from None
            uri = meta.get("mlflow_tracking_uri")
            if not uri:
                raise UiError(f"{where}: this campaign has not logged to MLflow yet (run it first)")
            return UiTarget(uri, meta.get("mlflow_run_id"))
        database = where / "mlflow.db" if where.is_dir() else where
        if database.is_file():
            return UiTarget(f"sqlite:///{database.resolve()}")
        raise UiError(f"{where}: neither a campaign directory nor a folder with an mlflow.db")
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return UiTarget(os.environ["MLFLOW_TRACKING_URI"])
    database = Path("runs") / "mlflow.db"
    if database.is_file():
        return UiTarget(f"sqlite:///{database.resolve()}")
    raise UiError(
        "no MLflow store found: name a campaign directory (paretolab ui runs/NAME), or set "
        "MLFLOW_TRACKING_URI; runs/mlflow.db does not exist here"
    )


def ui_url(base: str, tracking_uri: str, run_id: str | None) -> str:
    """The address that opens ``run_id``'s page (else the experiments list) in the runs view."""
    base = base.rstrip("/")
    if run_id is None:
        return f"{base}/#/experiments?{MODEL_TRAINING_VIEW}"
    from paretolab.flows.tracking import LoggedRun

    experiment = LoggedRun(run_id, tracking_uri).experiment_id
    return f"{base}/#/experiments/{experiment}/runs/{run_id}?{MODEL_TRAINING_VIEW}"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_ui(target: UiTarget, host: str = "127.0.0.1", port: int = 5000) -> subprocess.Popen[bytes]:
    """Start ``mlflow ui`` for ``target`` and wait until it answers; the server process."""
    if target.tracking_uri.startswith(("http://", "https://")):
        raise UiError(f"{target.tracking_uri} is an MLflow server already: open it in a browser")
    if not _port_free(host, port):
        raise UiError(f"port {port} on {host} is in use; choose another with --port")
    log = tempfile.TemporaryFile()  # a file, not a pipe: a pipe nobody reads fills and blocks
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            target.tracking_uri,
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=dies_with_parent(),
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip()
            last = tail.splitlines()[-1] if tail else f"exit code {process.returncode}"
            raise UiError(f"mlflow ui stopped while starting: {last}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    process.terminate()
    raise UiError(f"mlflow ui did not answer on {host}:{port} within {STARTUP_TIMEOUT_S:.0f} s")
