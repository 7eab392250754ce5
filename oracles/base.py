"""The Oracle contract: the only thing in paretolab that measures candidates.

The public ``__call__`` validates candidates against the space, calls the subclass's
``_evaluate`` on the valid ones and checks what comes back. Invalid candidates and
non-finite values are data (a NaN row plus a reason). A call that raises or returns the
wrong shape fails as a whole with :class:`OracleError`: the caller (the round's
``evaluate`` step, which records every request first) retries it or isolates the failing
candidates one by one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from paretolab.data.objectives import Objective
from paretolab.data.spaces import SearchSpace

__all__ = ["Objective", "Oracle", "OracleError", "OracleResult"]


@dataclass(frozen=True)
class OracleResult:
    """Measured values ``n x m`` in raw units (NaN rows for failures) and reasons."""

    values: Tensor
    reasons: list[str | None]

    @property
    def valid(self) -> Tensor:
        return torch.tensor([r is None for r in self.reasons], dtype=torch.bool)


class OracleError(RuntimeError):
    """The oracle failed for the whole batch; retrying may help."""


class Oracle(ABC):
    """Base class of every oracle.

    Subclasses set ``objectives`` (and optionally ``ref_point``, in raw units) and write
    ``_evaluate(xs) -> Tensor n x m`` for canonical, valid candidates; one that knows why a
    candidate failed returns an :class:`OracleResult` with NaN rows and reasons instead.
    """

    objectives: tuple[Objective, ...]
    objectives_help: str = "set by its params"
    """What ``paretolab oracles list`` says when ``objectives`` is only known per instance."""
    ref_point: tuple[float, ...] | None = None
    asynchronous: bool = False
    """True for oracles that answer later (labs): the round submits a request, and results
    come in through ``paretolab submit``, a watched folder or the Prefect UI."""
    isolate_failures: bool = True
    """When a batch call fails, send its candidates one by one to find the failing ones
    (each send is recorded). Set False where every call is costly (labs)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    def seed_candidates(self, n: int, rng: torch.Generator) -> list[str] | None:
        """``n`` starting candidates drawn from where the oracle's feasible designs lie (a
        simulator's natural distribution), for the initial design; ``None`` (the default):
        the initial design samples the space uniformly."""
        return None

    @abstractmethod
    def _evaluate(self, xs: list[str]) -> Tensor | OracleResult:
        """Raw objective values ``n x m`` of valid canonical candidates ``xs`` (or values
        and per-candidate failure reasons)."""

    def __call__(self, xs: Sequence[str]) -> OracleResult:
        """Measure ``xs``; invalid candidates and non-finite values are NaN rows with a reason.

        Raises OracleError when the call itself fails (exception, wrong shape).
        """
        m = self.num_objectives
        values = torch.full((len(xs), m), math.nan, dtype=torch.double)
        reasons: list[str | None] = [None] * len(xs)
        valid_idx: list[int] = []
        canonical: list[str] = []
        for i, x in enumerate(xs):
            check = self.space.check(x)
            if check.canonical is None:
                reasons[i] = f"invalid candidate: {check.reason}"
            else:
                valid_idx.append(i)
                canonical.append(check.canonical)
        if canonical:
            batch_values, batch_reasons = self._measure(canonical)
            values[valid_idx] = batch_values
            for i, reason in zip(valid_idx, batch_reasons, strict=True):
                reasons[i] = reason
        return OracleResult(values, reasons)

    def _measure(self, xs: list[str]) -> tuple[Tensor, list[str | None]]:
        try:
            out = self._evaluate(xs)
        except Exception as exc:
            raise OracleError(f"{type(self).__name__} raised {type(exc).__name__}: {exc}") from exc
        n, m = len(xs), self.num_objectives
        given: list[str | None] = [None] * n
        if isinstance(out, OracleResult):
            if len(out.reasons) != n:
                raise OracleError(
                    f"{type(self).__name__} returned {len(out.reasons)} reasons for {n} candidates"
                )
            out, given = out.values, list(out.reasons)
        try:
            values = torch.as_tensor(out, dtype=torch.double).detach().cpu().clone()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise OracleError(f"{type(self).__name__} returned a non-numeric result ({exc})") from exc
        if values.ndim == 1 and m == 1:
            values = values.unsqueeze(-1)
        if values.shape != (n, m):
            raise OracleError(
                f"{type(self).__name__} returned shape {tuple(values.shape)}, expected ({n}, {m})"
            )
        finite = torch.isfinite(values)
        reasons: list[str | None] = []
        for row, reason in zip(finite.tolist(), given, strict=True):
            bad = [o.name for o, ok in zip(self.objectives, row, strict=True) if not ok]
            reasons.append(reason or (f"non-finite value for {', '.join(bad)}" if bad else None))
        failed = ~finite.all(dim=1) | torch.tensor([r is not None for r in reasons], dtype=torch.bool)
        values[failed] = math.nan
        return values, reasons
