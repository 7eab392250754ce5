"""Named crash points for the kill-and-resume tests.

``PARETOLAB_KILL_AT="name:k"`` makes the process SIGKILL itself the k-th time (1-based)
it passes the crash point ``name``. Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["crash_point"]

_passed: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here, without cleanup, when the environment asks for it (tests only)."""
    target = os.environ.get("PARETOLAB_KILL_AT")
    if not target:
        return
    point, _, count = target.partition(":")
    if point != name:
        return
    _passed[name] += 1
    if _passed[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
