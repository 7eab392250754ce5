"""What a preference-conditional GFlowNet is conditioned on: preferences and temperature.

Preferences ``w`` are drawn from Dirichlet(alpha) on the simplex, the inverse temperature
``beta`` is fixed or uniform on a range; both are thermometer-encoded as in the MOGFN
reference code (Jain et al. 2023, appendix B) and concatenated to the policy input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Conditioning", "ConditionSampler", "dirichlet_preferences", "simplex_grid", "thermometer"]


def thermometer(values: Tensor, bins: int, low: float, high: float) -> Tensor:
    """Thermometer encoding ``... x bins`` of ``values`` in ``[low, high]``: bin ``j`` is
    the clamped fraction of the way ``values`` go past the ``j``-th of ``bins`` equally
    spaced levels, so nearby values get nearby codes."""
    levels = torch.linspace(low, high, bins, dtype=values.dtype, device=values.device)
    gap = (high - low) / max(bins - 1, 1)
    return ((values.unsqueeze(-1) - levels) / gap).clamp(0.0, 1.0)


def simplex_grid(m: int, bins: int) -> Tensor:
    """All points of the simplex in ``m`` dimensions with coordinates in ``k / bins``
    (the fixed weight set of the R2 indicator and of spread-out proposals), ``n x m``."""
    if m == 1:
        return torch.ones(1, 1, dtype=torch.double)
    points = [(*rest, bins - sum(rest)) for rest in np.ndindex(*([bins + 1] * (m - 1))) if sum(rest) <= bins]
    return torch.tensor(points, dtype=torch.double) / bins


def dirichlet_preferences(n: int, num_objectives: int, alpha: float, rng: torch.Generator) -> Tensor:
    """``n`` preference vectors ``n x m`` (double) drawn from Dirichlet(alpha) on the simplex,
    seeded from ``rng`` (torch has no seeded Dirichlet sampler)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=rng))
    return torch.from_numpy(np.random.default_rng(seed).dirichlet([alpha] * num_objectives, size=n))


@dataclass
class Conditioning:
    """Preferences ``n x m`` and inverse temperatures ``n`` of a batch of trajectories."""

    preferences: Tensor
    beta: Tensor

    def __len__(self) -> int:
        return len(self.beta)

    def to(self, device: torch.device) -> Conditioning:
        return Conditioning(self.preferences.to(device), self.beta.to(device))


class ConditionSampler:
    """Draws and encodes conditionings.

    ``beta`` is a number (fixed) or a ``(low, high)`` range sampled uniformly. What does
    not vary carries no information and is left out of the encoding: a fixed ``beta``, and
    the preference of a single objective (then the encoding is empty and the GFlowNet is
    unconditional).
    """

    def __init__(
        self,
        num_objectives: int,
        beta: float | tuple[float, float],
        alpha: float = 1.0,
        bins: int = 50,
    ) -> None:
        if num_objectives < 1:
            raise ValueError(f"need at least one objective, got {num_objectives}")
        if alpha <= 0:
            raise ValueError(f"Dirichlet alpha must be positive, got {alpha}")
        low, high = (float(beta), float(beta)) if isinstance(beta, int | float) else map(float, beta)
        if not 0 < low <= high:
            raise ValueError(f"beta must be positive with low <= high, got {beta}")
        self.num_objectives = num_objectives
        self.beta_range = (low, high)
        self.alpha = alpha
        self.bins = bins
        self.encoding_size = (bins * num_objectives if num_objectives > 1 else 0) + (
            bins if high > low else 0
        )

    @property
    def beta_max(self) -> float:
        return self.beta_range[1]

    def sample(self, n: int, rng: torch.Generator) -> Conditioning:
        """``n`` conditionings: Dirichlet preferences and uniform (or fixed) beta."""
        preferences = dirichlet_preferences(n, self.num_objectives, self.alpha, rng)
        low, high = self.beta_range
        beta = low + (high - low) * torch.rand(n, generator=rng, dtype=torch.double)
        return Conditioning(preferences.float(), beta.float())

    def fixed(self, preferences: Tensor, beta: float | None = None) -> Conditioning:
        """Conditionings for given preferences ``n x m`` at ``beta`` (default: the highest)."""
        preferences = torch.as_tensor(preferences, dtype=torch.float32).reshape(-1, self.num_objectives)
        value = self.beta_max if beta is None else beta
        return Conditioning(preferences, torch.full((len(preferences),), float(value)))

    def encode(self, conditioning: Conditioning) -> Tensor:
        """Policy input ``n x encoding_size``."""
        n = len(conditioning)
        parts = [torch.empty(n, 0, device=conditioning.beta.device)]
        if self.num_objectives > 1:
            parts.append(thermometer(conditioning.preferences, self.bins, 0.0, 1.0).flatten(1))
        low, high = self.beta_range
        if high > low:
            parts.append(thermometer(conditioning.beta, self.bins, low, high))
        return torch.cat(parts, dim=-1)
