"""Servers that paretolab starts (Prefect's temporary API, the MLflow UI) end with it.

A child process outlives a parent that is SIGKILLed: it keeps its memory and its loopback
port. On Linux the kernel can signal a child when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), set in the child between fork and exec.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["dies_with_parent"]

_PR_SET_PDEATHSIG = 1


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when the thread
    that starts it ends, or its process dies (if it already has, the child exits at once);
    ``None`` where Linux's prctl is missing. Start long-lived servers from the main thread.
    It runs in the forked child before exec: no imports, no allocations."""
    libc = _libc()
    if libc is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return preexec
