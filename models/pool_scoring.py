"""Scoring a pool in chunks, through a hook that decides where the chunks run.

A batch is picked greedily, one candidate at a time, and each pick scores the whole pool:
the part of selection that grows with the pool. :func:`score_in_chunks` cuts the pool into
chunks of ``chunk`` rows and hands them to a ``ScoreChunks`` hook; the plain hook
(:func:`score_here`) scores them here, in turn, and the campaign's flow maps them as
Prefect tasks on its task runner (a Dask cluster's workers). Each row's score is computed
the same way whichever runs it, so the picks do not depend on where the chunks ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["ScoreChunks", "chunk_bounds", "score_here", "score_in_chunks"]

ScoreChunks = Callable[[Callable[..., Tensor], Sequence[tuple[Any, ...]]], list[Tensor]]
"""``score(fn, jobs)`` returns ``[fn(*job) for job in jobs]``, run wherever it chooses."""


def score_here(fn: Callable[..., Tensor], jobs: Sequence[tuple[Any, ...]]) -> list[Tensor]:
    """Score every chunk here, in turn."""
    return [fn(*job) for job in jobs]


def chunk_bounds(n: int, chunk: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive chunks of at most ``chunk`` rows (``None``: one)."""
    if n == 0:
        return []
    size = n if chunk is None else chunk
    if size < 1:
        raise ValueError(f"a chunk needs at least one row, got {chunk}")
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def score_in_chunks(
    fn: Callable[..., Tensor],
    rows: Tensor,
    shared: tuple[Any, ...],
    *,
    chunk: int | None,
    score: ScoreChunks = score_here,
    dim: int = 0,
) -> Tensor:
    """``fn(*shared, part)`` for each chunk ``part`` of ``rows`` along ``dim``, joined.

    ``fn`` must be a module-level function (it may be sent to another process) whose
    result for a row does not depend on the other rows of its chunk.
    """
    bounds = chunk_bounds(rows.shape[dim], chunk)
    if not bounds:
        return torch.empty(0, dtype=rows.dtype, device=rows.device)
    # a copy, not a view: a view sent to another process would carry the whole pool along
    jobs = [(*shared, rows.narrow(dim, start, stop - start).clone()) for start, stop in bounds]
    return torch.cat([part.to(rows.device) for part in score(fn, jobs)])
