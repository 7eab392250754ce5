"""What guided sampling climbs: a guidance objective of the value heads' predictions.

Two choices (``guidance`` in the config), as LaMBO-2 offers (Gruver et al. 2023, arXiv
2305.20009, section 4.2):

- ``scalarized``: a preference-weighted sum of the heads' mean prediction, one preference
  per seed drawn from Dirichlet(alpha) as MOGFN-PC draws them (Jain et al. 2023);
- ``ehvi``: the expected hypervolume improvement over the measured front, the expectation
  taken over the ensemble's heads (Daulton et al. 2020, qEHVI, eq. 3 with the heads as
  posterior samples); the improvement of one point is the sum over the boxes of the
  non-dominated region of the clipped box volume, which is differentiable in the point.
  A point the front dominates has zero improvement and zero gradient, so a small share
  (``tie_break``) of the equal-weight scalarization keeps the direction alive.

Everything is in the value heads' standardized units (maximized).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning
from torch import Tensor

from paretolab.models.generators.gflownet.conditioning import dirichlet_preferences

__all__ = ["Guidance", "HypervolumeGuidance", "ScalarizedGuidance"]


class Guidance(ABC):
    """A differentiable objective of the heads' predictions ``ensemble x n x m`` -> ``n``,
    for ``n`` rows whose per-row settings :meth:`draw` prepared."""

    @abstractmethod
    def draw(self, n: int, rng: torch.Generator) -> None:
        """Prepare ``n`` rows (e.g. draw a preference per row)."""

    @abstractmethod
    def __call__(self, values: Tensor) -> Tensor:
        """Guidance objective ``n`` (higher is better)."""

    def repeat(self, rows: Tensor) -> Guidance:
        """The same objective for the rows ``rows`` (indices into the drawn rows)."""
        return self


class ScalarizedGuidance(Guidance):
    """``sum_j w_j * mean_k v_kj`` with ``w ~ Dirichlet(alpha)`` per row."""

    def __init__(self, num_objectives: int, alpha: float = 1.0) -> None:
        if alpha <= 0:
            raise ValueError(f"Dirichlet alpha must be positive, got {alpha}")
        self.num_objectives = num_objectives
        self.alpha = alpha
        self.weights = torch.full((0, num_objectives), 1.0 / num_objectives)

    def draw(self, n: int, rng: torch.Generator) -> None:
        self.weights = dirichlet_preferences(n, self.num_objectives, self.alpha, rng).float()

    def __call__(self, values: Tensor) -> Tensor:
        return (values.mean(0) * self.weights.to(values)).sum(-1)

    def repeat(self, rows: Tensor) -> ScalarizedGuidance:
        other = ScalarizedGuidance(self.num_objectives, self.alpha)
        other.weights = self.weights[rows.cpu()]
        return other


class HypervolumeGuidance(Guidance):
    """Expected hypervolume improvement over ``front`` (``p x m``, maximized, above
    ``ref`` ``m``) with the heads as the samples; plus ``tie_break`` times the
    equal-weight scalarization."""

    def __init__(self, front: Tensor, ref: Tensor, tie_break: float = 1e-3) -> None:
        front = front.detach().double().cpu()
        ref = ref.detach().double().cpu()
        self.m = len(ref)
        self.tie_break = tie_break
        if self.m == 1:
            best = torch.cat([front.reshape(-1), ref]).max()
            self.lower, self.upper = best.reshape(1, 1), torch.full((1, 1), float("inf"))
        else:
            above = front[(front > ref).all(-1)]
            bounds = FastNondominatedPartitioning(ref_point=ref, Y=above).get_hypercell_bounds()
            self.lower, self.upper = bounds[0], bounds[1]

    def draw(self, n: int, rng: torch.Generator) -> None:
        return None

    def improvement(self, points: Tensor) -> Tensor:
        """Hypervolume improvement of each point ``... x m`` on its own, ``...``."""
        lower, upper = self.lower.to(points), self.upper.to(points)
        sides = (torch.minimum(points.unsqueeze(-2), upper) - lower).clamp_min(0.0)
        return sides.prod(-1).sum(-1)

    def __call__(self, values: Tensor) -> Tensor:
        return self.improvement(values).mean(0) + self.tie_break * values.mean(0).mean(-1)
