"""The quality suite's runner and report, in their seconds-long smoke tier (the full suite is
run by hand: ``make benchmark-suite``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_suite_runs_ours_and_a_peer_from_the_same_start_and_reports_them(tmp_path):
    records = tmp_path / "quality.jsonl"
    subprocess.run(
        [sys.executable, "benchmarks/suite.py", "--smoke", "--out", str(records)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    runs = [json.loads(line) for line in records.read_text().splitlines()]
    assert {r["method"] for r in runs} == {"paretolab default", "BoTorch qLogNEHVI, mutation pool"}
    for run in runs:
        assert run["task"] == "branin_currin" and run["seed"] == 0
        (start_calls, start_hv), (end_calls, end_hv) = run["history"]
        assert (start_calls, end_calls) == (12, 20)  # the shipped initial design, one batch of 8
        assert 0 < start_hv <= end_hv == run["hypervolume"]
        assert len(run["round_s"]) == 1 and run["peak_rss_mib"] > 0
    # both started from the same measured initial design
    assert runs[0]["history"][0][1] == pytest.approx(runs[1]["history"][0][1])

    shown = subprocess.run(
        [sys.executable, "benchmarks/report.py", str(records)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "| branin_currin |" in shown and "BoTorch qLogNEHVI, mutation pool" in shown
    assert (tmp_path / "branin_currin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "quality.md").read_text().strip() == shown.strip()
