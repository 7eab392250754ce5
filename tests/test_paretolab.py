"""The public face of paretolab: ``import paretolab`` and the runnable example."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import paretolab as pl

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN_METHODS = [
    "create",
    "from_yaml",
    "open",
    "ask",
    "tell",
    "pending",
    "measurements",
    "pareto_front",
    "history",
    "hypervolume",
]


def test_the_public_names_are_exactly_all_and_documented():
    public = {
        name for name in dir(pl) if not name.startswith("_") and not inspect.ismodule(getattr(pl, name))
    }
    assert public == set(pl.__all__) - {"__version__"}
    assert pl.__version__ == importlib.metadata.version("paretolab")
    for name in public:
        assert inspect.getdoc(getattr(pl, name)), f"paretolab.{name} has no docstring"
    for name in CAMPAIGN_METHODS:
        method = getattr(pl.Campaign, name)
        assert inspect.getdoc(method), f"Campaign.{name} has no docstring"
        hints = inspect.get_annotations(method)
        assert "return" in hints, f"Campaign.{name} has no return type"
    assert pl.SequenceSpace(alphabet="AC", length=3).max_length == 3


@pytest.mark.slow
def test_the_example_runs_raises_the_hypervolume_and_continues(tmp_path):
    directory = tmp_path / "example"

    def run(rounds: int) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "ask_tell.py"), str(directory), str(rounds)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = run(2)
    first, last, rounds = re.search(r"hypervolume: (\S+) -> (\S+) over (\d+) round\(s\)", out).groups()
    assert rounds == "2" and float(last) > float(first), out
    out = run(1)  # the same directory: the campaign goes on
    assert re.search(r"over 3 round\(s\)", out), out
    campaign = pl.Campaign.open(directory)
    assert campaign.history()["round"].tolist() == [0, 1, 2]
    assert campaign.pending().empty and len(campaign.measurements()) == 10 + 3 * 8
