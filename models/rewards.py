"""Proxy -> generator reward: what a generator is trained or steered against.

An objective vector is not a reward: this module turns the proxy's posterior into
per-objective optimistic scores (mean + kappa * std, maximization space); scalarization
and ordering belong to the generator that consumes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from botorch.models.model import Model
from torch import Tensor

from data.spaces import SearchSpace

__all__ = ["ProxyReward"]


class ProxyReward:
    """Optimistic per-objective proxy scores ``n x m`` of candidates (maximized)."""

    def __init__(self, model: Model, space: SearchSpace, kappa: float = 0.0) -> None:
        self.model = model
        self.space = space
        self.kappa = kappa

    def __call__(self, xs: Sequence[str]) -> Tensor:
        X = self.space.featurize(xs)
        X = X.to(next(self.model.parameters()).device)
        with torch.no_grad():
            posterior = self.model.posterior(X)
            return posterior.mean + self.kappa * posterior.variance.clamp_min(0).sqrt()
