"""The multi-objective HyperGrid tasks of the MOGFN and OP-GFN papers.

Jain et al. 2023 (arXiv 2210.12765, sec. 5.1) and Chen & Mauch 2024 (arXiv 2310.00386)
place a 2-D grid of ``H`` levels on ``[-1, 1]^2`` and score each point with normalized
Branin, Currin, Shubert and Beale functions, all maximized and roughly in ``[0, 1]``
(constants as in the papers' reference code).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from paretolab.data.spaces import GridSpace, SearchSpace
from paretolab.oracles.base import Objective, Oracle

__all__ = ["HYPERGRID_FUNCTIONS", "HyperGridOracle", "hypergrid_values"]


def _branin(x: Tensor) -> Tensor:
    x0 = 15 * (x[..., 0] / 2 + 0.5) - 5
    x1 = 15 * (x[..., 1] / 2 + 0.5)
    t1 = x1 - 5.1 / (4 * math.pi**2) * x0**2 + 5 / math.pi * x0 - 6
    t2 = 10 * (1 - 1 / (8 * math.pi)) * torch.cos(x0)
    return 1 - (t1**2 + t2 + 10) / 308.13


def _currin(x: Tensor) -> Tensor:
    x0 = x[..., 0] / 2 + 0.5
    x1 = x[..., 1] / 2 + 0.5
    factor = 1 - torch.exp(-1 / (2 * x1 + 1e-10))
    numerator = 2300 * x0**3 + 1900 * x0**2 + 2092 * x0 + 60
    denominator = 100 * x0**3 + 500 * x0**2 + 4 * x0 + 20
    return factor * numerator / denominator / 13.77


def _shubert(x: Tensor) -> Tensor:
    x0, x1 = -1.5 * x[..., 0], -1.5 * x[..., 1]
    j = torch.arange(1, 6, dtype=x.dtype)
    s0 = (j * torch.cos((j + 1) * x0.unsqueeze(-1) + j)).sum(-1)
    s1 = (j * torch.cos((j + 1) * x1.unsqueeze(-1) + j)).sum(-1)
    return (s0 * s1 + 186.8) / 397


def _beale(x: Tensor) -> Tensor:
    x0, x1 = x[..., 0], x[..., 1]
    return ((1.5 - x0 + x0 * x1) ** 2 + (2.25 - x0 + x0 * x1**2) ** 2 + (2.625 - x0 + x0 * x1**3) ** 2) / 38.8


HYPERGRID_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "branin": _branin,
    "currin": _currin,
    "shubert": _shubert,
    "beale": _beale,
}


def hypergrid_values(levels: Tensor, size: int, functions: Sequence[str]) -> Tensor:
    """Objective values ``n x m`` (double) of grid levels ``n x 2`` on a ``size``-level grid."""
    x = levels.to(torch.double) / (size - 1) * 2 - 1
    return torch.stack([HYPERGRID_FUNCTIONS[f](x) for f in functions], dim=-1)


class HyperGridOracle(Oracle):
    """The papers' HyperGrid objectives (all maximized) on a 2-D :class:`GridSpace`."""

    objectives_help = "one per entry of params.functions (max)"

    def __init__(self, space: SearchSpace, functions: Sequence[str] = ("branin", "currin")) -> None:
        if not isinstance(space, GridSpace) or space.dims != 2:
            raise ValueError(f"HyperGridOracle needs a 2-D grid space, got {space!r}")
        unknown = sorted(set(functions) - HYPERGRID_FUNCTIONS.keys())
        if unknown or not functions:
            raise ValueError(f"unknown functions {unknown}; choose from {sorted(HYPERGRID_FUNCTIONS)}")
        if len(set(functions)) != len(functions):
            raise ValueError(f"each function may appear once, got {list(functions)}")
        super().__init__(space)
        self.functions = tuple(functions)
        self.objectives = tuple(Objective(f, "max") for f in functions)
        self.ref_point = tuple(0.0 for _ in functions)

    def _evaluate(self, xs: list[str]) -> Tensor:
        space: GridSpace = self.space  # type: ignore[assignment]
        return hypergrid_values(space.encode(xs), space.levels, self.functions)
