"""Scale of the campaign's record: the store at a million observations, and a round's
hypervolume tracking against moocore called directly.

Store: ``--rows`` observation rows (3 objectives) appended in ``--parts`` parts (one per
round of a long campaign), the store opened again (every part's checksum verified against
the manifest, every part loaded), the table read, and the campaign's state derived from it
(:class:`paretolab.flows.engine.CampaignState`, what ``status`` and ``ask`` start from).
Printed: seconds for each, bytes on disk, and the process's peak memory.

Hypervolume: ``moocore.hypervolume`` called directly on the prepared array, beside
paretolab's :func:`paretolab.data.pareto.hypervolume` on the same values (conversion, the
reference-point filter, moocore), and beside what a round does when it closes (the
observations table's current valid rows to maximization-space values, then that function),
for 2-4 objectives and 1k-100k points (a random cloud, as campaigns measure; and all points
on a concave front, up to 10k); the median of 5 repeats each; ratios against moocore's.

    .venv/bin/python benchmarks/store_and_hypervolume_scale.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import moocore
import numpy as np
import pandas as pd
import torch

from paretolab.data.dataset import raw_values, valid_observations
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.store import CampaignStore
from paretolab.flows.engine import CampaignState

OBJECTIVES = (Objective("f", "max"), Objective("g", "min"), Objective("h", "max"))


def _observations(rng: np.random.Generator, start: int, n: int, round_: int, m: int = 3) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "round": round_,
            "candidate": [f"cand-{i:08d}" for i in range(start, start + n)],
            "request_id": f"round{round_}-attempt1",
            "valid": rng.random(n) > 0.05,
            "reason": None,
            "measured_at": "2026-12-02T00:00:00+00:00",
        }
    )
    values = rng.random((n, m))
    for j, objective in enumerate(OBJECTIVES[:m]):
        frame[objective.name] = values[:, j]
    return frame


def _store_scale(rows: int, parts: int) -> None:
    rng = np.random.default_rng(0)
    per_part = rows // parts
    meta = {"objectives": [[o.name, o.direction, None] for o in OBJECTIVES]}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "campaign"
        frames = [_observations(rng, k * per_part, per_part, k) for k in range(parts)]
        start = time.perf_counter()
        with CampaignStore.create(root, meta) as store:
            for frame in frames:
                store.append("observations", frame)
        appended = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (root / "tables").rglob("*.parquet"))
        start = time.perf_counter()
        with CampaignStore.open(root, lock=False) as store:
            opened = time.perf_counter() - start
            start = time.perf_counter()
            observations = store.read("observations")
            read = time.perf_counter() - start
            start = time.perf_counter()
            state = CampaignState.read(store)
            taken = len(state.taken)
            derived = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"store: {len(observations):,} observation rows in {parts} parts, {size / 2**20:.1f} MiB on disk")
    print(f"  append all {appended:.2f} s | open (checksums, load) {opened:.2f} s | read {read:.3f} s")
    print(f"  campaign state ({taken:,} candidates taken) {derived:.2f} s | peak memory {peak:,.0f} MiB")


def _median_seconds(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _front(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    """``n`` points on the positive unit sphere: all mutually non-dominated (maximized)."""
    points = np.abs(rng.standard_normal((n, m)))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def _hypervolume_scale() -> None:
    rng = np.random.default_rng(1)
    print("hypervolume: objectives, points, kind, moocore s, function s (ratio), round's path s (ratio)")
    for m in (2, 3, 4):
        objectives = OBJECTIVES[:m] if m <= 3 else (*OBJECTIVES, Objective("k", "min"))
        cases = [(n, "cloud") for n in (1_000, 10_000, 100_000)] + [(n, "front") for n in (1_000, 10_000)]
        for n, kind in cases:
            values = rng.random((n, m)) if kind == "cloud" else _front(rng, n, m)
            frame = pd.DataFrame({"round": 0, "candidate": [str(i) for i in range(n)], "valid": True})
            for j, objective in enumerate(objectives):  # raw units: minimized ones negated back
                frame[objective.name] = values[:, j] if objective.direction == "max" else -values[:, j]
            ref = torch.full((m,), -0.1, dtype=torch.double)
            maximized = values.copy()

            def ours(frame=frame, objectives=objectives, ref=ref) -> float:
                Y = to_max_space(raw_values(valid_observations(frame), objectives), objectives)
                return hypervolume(Y, ref)

            def direct(maximized=maximized, ref=ref) -> float:
                return float(moocore.hypervolume(maximized, ref=ref.numpy(), maximise=True))

            Y = torch.from_numpy(maximized)

            def function(Y=Y, ref=ref) -> float:
                return hypervolume(Y, ref)

            assert abs(ours() - direct()) <= 1e-9 * direct() and function() == direct()
            theirs, fn, path = _median_seconds(direct), _median_seconds(function), _median_seconds(ours)
            print(
                f"  {m}  {n:>7,}  {kind:5}  {theirs:8.4f}  {fn:8.4f} ({fn / theirs:4.2f})  "
                f"{path:8.4f} ({path / theirs:5.2f})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=100)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    _hypervolume_scale()
    _store_scale(args.rows, args.parts)


if __name__ == "__main__":
    main()
