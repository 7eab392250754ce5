"""Oracles for tests: they count calls on disk and fail on purpose."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import Tensor

from paretolab.data.faults import crash_point
from paretolab.data.spaces import SearchSpace
from paretolab.oracles.lab import LabOracle, LabRequest
from paretolab.oracles.synthetic import BraninCurrinOracle

CALL_LOG = "PARETOLAB_TEST_CALL_LOG"
RETURN_LOG = "PARETOLAB_TEST_RETURN_LOG"
SUBMIT_LOG = "PARETOLAB_TEST_SUBMIT_LOG"
CHARGE_LOG = "PARETOLAB_TEST_CHARGE_LOG"


def _log(variable: str, lines: list[str]) -> None:
    """Append ``lines`` to the file named by ``$variable`` (if set), durably."""
    if variable not in os.environ:
        return
    with Path(os.environ[variable]).open("a") as fh:
        fh.write("".join(f"{line}\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())


class CountingOracle(BraninCurrinOracle):
    """Branin-Currin that appends every candidate it is sent to $PARETOLAB_TEST_CALL_LOG.

    The line is written and fsynced before the values are computed, so a process killed
    inside the call still leaves the count of what it was asked to measure.
    """

    def _evaluate(self, xs: list[str]) -> Tensor:
        _log(CALL_LOG, xs)
        crash_point("oracle.mid_call")
        values = super()._evaluate(xs)
        _log(
            RETURN_LOG,
            [f"{x} {' '.join(repr(float(v)) for v in row)}" for x, row in zip(xs, values, strict=True)],
        )
        return values


class ChargingOracle(BraninCurrinOracle):
    """Branin-Currin that takes ``delay`` seconds a call and, when it returns, records each
    candidate it charged for (and the process that measured it) in
    $PARETOLAB_TEST_CHARGE_LOG: a call cut off before it returns is not charged."""

    def __init__(self, space: SearchSpace, delay: float = 0.0) -> None:
        super().__init__(space)
        self.delay = delay

    def _evaluate(self, xs: list[str]) -> Tensor:
        time.sleep(self.delay)
        values = super()._evaluate(xs)
        _log(CHARGE_LOG, [f"{x} {os.getpid()}" for x in xs])
        return values


class CountingLab(LabOracle):
    """A lab that appends the id of every request it actually sends to $PARETOLAB_TEST_SUBMIT_LOG."""

    def submit(self, request: LabRequest, folder: Path) -> bool:
        sent = super().submit(request, folder)
        if sent:
            _log(SUBMIT_LOG, [request.request_id])
        return sent


class FlakyOracle(CountingOracle):
    """Fails for chosen first coordinates in chosen ways: NaN, inf, raising (whole call)."""

    def __init__(
        self, space: SearchSpace, nan_level: int = 1, inf_level: int = 2, raise_level: int = 3
    ) -> None:
        super().__init__(space)
        self.nan_level, self.inf_level, self.raise_level = nan_level, inf_level, raise_level

    def _evaluate(self, xs: list[str]) -> Tensor:
        firsts = [int(x.split(",")[0]) for x in xs]
        values = super()._evaluate(xs)
        if self.raise_level in firsts:
            raise RuntimeError(f"instrument error at level {self.raise_level}")
        for i, first in enumerate(firsts):
            if first == self.nan_level:
                values[i, 0] = math.nan
            if first == self.inf_level:
                values[i, 1] = math.inf
        return values


class BrokenOracle(BraninCurrinOracle):
    """Raises for every call until the file $PARETOLAB_TEST_REPAIRED exists."""

    def _evaluate(self, xs: list[str]) -> Tensor:
        if not Path(os.environ.get("PARETOLAB_TEST_REPAIRED", "/nonexistent")).exists():
            raise ConnectionError("instrument offline")
        return super()._evaluate(xs)


class NaNOracle(BraninCurrinOracle):
    """Measures nothing: every value is NaN."""

    def _evaluate(self, xs: list[str]) -> Tensor:
        return torch.full((len(xs), 2), math.nan)


class WrongShapeOracle(BraninCurrinOracle):
    """Returns one row too few."""

    def _evaluate(self, xs: list[str]) -> Tensor:
        return torch.zeros(len(xs) - 1, 2)
