"""A GFlowNet in a campaign: trained each round against the proxy, warm-started from the
previous round, measured candidates replayed. Variants say only how the proxy's scores
become training values and how a pool is sampled."""

from __future__ import annotations

import time
from abc import abstractmethod

import torch

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import SearchSpace
from paretolab.models.generators.base import Generator
from paretolab.models.generators.gflownet.envs import Environment, environment_for
from paretolab.models.generators.gflownet.trainer import GFlowNet, GFlowNetSettings, ObjectiveFn
from paretolab.models.rewards import ProxyReward

__all__ = ["GFlowNetGenerator"]


class GFlowNetGenerator(Generator):
    """Shared campaign glue of the GFlowNet generators (``model`` is the trained net)."""

    model_class: type[GFlowNet]
    """The algorithm, built as ``model_class(env, num_objectives, settings, seed=, device=)``."""

    def __init__(
        self,
        space: SearchSpace,
        num_objectives: int,
        settings: GFlowNetSettings | None = None,
        *,
        steps_per_round: int = 200,
        kappa: float = 0.0,
        replay_measured: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space)
        self.env: Environment = environment_for(space)
        self.model = self.model_class(self.env, num_objectives, settings, seed=seed, device=device)
        self.steps_per_round = steps_per_round
        self.kappa = kappa
        self.replay_measured = replay_measured

    @abstractmethod
    def objective(self, reward: ProxyReward, dataset: Dataset) -> ObjectiveFn:
        """Terminal states -> this round's training values ``n x m``."""

    def update(self, reward: ProxyReward, dataset: Dataset, rng: torch.Generator) -> dict[str, float]:
        objective = self.objective(reward, dataset)
        offline = None
        if self.replay_measured and len(dataset):
            offline = self.env.from_tokens(self.space.encode(dataset.candidates))
        start = time.perf_counter()
        self.history = self.model.train(objective, self.steps_per_round, rng, offline)
        elapsed = time.perf_counter() - start
        tail = max(1, len(self.history.get("loss", [])) // 10)
        return {
            "loss": _mean(self.history.get("loss", [])[-tail:]),
            "log_z": _mean(self.history.get("log_z", [])[-tail:]),
            "steps": float(self.steps_per_round),
            "train_seconds": elapsed,
            "steps_per_second": self.steps_per_round / elapsed if elapsed > 0 else 0.0,
        }

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
