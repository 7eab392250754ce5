"""Preference-conditional multi-objective GFlowNet (MOGFN-PC).

Jain et al. 2023, "Multi-Objective GFlowNets", ICML, arXiv 2210.12765: one GFlowNet
conditioned on a preference vector ``w`` and inverse temperature ``beta`` learns to sample
``x`` with probability proportional to ``R(x | w, beta) = s(r(x), w)^beta`` (eq. 5) by
conditional trajectory balance (eq. 6). Sampling over many ``w`` covers the Pareto front.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from data.dataset import Dataset
from data.pareto import pareto_rank
from data.spaces import SearchSpace
from models.generators.base import Generator
from models.generators.gflownet.conditioning import Conditioning, ConditionSampler
from models.generators.gflownet.envs import Environment, environment_for
from models.generators.gflownet.losses import TrajectoryBalance, TrajectoryScores
from models.generators.gflownet.policy import CausalTransformerPolicy, LogPartition, MLPPolicy, Policy
from models.generators.gflownet.sampler import (
    Trajectories,
    backward_trajectories,
    sample_trajectories,
    trajectory_log_probs,
)
from models.rewards import ProxyReward, Scalarization, WeightedSum, log_reward

__all__ = ["MOGFN", "MOGFNGenerator", "MOGFNSettings", "ObjectiveFn"]

MARGIN = 0.1
"""Share of the measured range added below the worst measured value when normalizing."""

ObjectiveFn = Callable[[Tensor], Tensor]
"""Terminal states ``n x state_size`` -> non-negative objective rewards ``n x m``."""


@dataclass
class MOGFNSettings:
    """Hyper-parameters of MOGFN-PC (defaults follow the paper's code where it has one)."""

    beta: float | tuple[float, float] = 16.0
    """Inverse temperature of the reward, fixed or a ``(low, high)`` range to sample."""
    alpha: float = 1.0
    """Dirichlet concentration of the sampled preferences."""
    thermometer_bins: int = 50
    scalarization: Scalarization = field(default_factory=WeightedSum)
    epsilon: float = 0.01
    """Probability of a uniformly random valid action while training."""
    batch_size: int = 128
    lr: float = 1e-3
    """Learning rate of the policy."""
    logz_lr: float = 1e-2
    """Learning rate of ``log Z(w, beta)``."""
    hidden: int = 64
    layers: int = 3
    policy: str = "auto"
    """``mlp``, ``transformer`` (sequences), or ``auto``: transformer for sequences, MLP else."""
    learn_backward: bool = False
    """Learn ``P_B`` (DAG spaces only); otherwise uniform over parents."""
    replay_fraction: float = 0.0
    """Share of each batch replayed from the buffer of high-reward terminal states."""
    replay_capacity: int = 1000
    grad_clip: float = 10.0
    min_log_reward: float | None = None
    """Optional floor of ``beta * log s`` (recursionpharma/gflownet clips at -75). Off by
    default: with a large ``beta`` a floor flattens every low reward to the same value and
    removes the training signal; ``log 0`` is kept finite by ``MIN_SCALARIZED_REWARD``
    and the gradient clip bounds its pull, as in the MOGFN reference code."""


class MOGFN:
    """The algorithm on an environment; knows nothing of campaigns or proxies."""

    def __init__(
        self,
        env: Environment,
        num_objectives: int,
        settings: MOGFNSettings | None = None,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.env = env
        self.settings = s = settings or MOGFNSettings()
        if not 0.0 <= s.epsilon < 1.0 or not 0.0 <= s.replay_fraction < 1.0:
            raise ValueError("epsilon and replay_fraction must be in [0, 1)")
        if s.learn_backward and env.is_tree:
            raise ValueError("learn_backward needs a DAG space; a tree has P_B = 1")
        self.device = torch.device(device)
        self.conditions = ConditionSampler(num_objectives, s.beta, s.alpha, s.thermometer_bins)
        size = self.conditions.encoding_size
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)  # CPU only: CUDA's RNG is left alone
            kind = s.policy if s.policy != "auto" else ("transformer" if env.is_tree else "mlp")
            if kind == "transformer":
                self.policy: Policy = CausalTransformerPolicy(env, size, s.hidden, max(1, s.layers - 1))
            elif kind == "mlp":
                self.policy = MLPPolicy(env, size, s.hidden, s.layers, s.learn_backward)
            else:
                raise ValueError(f"unknown policy {s.policy!r}; choose mlp, transformer or auto")
            self.log_z = LogPartition(size, s.hidden)
        self.policy.to(self.device)
        self.log_z.to(self.device)
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.policy.parameters(), "lr": s.lr},
                {"params": self.log_z.parameters(), "lr": s.logz_lr},
            ]
        )
        self.loss = TrajectoryBalance()
        self.buffer_states = env.initial(0, self.device)
        self.buffer_rewards = torch.empty(0, num_objectives, device=self.device)
        self.steps_done = 0

    # -- rewards ------------------------------------------------------------------------
    def log_reward(self, rewards: Tensor, conditioning: Conditioning) -> Tensor:
        """``beta * log s(r, w)`` for objective rewards ``n x m`` (eq. 5, in log space)."""
        scalar = self.settings.scalarization(rewards.float(), conditioning.preferences.to(rewards.device))
        logs = log_reward(scalar, conditioning.beta.to(rewards.device))
        floor = self.settings.min_log_reward
        return logs if floor is None else logs.clamp_min(floor)

    # -- replay -------------------------------------------------------------------------
    @property
    def replays(self) -> bool:
        return self.settings.replay_fraction > 0 and self.settings.replay_capacity > 0

    def remember(self, states: Tensor, rewards: Tensor) -> None:
        """Add terminal states to the replay buffer (a state seen again takes its new
        reward); it keeps the best by Pareto rank."""
        if not self.replays:
            return
        states = torch.cat([states.to(self.device), self.buffer_states])
        rewards = torch.cat([rewards.to(self.device).float(), self.buffer_rewards])
        states, first = _unique_rows(states)
        rewards = rewards[first]
        if len(states) > self.settings.replay_capacity:
            rank = pareto_rank(rewards.double().cpu()).to(self.device).double()
            score = rank - rewards.sum(-1).double() / (rewards.sum(-1).abs().max() + 1)
            keep = torch.argsort(score)[: self.settings.replay_capacity]
            states, rewards = states[keep], rewards[keep]
        self.buffer_states, self.buffer_rewards = states, rewards

    # -- training -----------------------------------------------------------------------
    def train_step(self, objective: ObjectiveFn, generator: torch.Generator) -> dict[str, float]:
        """One trajectory-balance step on a batch of on-policy and replayed trajectories."""
        s = self.settings
        n_replay = round(s.replay_fraction * s.batch_size) if len(self.buffer_states) else 0
        n_online = s.batch_size - n_replay
        conditioning = self.conditions.sample(s.batch_size, generator).to(self.device)
        condition = self.conditions.encode(conditioning)
        parts = [sample_trajectories(self.env, self.policy, condition[:n_online], generator, s.epsilon)]
        if n_replay:
            pick = torch.randint(0, len(self.buffer_states), (n_replay,), generator=generator)
            parts.append(backward_trajectories(self.env, self.buffer_states[pick.to(self.device)], generator))
        trajectories = Trajectories.cat(parts) if len(parts) > 1 else parts[0]
        rewards = objective(trajectories.terminal).to(self.device)
        if n_online:
            self.remember(trajectories.terminal[:n_online], rewards[:n_online])
        loss, scores = self._loss(trajectories, condition, conditioning, rewards)
        self.optimizer.zero_grad()
        finite = bool(torch.isfinite(loss))
        if finite:  # a NaN reward must not poison every weight
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                list(self.policy.parameters()) + list(self.log_z.parameters()), s.grad_clip
            )
            self.optimizer.step()
        self.steps_done += 1
        return {
            "loss": loss.item(),
            "log_z": scores.log_z.mean().item(),
            "log_reward": float(scores.log_reward.mean()),
            "trajectory_length": float((trajectories.actions >= 0).sum(0).float().mean()),
            "skipped": float(not finite),
        }

    def _loss(
        self, trajectories: Trajectories, condition: Tensor, conditioning: Conditioning, rewards: Tensor
    ) -> tuple[Tensor, TrajectoryScores]:
        log_pf, log_pb = trajectory_log_probs(self.env, self.policy, trajectories, condition)
        scores = TrajectoryScores(
            self.log_z(condition), log_pf, log_pb, self.log_reward(rewards, conditioning)
        )
        return self.loss(scores), scores

    def train(
        self,
        objective: ObjectiveFn,
        steps: int,
        generator: torch.Generator,
        offline: Tensor | None = None,
    ) -> dict[str, list[float]]:
        """``steps`` training steps; ``offline`` terminal states (measured candidates)
        join the replay buffer first. Returns the per-step curves."""
        if self.replays and len(self.buffer_states):  # the reward may have changed since
            self.buffer_rewards = objective(self.buffer_states).to(self.device).float()
        if offline is not None and len(offline) and self.replays:
            offline = offline.to(self.device)
            self.remember(offline, objective(offline))
        history: dict[str, list[float]] = {}
        for _ in range(steps):
            for key, value in self.train_step(objective, generator).items():
                history.setdefault(key, []).append(value)
        return history

    # -- sampling -----------------------------------------------------------------------
    def sample(self, conditioning: Conditioning, generator: torch.Generator) -> Tensor:
        """Terminal states, one per conditioning (no exploration)."""
        conditioning = conditioning.to(self.device)
        condition = self.conditions.encode(conditioning)
        return sample_trajectories(self.env, self.policy, condition, generator).terminal

    # -- persistence --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "policy": self.policy.state_dict(),
            "log_z": self.log_z.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer_states": self.buffer_states.cpu(),
            "buffer_rewards": self.buffer_rewards.cpu(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.log_z.load_state_dict(state["log_z"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer_states = state["buffer_states"].to(self.device)
        self.buffer_rewards = state["buffer_rewards"].to(self.device)
        self.steps_done = int(state["steps_done"])


def _unique_rows(states: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows and the index of each one's first occurrence."""
    unique, inverse = torch.unique(states, dim=0, return_inverse=True)
    positions = torch.arange(len(states), device=states.device)
    first = torch.full((len(unique),), len(states), device=states.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return unique, first


class MOGFNGenerator(Generator):
    """MOGFN-PC in a campaign: trained each round against the proxy, warm-started.

    The reward of objective ``i`` is the proxy's optimistic score (mean + kappa * std),
    min-max normalized by the measured values with a margin below the worst (the worst
    measured maps to ``MARGIN / (1 + MARGIN)``, the best to 1; clipped below at 0, so only
    predictions well below everything measured get a zero reward), scalarized with the
    sampled preference and raised to ``beta``.
    ``propose`` samples one candidate per Dirichlet preference, spread over the simplex.
    """

    name = "mogfn"

    def __init__(
        self,
        space: SearchSpace,
        num_objectives: int,
        settings: MOGFNSettings | None = None,
        *,
        steps_per_round: int = 200,
        kappa: float = 0.0,
        replay_measured: bool = True,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space)
        self.env = environment_for(space)
        self.model = MOGFN(self.env, num_objectives, settings, seed=seed, device=device)
        self.steps_per_round = steps_per_round
        self.kappa = kappa
        self.replay_measured = replay_measured

    def objective(self, reward: ProxyReward, dataset: Dataset) -> ObjectiveFn:
        """The per-objective reward this round: normalized optimistic proxy scores."""
        optimistic = reward.with_kappa(self.kappa)
        Y = dataset.Y[torch.isfinite(dataset.Y).all(-1)] if len(dataset) else dataset.Y
        if len(Y):
            low, high = Y.min(0).values, Y.max(0).values
        else:
            low, high = torch.zeros(self.model.conditions.num_objectives), None
        span = torch.ones_like(low) if high is None else high - low
        span = torch.where(span > 1e-9 * (1 + low.abs()), span, torch.ones_like(span))  # all equal: no scale
        low, span = low - MARGIN * span, (1 + MARGIN) * span

        def score(states: Tensor) -> Tensor:
            values = optimistic.from_tokens(self.env.to_tokens(states))
            return ((values - low.to(values)) / span.to(values)).clamp_min(0.0).float()

        return score

    def update(self, reward: ProxyReward, dataset: Dataset, generator: torch.Generator) -> dict[str, float]:
        objective = self.objective(reward, dataset)
        offline = None
        if self.replay_measured and len(dataset):
            offline = self.env.from_tokens(self.space.encode(dataset.candidates))
        start = time.perf_counter()
        self.history = self.model.train(objective, self.steps_per_round, generator, offline)
        elapsed = time.perf_counter() - start
        tail = max(1, len(self.history.get("loss", [])) // 10)
        return {
            "loss": _mean(self.history.get("loss", [])[-tail:]),
            "log_z": _mean(self.history.get("log_z", [])[-tail:]),
            "steps": float(self.steps_per_round),
            "train_seconds": elapsed,
            "steps_per_second": self.steps_per_round / elapsed if elapsed > 0 else 0.0,
        }

    def propose(self, n: int, generator: torch.Generator) -> list[str]:
        conditioning = self.model.conditions.sample(n, generator)
        conditioning.beta.fill_(self.model.conditions.beta_max)
        states = self.model.sample(conditioning, generator)
        return self.space.decode(self.env.to_tokens(states).cpu())

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
