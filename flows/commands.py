"""How to call this environment's commands in the hints paretolab prints.

After ``make demo`` the commands live in ``.venv/bin/`` and are not on ``PATH``; a hint that
says ``paretolab run …`` would then fail when pasted. Hints name a command bare only when the
shell finds this environment's copy, and by its path otherwise.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["command"]


def command(name: str) -> str:
    """``name`` (``paretolab``, ``mlflow``, ``prefect``) as a user should type it here."""
    here = Path(sys.executable).with_name(name)  # the venv's bin/, not the resolved interpreter's
    if not here.exists():
        return name
    found = shutil.which(name)
    if found and Path(found).resolve() == here.resolve():
        return name
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)
