"""Preference-conditional multi-objective GFlowNet (MOGFN-PC).

Jain et al. 2023, "Multi-Objective GFlowNets", ICML, arXiv 2210.12765: one GFlowNet
conditioned on a preference vector ``w`` and inverse temperature ``beta`` learns to sample
``x`` with probability proportional to ``R(x | w, beta) = s(r(x), w)^beta`` (eq. 5) by
conditional trajectory balance (eq. 6). Sampling over many ``w`` covers the Pareto front.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paretolab.data.dataset import Dataset
from paretolab.models.generators.gflownet.conditioning import Conditioning, ConditionSampler
from paretolab.models.generators.gflownet.config import MOGFNSettings
from paretolab.models.generators.gflownet.envs import Environment
from paretolab.models.generators.gflownet.generator import GFlowNetGenerator
from paretolab.models.generators.gflownet.losses import TrajectoryBalance
from paretolab.models.generators.gflownet.signals import PreferenceReward
from paretolab.models.generators.gflownet.trainer import GFlowNet, ObjectiveFn
from paretolab.models.rewards import ProxyReward, reward_range, scalarization

__all__ = ["MOGFN", "MOGFNGenerator", "MOGFNSettings"]


class MOGFN(GFlowNet):
    """MOGFN-PC on an environment: conditional trajectory balance against the
    preference-scalarized reward; knows nothing of campaigns or proxies."""

    def __init__(
        self,
        env: Environment,
        num_objectives: int,
        settings: MOGFNSettings | None = None,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        s = settings or MOGFNSettings()
        self.conditions = ConditionSampler(num_objectives, s.beta, s.alpha, s.thermometer_bins)
        signal = PreferenceReward(self.conditions, scalarization(s.scalarization), s.min_log_reward)
        super().__init__(env, num_objectives, signal, TrajectoryBalance(), s, seed=seed, device=device)

    def log_reward(self, rewards: Tensor, conditioning: Conditioning) -> Tensor:
        """``beta * log s(r, w)`` for objective rewards ``n x m`` (eq. 5, in log space)."""
        return self.signal.target(rewards, conditioning)

    def sample(self, conditioning: Conditioning, rng: torch.Generator, start: Tensor | None = None) -> Tensor:
        """Terminal states, one per conditioning (no exploration), from ``start`` when given."""
        return self.sample_states(len(conditioning), rng, conditioning, start)


class MOGFNGenerator(GFlowNetGenerator):
    """MOGFN-PC in a campaign: trained each round against the proxy, warm-started.

    The reward of objective ``i`` is the proxy's optimistic score (mean + kappa * std),
    min-max normalized by the measured values with a margin below the worst
    (:func:`~paretolab.models.rewards.reward_range`: the worst measured maps to
    ``MARGIN / (1 + MARGIN)``, the best to 1; clipped below at 0, so only predictions well
    below everything measured get a zero reward), scalarized with the
    sampled preference and raised to ``beta``.
    Each candidate of a pool is sampled under its own Dirichlet preference, spread over
    the simplex, at the largest ``beta``.
    """

    name = "mogfn"

    model_class = MOGFN
    model: MOGFN

    def objective(self, reward: ProxyReward, dataset: Dataset) -> ObjectiveFn:
        """The per-objective reward this round: normalized optimistic proxy scores."""
        optimistic = reward.with_kappa(self.kappa)
        Y = dataset.Y[torch.isfinite(dataset.Y).all(-1)] if len(dataset) else dataset.Y
        if not len(Y):
            Y = torch.empty(0, self.model.num_objectives)
        low, span = reward_range(Y)

        def score(states: Tensor) -> Tensor:
            values = optimistic.from_tokens(self.env.to_tokens(states))
            return ((values - low.to(values)) / span.to(values)).clamp_min(0.0).float()

        return score

    def sample(self, n: int, rng: torch.Generator, start: Tensor | None = None) -> Tensor:
        conditioning = self.model.conditions.sample(n, rng)
        conditioning.beta.fill_(self.model.conditions.beta_max)
        return self.model.sample(conditioning, rng, start)
