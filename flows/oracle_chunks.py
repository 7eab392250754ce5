"""The oracle call of a round, split into chunks that run as tasks: in this process (the
default) or on a Dask cluster (``runtime.task_runner``).

A chunk's results are written to a *receipt* (``oracle_receipts/<request>/chunk_<k>.json``
in the campaign directory) the moment the oracle returns, before the task returns them. A
task that runs again finds its receipt and returns it without calling the oracle: Dask
re-runs a finished task whose worker died before its result was collected (prefect-dask
issue #15442), and such a re-run must not pay for the measurements twice. The receipts of a
request are removed once its observations are in the store (which is then the record).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Sequence
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
    "join_results",
    "measure_chunk",
    "measure_here",
    "receipt_paths",
]

RECEIPTS_DIR = "oracle_receipts"

MeasureChunks = Callable[[Oracle, list[list[str]], list[Path]], list[OracleResult]]
"""Runs :func:`measure_chunk` for each chunk and its receipt, in order: the round's
oracle scale-out hook (``measure_here``, or mapped Prefect tasks on the flow's runner)."""


def chunks_of(xs: Sequence[str], size: int | None) -> list[list[str]]:
    """``xs`` in consecutive chunks of at most ``size`` (one chunk when ``size`` is None)."""
    if not size or size >= len(xs):
        return [list(xs)]
    return [list(xs[i : i + size]) for i in range(0, len(xs), size)]


def receipt_paths(campaign_dir: Path, request_id: str, n: int) -> list[Path]:
    """Where the receipts of the ``n`` chunks of ``request_id`` go."""
    folder = Path(campaign_dir) / RECEIPTS_DIR / request_id
    return [folder / f"chunk_{k:04d}.json" for k in range(n)]


def forget_receipts(campaign_dir: Path, prefix: str) -> None:
    """Remove the receipts of every request whose id starts with ``prefix`` (their
    observations are recorded: the store is the record now)."""
    folder = Path(campaign_dir) / RECEIPTS_DIR
    if folder.is_dir():
        for request in folder.glob(f"{prefix}*"):
            shutil.rmtree(request, ignore_errors=True)


def _read_receipt(path: Path, xs: list[str]) -> OracleResult | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none, or a torn one (atomic writes make that rare): measure
        return None
    if data.get("candidates") != xs:
        return None
    values = torch.tensor(
        [[math.nan if v is None else v for v in row] for row in data["values"]], dtype=torch.double
    )
    return OracleResult(values.reshape(len(xs), -1), data["reasons"])


def measure_chunk(oracle: Oracle, xs: list[str], receipt: Path) -> OracleResult:
    """The oracle's results for ``xs``: from the receipt if this chunk was measured before,
    else measured now and written to the receipt before they are returned."""
    done = _read_receipt(receipt, xs)
    if done is not None:
        return done
    result = oracle(xs)
    receipt.parent.mkdir(parents=True, exist_ok=True)
    values = [[None if math.isnan(v) else v for v in row] for row in result.values.tolist()]
    text = json.dumps({"candidates": xs, "values": values, "reasons": list(result.reasons)})
    atomic_write(receipt, lambda fh: fh.write(text.encode()))
    crash_point("oracle_chunk.receipt_written")  # measured and kept; not returned yet
    return result


def measure_here(oracle: Oracle, chunks: list[list[str]], receipts: list[Path]) -> list[OracleResult]:
    """Each chunk in turn, in this process."""
    return [measure_chunk(oracle, xs, receipt) for xs, receipt in zip(chunks, receipts, strict=True)]


def join_results(results: list[OracleResult]) -> OracleResult:
    """The chunks' results as one, in order."""
    if len(results) == 1:
        return results[0]
    return OracleResult(torch.cat([r.values for r in results]), [x for r in results for x in r.reasons])
