"""Objectives: a name, a direction and a unit. Everything is maximized internally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor

__all__ = ["RESERVED_NAMES", "Objective", "parse_objectives", "to_max_space"]

RESERVED_NAMES = frozenset(
    {
        "round",
        "candidate",
        "candidate_id",
        "request_id",
        "valid",
        "reason",
        "failure_reason",
        "measured_at",
        "generator",
        "replicate",
        "replicates",
    }
)
"""Column names of the observation table and lab files that an objective may not take."""


@dataclass(frozen=True)
class Objective:
    """A named objective, whether larger (``max``) or smaller (``min``) is better, and the
    unit its raw values are in (None: unitless or not declared)."""

    name: str
    direction: Literal["max", "min"] = "max"
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"objective {self.name!r}: direction must be 'max' or 'min'")
        if not self.name or self.name in RESERVED_NAMES:
            raise ValueError(f"objective name {self.name!r} is empty or reserved")
        if any(c in self.name for c in "[]"):
            raise ValueError(f"objective name {self.name!r}: brackets are reserved for units")
        if self.unit is not None and (not self.unit.strip() or any(c in self.unit for c in "[]")):
            raise ValueError(f"objective {self.name!r}: unit {self.unit!r} is empty or has brackets")

    @property
    def column(self) -> str:
        """Column header of this objective in lab request and results files: ``name [unit]``."""
        return f"{self.name} [{self.unit}]" if self.unit else self.name

    @classmethod
    def from_spec(cls, spec: object) -> Objective:
        """From a config entry: ``{name, direction, unit}`` or ``[name, direction(, unit)]``."""
        if isinstance(spec, Objective):
            return spec
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "direction", "unit"}
            if unknown or "name" not in spec:
                raise ValueError(
                    f"objective {spec!r}: expected keys name, direction (max/min), unit (optional)"
                )
            return cls(str(spec["name"]), spec.get("direction", "max"), spec.get("unit"))
        if isinstance(spec, list | tuple) and 1 <= len(spec) <= 3:
            return cls(*spec)
        raise ValueError(f"objective {spec!r}: expected a mapping with name, direction, unit")

    @property
    def sign(self) -> float:
        """+1 for maximized objectives, -1 for minimized ones (maximization space)."""
        return 1.0 if self.direction == "max" else -1.0


def parse_objectives(specs: object) -> tuple[Objective, ...]:
    """Objectives from config entries (see :meth:`Objective.from_spec`); names must be distinct."""
    if isinstance(specs, str | bytes | dict) or not isinstance(specs, Sequence) or not specs:
        raise ValueError(f"objectives: expected a non-empty list of {{name, direction, unit}}, got {specs!r}")
    parsed = tuple(Objective.from_spec(s) for s in specs)
    names = [o.name for o in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives: names must be distinct, got {names}")
    return parsed


def to_max_space(values: Tensor, objectives: Sequence[Objective]) -> Tensor:
    """Raw objective values ``n x m`` -> maximization space (minimized ones negated).

    The map is its own inverse, so it also takes maximization space back to raw units.
    """
    signs = values.new_tensor([o.sign for o in objectives])
    return values * signs
