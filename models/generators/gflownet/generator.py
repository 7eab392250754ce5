"""A GFlowNet in a campaign: trained each round against the proxy, warm-started from the
previous round (the first round: offline, on what is known), measured candidates replayed.
A pool mixes samples from the initial state with local ones: completions of the best
measured candidates after their last few actions are undone, the way MOGFN-AL proposes
edits of the current Pareto front (Jain et al. 2023, "Multi-Objective GFlowNets", ICML,
section 6). Variants say only how the proxy's scores become training values and how a
batch of states is sampled."""

from __future__ import annotations

import time
from abc import abstractmethod

import torch
from torch import Tensor

from paretolab.data.dataset import Dataset
from paretolab.data.pareto import best_first
from paretolab.data.spaces import SearchSpace
from paretolab.models.generators.base import Generator
from paretolab.models.generators.gflownet.config import (
    LOCAL_ANCHORS,
    LOCAL_SHARE,
    LOCAL_STEPS,
    WARM_START_STEPS,
)
from paretolab.models.generators.gflownet.envs import Environment, environment_for
from paretolab.models.generators.gflownet.sampler import ancestors
from paretolab.models.generators.gflownet.trainer import GFlowNet, GFlowNetSettings, ObjectiveFn
from paretolab.models.rewards import ProxyReward

__all__ = ["WARM_START_SEEDS", "GFlowNetGenerator"]

WARM_START_SEEDS = 512
"""Most seeds (of a space's seed set) warm start trains on: each is encoded and scored by
the proxy first (on molecules 1,600 seeds took 8 s, 512 took 2 s)."""


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
        train_seconds: float | None = None,
        warm_start_steps: int = WARM_START_STEPS,
        kappa: float = 0.0,
        replay_measured: bool = True,
        local_share: float = LOCAL_SHARE,
        local_steps: int = LOCAL_STEPS,
        local_anchors: int = LOCAL_ANCHORS,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space)
        if train_seconds is not None and not train_seconds > 0:
            raise ValueError(f"train_seconds must be positive (or None), got {train_seconds}")
        if warm_start_steps < 0:
            raise ValueError(f"warm_start_steps must be >= 0, got {warm_start_steps}")
        if not 0 <= local_share <= 1 or local_steps < 1 or local_anchors < 1:
            raise ValueError(
                f"need 0 <= local_share <= 1, local_steps >= 1 and local_anchors >= 1; got {local_share}, "
                f"{local_steps} and {local_anchors}"
            )
        self.env: Environment = environment_for(space)
        self.model = self.model_class(self.env, num_objectives, settings, seed=seed, device=device)
        self.steps_per_round = steps_per_round
        self.train_seconds = train_seconds
        self.warm_start_steps = warm_start_steps
        self.kappa = kappa
        self.replay_measured = replay_measured
        self.local_share = local_share
        self.local_steps = local_steps
        self.local_anchors = local_anchors
        self.anchors = self.env.initial(0, self.model.device)
        """Terminal states of the best measured candidates at the last update (local
        samples start near them), best first."""

    @abstractmethod
    def objective(self, reward: ProxyReward, dataset: Dataset) -> ObjectiveFn:
        """Terminal states -> this round's training values ``n x m``."""

    @abstractmethod
    def sample(self, n: int, rng: torch.Generator, start: Tensor | None = None) -> Tensor:
        """``n`` terminal states from the initial state, or from the partial states
        ``start`` (``n x state_size``)."""

    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        """``n`` candidates: ``local_share`` of them completions of the anchors (each drawn
        uniformly, with 1 to ``local_steps`` of its last actions undone, uniformly), the rest
        from the initial state; all local when ``local_share`` is 1, none before any
        measurement."""
        n_local = round(self.local_share * n) if len(self.anchors) else 0
        parts = [self.sample(n - n_local, rng)] if n > n_local else []
        if n_local:
            pick = torch.randint(0, len(self.anchors), (n_local,), generator=rng)
            back = torch.randint(1, self.local_steps + 1, (n_local,), generator=rng)
            start = ancestors(self.env, self.anchors[pick.to(self.anchors.device)], back, rng)
            parts.append(self.sample(n_local, rng, start))
        states = torch.cat(parts) if parts else self.env.initial(0, self.model.device)
        self.proposal_metrics = {"local_share": n_local / n if n else 0.0}
        return self.space.decode(self.env.to_tokens(states).cpu())

    def best_measured(self, dataset: Dataset) -> Tensor:
        """Terminal states of the ``local_anchors`` best measured candidates (Pareto rank,
        then the sum of per-objective ranks), best first; a dataset holds only valid rows."""
        if not len(dataset):
            return self.env.initial(0, self.model.device)
        order = best_first(dataset.Y.double())[: self.local_anchors]
        candidates = [dataset.candidates[i] for i in order.tolist()]
        return self.env.from_tokens(self.space.encode(candidates)).to(self.model.device)

    def known_states(self, dataset: Dataset, rng: torch.Generator) -> Tensor:
        """Terminal states of what is known before any training: every measured candidate,
        then seeds of the space's seed set (molecules) drawn with ``rng``, at most
        ``WARM_START_SEEDS`` and no more than warm start can draw (``warm_start_steps *
        trajectories_per_step`` states in all)."""
        known = list(dict.fromkeys(dataset.candidates))
        measured = set(known)
        seeds = [x for x in getattr(self.space, "seeds", ()) if x not in measured]
        draws = self.warm_start_steps * self.model.settings.trajectories_per_step
        room = max(0, min(WARM_START_SEEDS, draws - len(known)))
        if len(seeds) > room:
            order = torch.randperm(len(seeds), generator=rng)[:room].sort().values
            seeds = [seeds[i] for i in order.tolist()]
        known += seeds
        if not known:
            return self.env.initial(0, self.model.device)
        return self.env.from_tokens(self.space.encode(known)).to(self.model.device)

    def update(self, reward: ProxyReward, dataset: Dataset, rng: torch.Generator) -> dict[str, float]:
        """Train against this round's reward: on the first update (an untrained net),
        first ``warm_start_steps`` offline steps on the known candidates, then up to
        ``steps_per_round`` steps, all within ``train_seconds`` when it is set."""
        objective = self.objective(reward, dataset)
        self.anchors = self.best_measured(dataset)
        start = time.perf_counter()
        warm: dict[str, list[float]] = {}
        if self.warm_start_steps and self.model.steps_done == 0:
            known = self.known_states(dataset, rng)
            warm = self.model.warm_start(objective, known, self.warm_start_steps, rng, self._left(start))
        warm_seconds = time.perf_counter() - start
        offline = None
        if self.replay_measured and len(dataset):
            offline = self.env.from_tokens(self.space.encode(dataset.candidates))
        history = self.model.train(objective, self.steps_per_round, rng, offline, self._left(start))
        elapsed = time.perf_counter() - start
        steps = len(history.get("loss", []))
        self.history = history | {f"warm_start_{k}": v for k, v in warm.items()}
        tail = max(1, steps // 10)
        metrics = {
            "loss": _mean(history.get("loss", [])[-tail:]),
            "log_z": _mean(history.get("log_z", [])[-tail:]),
            "steps": float(steps),
            "train_seconds": elapsed,
            "steps_per_second": steps / (elapsed - warm_seconds) if elapsed > warm_seconds else 0.0,
        }
        if warm:
            metrics["warm_start_steps"] = float(len(warm["loss"]))
            metrics["warm_start_loss"] = _mean(warm["loss"][-max(1, len(warm["loss"]) // 10) :])
            metrics["warm_start_seconds"] = warm_seconds
        return metrics

    def _left(self, start: float) -> float | None:
        """Seconds left of ``train_seconds`` since ``start`` (``None``: no time budget)."""
        if self.train_seconds is None:
            return None
        return max(0.0, self.train_seconds - (time.perf_counter() - start))

    def state_dict(self) -> dict:
        return self.model.state_dict() | {"anchors": self.anchors.cpu()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (a state saved before local sampling has no anchors:
        the next update finds them)."""
        self.model.load_state_dict(state)
        self.anchors = state.get("anchors", self.env.initial(0)).to(self.model.device)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
