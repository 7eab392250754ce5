"""Training signals: what a batch's objective values become for a GFlowNet's loss.

MOGFN-PC scalarizes them into a log-reward under a sampled preference and temperature
(the policy is conditioned on both); OP-GFN keeps only their order (the policy is
unconditional).
"""

from __future__ import annotations

import torch
from torch import Tensor

from paretolab.models.generators.gflownet.conditioning import Conditioning, ConditionSampler
from paretolab.models.generators.gflownet.trainer import TrainingSignal
from paretolab.models.rewards import Scalarization, log_reward

__all__ = ["ParetoOrder", "PreferenceReward"]


class PreferenceReward(TrainingSignal):
    """``log R(x | w, beta) = beta * log s(r(x), w)`` for non-negative objective rewards
    ``r`` (Jain et al. 2023, "Multi-Objective GFlowNets", eq. 5, in log space), with
    ``w`` and ``beta`` drawn by ``conditions`` and encoded for the policy."""

    def __init__(
        self, conditions: ConditionSampler, scalarization: Scalarization, min_log_reward: float | None = None
    ) -> None:
        self.conditions = conditions
        self.scalarization = scalarization
        self.min_log_reward = min_log_reward
        self.condition_size = conditions.encoding_size

    def sample(self, n: int, rng: torch.Generator) -> Conditioning:
        return self.conditions.sample(n, rng)

    def encode(self, conditioning: Conditioning, n: int, device: torch.device) -> Tensor:
        if conditioning is None:
            raise ValueError(
                "MOGFN-PC samples under a conditioning: pass conditions.sample(...) or .fixed(...)"
            )
        if len(conditioning) != n:
            raise ValueError(f"{len(conditioning)} conditionings for {n} trajectories")
        return self.conditions.encode(conditioning.to(device))

    def target(self, values: Tensor, conditioning: Conditioning) -> Tensor:
        scalar = self.scalarization(values.float(), conditioning.preferences.to(values.device))
        logs = log_reward(scalar, conditioning.beta.to(values.device))
        return logs if self.min_log_reward is None else logs.clamp_min(self.min_log_reward)


class ParetoOrder(TrainingSignal):
    """The values themselves, for a loss that uses only their order (OP-GFN, Chen &
    Mauch 2024): Pareto dominance, a total order for one objective. No preference, no
    temperature, no scale: nothing to condition on."""

    def target(self, values: Tensor, conditioning: None) -> Tensor:
        return values
