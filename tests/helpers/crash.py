"""Run ``paretolab`` commands in child processes that can be SIGKILLed at a crash point.

The children are forked from a multiprocessing fork server that has already imported the
stack (torch, BoTorch, Prefect, MLflow, paretolab), so a campaign process starts in well
under a second instead of seven: that is what makes dozens of kill-and-resume runs
affordable. Each child is a real, separate process running the real CLI; its output goes
to a log file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import torch

import paretolab.flows.campaign
import paretolab.flows.cli

torch.set_num_threads(1)


def _child(args: list[str], env: dict[str, str | None], log: str, cwd: str) -> None:
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(cwd)
    sys.argv = ["paretolab", *args]
    paretolab.flows.cli.main()


class ForkRunner:
    """Starts CLI children from a preloaded fork server; returns their exit codes."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload([__name__])

    def run(
        self, args: list[str], env: dict[str, str | None], log: Path, cwd: Path, timeout: float = 300
    ) -> int:
        """Run ``paretolab ARGS``; the exit code, negative for a signal (-9: SIGKILL)."""
        process = self.context.Process(target=_child, args=(args, env, str(log), str(cwd)))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise TimeoutError(f"paretolab {' '.join(args)} ran over {timeout} s; log: {log}")
        return process.exitcode
