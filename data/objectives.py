"""Objectives: a name and a direction. Everything is maximized internally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

__all__ = ["RESERVED_NAMES", "Objective", "to_max_space"]

RESERVED_NAMES = frozenset(
    {"round", "candidate", "request_id", "valid", "reason", "measured_at", "generator"}
)
"""Column names of the observation table that an objective may not take."""


@dataclass(frozen=True)
class Objective:
    """A named objective and whether larger (``max``) or smaller (``min``) is better."""

    name: str
    direction: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"objective {self.name!r}: direction must be 'max' or 'min'")
        if not self.name or self.name in RESERVED_NAMES:
            raise ValueError(f"objective name {self.name!r} is empty or reserved")

    @property
    def sign(self) -> float:
        """+1 for maximized objectives, -1 for minimized ones (maximization space)."""
        return 1.0 if self.direction == "max" else -1.0


def to_max_space(values: Tensor, objectives: Sequence[Objective]) -> Tensor:
    """Raw objective values ``n x m`` -> maximization space (minimized ones negated).

    The map is its own inverse, so it also takes maximization space back to raw units.
    """
    signs = values.new_tensor([o.sign for o in objectives])
    return values * signs
