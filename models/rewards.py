"""Proxy -> generator reward: what a generator is trained or steered against.

An objective vector is not a reward: :class:`ProxyReward` turns the proxy's posterior into
per-objective optimistic scores (mean + kappa * std, maximization space); scalarization
(a preference-weighted reward, Jain et al. 2023, "Multi-Objective GFlowNets", ICML,
arXiv 2210.12765, section 3) and ordering belong to the generator that consumes them.
Rewards are handled in log space: ``log R(x | w, beta) = beta * log s(r(x), w)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from botorch.models.model import Model
from torch import Tensor

from paretolab.data.spaces import SearchSpace
from paretolab.models.feasibility import Feasibility
from paretolab.models.proxies.gp import exact_gp

__all__ = [
    "MARGIN",
    "MIN_SCALARIZED_REWARD",
    "ProxyReward",
    "Scalarization",
    "Tchebycheff",
    "WeightedSum",
    "failure_floor",
    "reward_range",
    "log_reward",
    "scalarization",
]

MIN_SCALARIZED_REWARD = 1e-30
"""Floor of a scalarized reward before its log, so a zero reward has a finite log (the
reference code clamps at 1e-80, which underflows in float32)."""


class ProxyReward:
    """Optimistic per-objective proxy scores ``n x m`` of candidates (maximized).

    With a ``feasibility`` model (:mod:`paretolab.models.feasibility`) a score is the
    expected score when a failure scores ``floor`` (``m``; e.g. below the worst measured
    value): ``floor + P(feasible) * (score - floor)``, so generators learn to stay where
    candidates can be measured.
    """

    def __init__(
        self,
        model: Model,
        space: SearchSpace,
        kappa: float = 0.0,
        *,
        feasibility: Feasibility | None = None,
        floor: Tensor | None = None,
    ) -> None:
        if feasibility is not None and floor is None:
            raise ValueError("a feasibility-weighted reward needs the floor a failure scores")
        self.model = model
        self.space = space
        self.kappa = kappa
        self.feasibility = feasibility
        self.floor = floor

    def with_kappa(self, kappa: float) -> ProxyReward:
        """The same proxy with another exploration bonus ``kappa``."""
        return ProxyReward(self.model, self.space, kappa, feasibility=self.feasibility, floor=self.floor)

    def __call__(self, xs: Sequence[str]) -> Tensor:
        return self.scores(self.space.featurize(xs))

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """Scores of an encoded token batch; ``-inf`` rows for token sequences that are not
        members of the space (e.g. a SELFIES decoding to a molecule the filters reject)."""
        tokens = tokens.cpu()
        scores = self.scores(self.space.featurize_tokens(tokens))
        valid = self.space.valid_tokens(tokens).to(scores.device)
        return scores.masked_fill(~valid.unsqueeze(-1), float("-inf"))

    def scores(self, X: Tensor) -> Tensor:
        """Scores of featurized candidates ``n x d``."""
        X = X.to(next(self.model.parameters()).device)
        with torch.no_grad(), exact_gp():  # one GP evaluation at a time in a process
            posterior = self.model.posterior(X)
            scores = posterior.mean + self.kappa * posterior.variance.clamp_min(0).sqrt()
        if self.feasibility is None or self.floor is None:
            return scores
        floor = self.floor.to(scores)
        return floor + self.feasibility.probability(X).to(scores)[:, None] * (scores - floor)


MARGIN = 0.1
"""Share of the measured range below the worst measured value where rewards bottom out:
MOGFN's normalization maps it to 0, and a failure scores it."""


def reward_range(Y: Tensor, margin: float = MARGIN) -> tuple[Tensor, Tensor]:
    """Where rewards start and how wide they run (``m`` each) for measured values ``Y``
    ``n x m``: ``margin`` of the measured range below the worst value, and the measured
    range plus that margin (an objective whose values are all equal gets range 1; no
    measurements: 0 and 1). MOGFN maps ``[floor, floor + span]`` to ``[0, 1]``."""
    if len(Y) == 0:
        zeros = torch.zeros(Y.shape[-1], dtype=Y.dtype, device=Y.device)
        return zeros, torch.ones_like(zeros)
    low, high = Y.min(0).values, Y.max(0).values
    span = high - low
    span = torch.where(span > 1e-9 * (1 + low.abs()), span, torch.ones_like(span))  # all equal: no scale
    return low - margin * span, (1 + margin) * span


def failure_floor(Y: Tensor, margin: float = MARGIN) -> Tensor:
    """What a failed candidate scores (``m``): the floor of :func:`reward_range`, MOGFN's
    zero reward."""
    return reward_range(Y, margin)[0]


class Scalarization(ABC):
    """Maps non-negative per-objective rewards ``... x m`` and preferences ``... x m`` to
    a non-negative scalar reward ``...``."""

    name: str

    @abstractmethod
    def __call__(self, rewards: Tensor, preferences: Tensor) -> Tensor: ...


class WeightedSum(Scalarization):
    """``s(r, w) = sum_i w_i r_i`` (MOGFN-PC's default, Jain et al. 2023, eq. 5)."""

    name = "weighted_sum"

    def __call__(self, rewards: Tensor, preferences: Tensor) -> Tensor:
        return (rewards * preferences).sum(-1)


class Tchebycheff(Scalarization):
    """``s(r, w) = min_i w_i r_i``: the weighted Tchebycheff scalarization for maximization
    with the origin as reference. Unlike the weighted sum, its maximizers over all ``w``
    cover non-convex parts of the Pareto front (Jain et al. 2023, section 3)."""

    name = "tchebycheff"

    def __call__(self, rewards: Tensor, preferences: Tensor) -> Tensor:
        return (rewards * preferences).min(-1).values


_SCALARIZATIONS: dict[str, type[Scalarization]] = {s.name: s for s in (WeightedSum, Tchebycheff)}


def scalarization(name: str) -> Scalarization:
    """The scalarization called ``name`` (``weighted_sum`` or ``tchebycheff``)."""
    try:
        return _SCALARIZATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown scalarization {name!r}; choose from {sorted(_SCALARIZATIONS)}") from None


def log_reward(scalarized: Tensor, beta: Tensor | float) -> Tensor:
    """``log R = beta * log(max(s, MIN_SCALARIZED_REWARD))``: one log, then the exponent.

    ``scalarized`` must be non-negative (a reward, not a log-reward).
    """
    if (scalarized < 0).any():
        raise ValueError("scalarized rewards must be non-negative (got a negative value)")
    return beta * torch.log(scalarized.clamp_min(MIN_SCALARIZED_REWARD))
