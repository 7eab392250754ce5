"""The Oracle contract: the only thing in paretolab that measures candidates.

The public ``__call__`` validates candidates against the space, calls the subclass's
``_evaluate`` on the valid ones and checks what comes back. Invalid or failed candidates
are data (a NaN row plus a reason), never an exception that stops a round; an oracle that
fails for the *whole* batch raises :class:`OracleError` so the caller can retry it.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from data.objectives import Objective
from data.spaces import SearchSpace

__all__ = ["Objective", "Oracle", "OracleError", "OracleResult"]

logger = logging.getLogger(__name__)


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
    ``_evaluate(xs) -> Tensor n x m`` for canonical, valid candidates.
    """

    objectives: tuple[Objective, ...]
    ref_point: tuple[float, ...] | None = None
    isolate_failures: bool = True
    """On a batch exception, evaluate candidates one by one to find the failing ones.
    Set False for oracles where every call is costly (labs)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.calls = 0
        """Candidates sent to ``_evaluate`` by this instance (retries included)."""

    @property
    def num_objectives(self) -> int:
        return len(self.objectives)

    @abstractmethod
    def _evaluate(self, xs: list[str]) -> Tensor:
        """Raw objective values ``n x m`` of valid canonical candidates ``xs``."""

    def __call__(self, xs: Sequence[str]) -> OracleResult:
        """Measure ``xs``; failures are NaN rows with a reason."""
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
            return self._checked(xs, self._call(xs))
        except Exception as exc:
            if not self.isolate_failures or len(xs) == 1:
                raise OracleError(f"{type(self).__name__} failed: {exc}") from exc
            logger.warning("oracle failed on a batch of %d (%s); isolating failures", len(xs), exc)
        values, reasons = [], []
        for x in xs:
            try:
                v, r = self._checked([x], self._call([x]))
            except Exception as exc:
                v = torch.full((1, self.num_objectives), math.nan, dtype=torch.double)
                r = [f"oracle raised {type(exc).__name__}: {exc}"]
            values.append(v)
            reasons.extend(r)
        if all(r is not None for r in reasons):
            raise OracleError(f"{type(self).__name__} failed for every candidate: {reasons[0]}")
        return torch.cat(values), reasons

    def _call(self, xs: list[str]) -> Tensor:
        self.calls += len(xs)
        return self._evaluate(xs)

    def _checked(self, xs: list[str], out: object) -> tuple[Tensor, list[str | None]]:
        n, m = len(xs), self.num_objectives
        try:
            values = torch.as_tensor(out, dtype=torch.double).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as exc:
            values, why = None, f"oracle returned a non-numeric result ({exc})"
        else:
            if values.ndim == 1 and m == 1:
                values = values.unsqueeze(-1)
            why = (
                None
                if values.shape == (n, m)
                else (f"oracle returned shape {tuple(values.shape)}, expected ({n}, {m})")
            )
        if why is not None:
            return torch.full((n, m), math.nan, dtype=torch.double), [why] * n
        reasons: list[str | None] = []
        finite = torch.isfinite(values)
        for row in range(n):
            bad = [o.name for o, ok in zip(self.objectives, finite[row].tolist(), strict=False) if not ok]
            reasons.append(f"non-finite value for {', '.join(bad)}" if bad else None)
        values[~finite.all(dim=1)] = math.nan
        return values, reasons
