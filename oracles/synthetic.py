"""Synthetic oracles on a GridSpace, built on BoTorch's multi-objective test functions.

The grid's levels are mapped to the function's bounds; the formulas are BoTorch's, in
their native minimization form, so objectives are declared ``min`` with BoTorch's
reference points.
"""

from __future__ import annotations

import torch
from botorch.test_functions.base import MultiObjectiveTestProblem
from botorch.test_functions.multi_objective import DTLZ2, BraninCurrin
from torch import Tensor

from paretolab.data.spaces import GridSpace, SearchSpace
from paretolab.oracles.base import Objective, Oracle

__all__ = ["BraninCurrinOracle", "DTLZ2Oracle", "GridTestProblemOracle"]


class GridTestProblemOracle(Oracle):
    """A BoTorch multi-objective test problem evaluated at grid points."""

    def __init__(self, space: SearchSpace, problem: MultiObjectiveTestProblem, names: list[str]) -> None:
        if not isinstance(space, GridSpace) or space.dims != problem.dim:
            raise ValueError(
                f"{type(self).__name__} needs a grid space with {problem.dim} dims, got {space!r}"
            )
        super().__init__(space)
        self.problem = problem
        self.objectives = tuple(Objective(n, "min") for n in names)
        self.ref_point = tuple(float(v) for v in problem.ref_point)

    def _evaluate(self, xs: list[str]) -> Tensor:
        space: GridSpace = self.space  # type: ignore[assignment]
        unit = space.featurize(xs)
        lower, upper = self.problem.bounds.to(unit)
        with torch.no_grad():
            return self.problem(lower + unit * (upper - lower))


class BraninCurrinOracle(GridTestProblemOracle):
    """Branin (min) and Currin (min) on a 2-D grid; BoTorch's reference point (18, 6)."""

    objectives = (Objective("branin", "min"), Objective("currin", "min"))

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(space, BraninCurrin(), ["branin", "currin"])


class DTLZ2Oracle(GridTestProblemOracle):
    """DTLZ2 with ``num_objectives`` objectives (all min) on a grid of any dimension."""

    objectives_help = "f1 .. f<num_objectives> (min)"

    def __init__(self, space: SearchSpace, num_objectives: int = 2) -> None:
        dims = getattr(space, "dims", 0)
        if not 2 <= num_objectives <= max(dims, 2):
            raise ValueError(f"DTLZ2 needs 2 <= num_objectives <= dims, got {num_objectives}")
        problem = DTLZ2(dim=max(dims, num_objectives), num_objectives=num_objectives)
        super().__init__(space, problem, [f"f{i + 1}" for i in range(num_objectives)])
