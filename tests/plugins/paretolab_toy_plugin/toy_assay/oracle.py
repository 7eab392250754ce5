"""ToyAssay: a stand-in for a real assay, as a template for your own oracle.

An oracle subclasses :class:`paretolab.Oracle`, declares its ``objectives`` (name,
direction, unit) and writes ``_evaluate``; the base class checks candidates against the
campaign's search space before, and the returned values after.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paretolab import Objective, Oracle, SearchSpace


class ToyAssay(Oracle):
    """Toy assay on a grid: signal grows with the levels, cost with their spread."""

    objectives = (Objective("signal", "max", "RFU"), Objective("cost", "min", "USD"))

    def __init__(self, space: SearchSpace, scale: float = 1.0) -> None:
        # Constructor parameters after ``space`` come from the config's ``oracle.params``.
        super().__init__(space)
        self.scale = float(scale)

    def _evaluate(self, xs: list[str]) -> Tensor:
        """``xs`` are valid canonical grid candidates such as ``"3,7"``; one row per candidate."""
        rows = []
        for x in xs:
            levels = [int(v) for v in x.split(",")]
            signal = self.scale * sum(levels)
            cost = 1.0 + sum((v - levels[0]) ** 2 for v in levels) / len(levels)
            rows.append((signal, cost))
        return torch.tensor(rows, dtype=torch.double)
