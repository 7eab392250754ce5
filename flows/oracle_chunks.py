"""The oracle call of a round, split into chunks that run as tasks: in this process (the
default) or on a Dask cluster (``runtime.task_runner``).

Each candidate's result is written to a *receipt* (``oracle_receipts/round<r>/<hash>.json``
in the campaign directory) the moment the oracle returns, before the task returns it. A
chunk asks the oracle only for its candidates without a receipt: Dask re-runs a finished
task whose worker died before its result was collected (prefect-dask issue #15442), a
failed batch is resent one candidate at a time, a crashed round is resumed as a new
attempt; none of these pays for a measurement twice. A round's receipts are removed once
its observations are in the store (which is then the record).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from paretolab.data.faults import crash_point
from paretolab.data.store import atomic_write
from paretolab.oracles.base import Oracle, OracleResult

__all__ = [
    "RECEIPTS_DIR",
    "MeasureChunks",
    "chunks_of",
    "forget_receipts",
    "forget_settled_receipts",
    "join_results",
    "measure_chunk",
    "measure_here",
    "receipt_folder",
]

RECEIPTS_DIR = "oracle_receipts"

MeasureChunks = Callable[[Oracle, list[list[str]], Path], list[OracleResult]]
"""Runs :func:`measure_chunk` for each chunk with the round's receipt folder, in order: the
round's oracle scale-out hook (``measure_here``, or mapped Prefect tasks on the flow's
runner)."""


def chunks_of(xs: Sequence[str], size: int | None) -> list[list[str]]:
    """``xs`` in consecutive chunks of at most ``size`` (one chunk when ``size`` is None)."""
    if not size or size >= len(xs):
        return [list(xs)]
    return [list(xs[i : i + size]) for i in range(0, len(xs), size)]


def receipt_folder(campaign_dir: Path, round_: int) -> Path:
    """Where round ``round_``'s receipts go: an absolute path, which Dask workers on other
    machines reach through a shared file system."""
    return Path(campaign_dir).resolve() / RECEIPTS_DIR / f"round{round_}"


def forget_receipts(campaign_dir: Path, round_: int) -> None:
    """Remove round ``round_``'s receipts (its observations are recorded: the store is the
    record now)."""
    shutil.rmtree(receipt_folder(campaign_dir, round_), ignore_errors=True)


def forget_settled_receipts(campaign_dir: Path, recorded_rounds: Iterable[int]) -> None:
    """Remove the receipts of every round whose observations are recorded. Called when a
    run's task runner is closed, not when the round closes: Dask recomputes a finished
    chunk whose result died with its worker while its future is still held, possibly after
    the round closed, and that late re-run must find its receipts to charge nothing."""
    for round_ in set(recorded_rounds):
        forget_receipts(campaign_dir, int(round_))


def _receipt(folder: Path, x: str) -> Path:
    return folder / f"{hashlib.sha256(x.encode()).hexdigest()[:32]}.json"


def _read_receipt(path: Path, x: str) -> tuple[list[float], str | None] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none, or a torn one (atomic writes make that rare): measure
        return None
    if data.get("candidate") != x:
        return None
    return [math.nan if v is None else v for v in data["values"]], data["reason"]


def measure_chunk(oracle: Oracle, xs: list[str], folder: Path) -> OracleResult:
    """The oracle's results for ``xs``: those with a receipt in ``folder`` from it, the
    others measured now (one call) and each written to its receipt before they are
    returned."""
    known = {x: found for x in xs if (found := _read_receipt(_receipt(folder, x), x)) is not None}
    todo = [x for x in xs if x not in known]
    if todo:
        result = oracle(todo)
        folder.mkdir(parents=True, exist_ok=True)
        for x, row, reason in zip(todo, result.values.tolist(), result.reasons, strict=True):
            values = [None if math.isnan(v) else v for v in row]
            text = json.dumps({"candidate": x, "values": values, "reason": reason})
            atomic_write(
                _receipt(folder, x), lambda fh, text=text: fh.write(text.encode()), crash_points=False
            )
            known[x] = (row, reason)
        crash_point("oracle_chunk.receipt_written")  # measured and kept; not returned yet
    values = torch.tensor([known[x][0] for x in xs], dtype=torch.double)
    return OracleResult(values.reshape(len(xs), -1), [known[x][1] for x in xs])


def measure_here(oracle: Oracle, chunks: list[list[str]], folder: Path) -> list[OracleResult]:
    """Each chunk in turn, in this process."""
    return [measure_chunk(oracle, xs, folder) for xs in chunks]


def join_results(results: list[OracleResult]) -> OracleResult:
    """The chunks' results as one, in order."""
    if len(results) == 1:
        return results[0]
    return OracleResult(torch.cat([r.values for r in results]), [x for r in results for x in r.reasons])
