"""Prefect's temporary API server, started so that it dies with the process that needs it.

With no ``PREFECT_API_URL``, Prefect starts a temporary server (uvicorn) in a child process
and stops it at exit, but a SIGKILLed parent never reaches its exit handler: the server
lives on, holding memory and a loopback port. Here the server is started first, through
Prefect's own class, with a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), so the
kernel ends it with its parent however the parent ends; Prefect then finds it running and
uses it. Start-up gets a patient timeout and a second try, because a busy 2-core machine
can take longer than Prefect's 20 s default to answer the first health check.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import Any

from paretolab.flows.child_process import dies_with_parent

__all__ = ["ServerStartError", "start_temporary_server"]

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60
"""Seconds one start-up attempt waits for the server to answer (Prefect's default: 20)."""


class ServerStartError(RuntimeError):
    """The temporary Prefect API server did not start."""


def start_temporary_server(timeout_s: float | None = None, attempts: int = 2) -> str | None:
    """Start Prefect's temporary API server bound to this process's life; its API URL.

    Each attempt waits ``timeout_s`` (default: ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``
    if set in the environment, else :data:`STARTUP_TIMEOUT_S`). Does nothing (returns None)
    when ``PREFECT_API_URL`` names a server or Prefect's ephemeral mode is off. Raises
    :class:`ServerStartError` with the remedy when every attempt times out.
    """
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE, get_current_settings

    if PREFECT_API_URL.value() or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return None
    if timeout_s is None:
        timeout_s = float(
            os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", STARTUP_TIMEOUT_S)
        )

    class _BoundServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect's command (prefect/server/api/server.py), plus the parent-death signal
            env = {
                **os.environ,
                "PREFECT_UI_ENABLED": "0",
                "PREFECT__SERVER_EPHEMERAL": "1",
                "PREFECT__SERVER_FINAL": "1",
                **get_current_settings().to_environment_variables(exclude_unset=True),
            }
            command = [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent)]
            command += ["--factory", "prefect.server.api.server:create_app"]
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error"]
            command += ["--lifespan", "on"]
            return subprocess.Popen(command, env=env, preexec_fn=dies_with_parent())

    failures: list[str] = []
    for _ in range(attempts):
        # Prefect keeps one server per port; ``None`` is the key its clients look up
        existing = SubprocessASGIServer._instances.get(None)
        if existing is not None and existing.running:
            return existing.api_url
        SubprocessASGIServer._instances.pop(None, None)
        server = _BoundServer()
        try:
            server.start(timeout=max(1, round(timeout_s)))
        except RuntimeError as exc:
            failures.append(str(exc).splitlines()[0][:200])
            server.stop()
            continue
        pid = server.server_process.pid if server.server_process else None
        logger.info("temporary Prefect API server (pid %s) at %s", pid, server.api_url)
        return server.api_url
    raise ServerStartError(
        f"Prefect's temporary API server did not answer within {timeout_s:.0f} s, {attempts} times "
        f"({failures[-1]}); the machine may be busy: run again, or start a server once "
        "(`prefect server start`) and set PREFECT_API_URL=http://127.0.0.1:4200/api"
    )
