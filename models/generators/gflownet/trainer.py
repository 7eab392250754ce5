"""Training a GFlowNet, one loop for every variant.

Variants differ only in two strategy objects (torchgfn's split): a *training signal*
that turns a batch's objective values into what the loss needs (MOGFN-PC: a
preference-conditioned log-reward; OP-GFN: the batch's order) and says what the policy
is conditioned on, and a *loss object* (trajectory balance, order preserving). The
environment, policy, sampler, replay buffer, optimizer and persistence are shared.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from paretolab.data.pareto import best_first
from paretolab.models.generators.gflownet.config import GFlowNetSettings
from paretolab.models.generators.gflownet.envs import Environment
from paretolab.models.generators.gflownet.losses import Loss, TrajectoryScores
from paretolab.models.generators.gflownet.policy import (
    CausalTransformerPolicy,
    LogPartition,
    MLPPolicy,
    Policy,
)
from paretolab.models.generators.gflownet.sampler import (
    Trajectories,
    backward_trajectories,
    sample_trajectories,
    trajectory_log_probs,
)

__all__ = ["GFlowNet", "GFlowNetSettings", "ObjectiveFn", "TrainingSignal"]

ObjectiveFn = Callable[[Tensor], Tensor]
"""Terminal states ``n x state_size`` -> objective values ``n x m`` (maximized)."""


class TrainingSignal(ABC):
    """What a batch's objective values become for the loss, and what the policy and
    ``log Z`` are conditioned on (nothing, by default)."""

    condition_size: int = 0
    """Width of the encoded conditioning (0: an unconditional GFlowNet)."""

    def sample(self, n: int, rng: torch.Generator) -> Any:
        """Conditionings of ``n`` training trajectories (``None``: unconditional)."""
        return None

    def encode(self, conditioning: Any, n: int, device: torch.device) -> Tensor:
        """Policy input ``n x condition_size`` for ``conditioning``."""
        return torch.empty(n, 0, device=device)

    @abstractmethod
    def target(self, values: Tensor, conditioning: Any) -> Tensor:
        """What the loss compares the learned log-reward with, per trajectory ``n``."""


class GFlowNet:
    """A GFlowNet on an environment, trained by ``loss`` against ``signal``; knows nothing
    of campaigns or proxies."""

    def __init__(
        self,
        env: Environment,
        num_objectives: int,
        signal: TrainingSignal,
        loss: Loss,
        settings: GFlowNetSettings,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.env = env
        self.signal = signal
        self.loss = loss
        self.settings = s = settings
        self.num_objectives = num_objectives
        if not 0.0 <= s.epsilon < 1.0 or not 0.0 <= s.replay_fraction < 1.0:
            raise ValueError("epsilon and replay_fraction must be in [0, 1)")
        if s.learn_backward and env.is_tree:
            raise ValueError("learn_backward needs a DAG space; a tree has P_B = 1")
        self.device = torch.device(device)
        size = signal.condition_size
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
            ],
            weight_decay=s.weight_decay,
        )
        self.buffer_states = env.initial(0, self.device)
        self.buffer_values = torch.empty(0, num_objectives, device=self.device)
        self.buffer_pinned = torch.empty(0, dtype=torch.bool, device=self.device)
        self.steps_done = 0

    # -- replay -------------------------------------------------------------------------
    @property
    def replays(self) -> bool:
        return self.settings.replay_fraction > 0

    def remember(self, states: Tensor, values: Tensor, pinned: bool = False) -> None:
        """Add terminal states to the replay buffer; a state seen again takes its new
        values. ``pinned`` states (measured candidates) stay for good; of the others the
        buffer keeps the ``replay_capacity`` best by Pareto rank, ties broken by the sum of
        per-objective ranks, so what it keeps depends only on the order of the values."""
        if not self.replays:
            return
        pins = torch.full((len(states),), pinned, dtype=torch.bool, device=self.device)
        states = torch.cat([states.to(self.device), self.buffer_states])
        values = torch.cat([values.to(self.device).float(), self.buffer_values])
        pins = torch.cat([pins, self.buffer_pinned])
        states, first, inverse = _unique_rows(states)
        values = values[first]
        pinned_ids = inverse[pins]  # a state pinned once stays pinned
        pins = torch.zeros(len(states), dtype=torch.bool, device=self.device)
        pins[pinned_ids] = True
        free = (~pins).nonzero().squeeze(-1)
        if len(free) > self.settings.replay_capacity:
            best = free[best_first(values[free])[: self.settings.replay_capacity]]
            keep = torch.cat([pins.nonzero().squeeze(-1), best]).sort().values
            states, values, pins = states[keep], values[keep], pins[keep]
        self.buffer_states, self.buffer_values, self.buffer_pinned = states, values, pins

    # -- training -----------------------------------------------------------------------
    def train_step(self, objective: ObjectiveFn, rng: torch.Generator) -> dict[str, float]:
        """One step on a batch of on-policy and replayed trajectories (replayed ones keep
        the values they were stored with; :meth:`train` rescores the buffer)."""
        s = self.settings
        n_replay = round(s.replay_fraction * s.trajectories_per_step) if len(self.buffer_states) else 0
        n_online = s.trajectories_per_step - n_replay
        conditioning = self.signal.sample(s.trajectories_per_step, rng)
        condition = self.signal.encode(conditioning, s.trajectories_per_step, self.device)
        parts = [sample_trajectories(self.env, self.policy, condition[:n_online], rng, s.epsilon)]
        replayed = None
        if n_replay:
            pick = torch.randint(0, len(self.buffer_states), (n_replay,), generator=rng).to(self.device)
            parts.append(backward_trajectories(self.env, self.buffer_states[pick], rng))
            replayed = self.buffer_values[pick]
        trajectories = Trajectories.cat(parts) if len(parts) > 1 else parts[0]
        values = objective(trajectories.terminal[:n_online]).to(self.device).float()
        if values.shape != (n_online, self.num_objectives):
            raise ValueError(
                f"the objective returned values of shape {tuple(values.shape)} for {n_online} states "
                f"and {self.num_objectives} objectives; expected {(n_online, self.num_objectives)}"
            )
        if n_online:
            self.remember(trajectories.terminal[:n_online], values)
        if replayed is not None:
            values = torch.cat([values, replayed])
        return self._optimize(trajectories, condition, conditioning, values, rng)

    def offline_step(self, states: Tensor, values: Tensor, rng: torch.Generator) -> dict[str, float]:
        """One step on backward trajectories of ``trajectories_per_step`` terminal states
        drawn (with replacement) from ``states`` ``n x state_size``, trained against their
        given ``values`` ``n x m``; no on-policy sampling."""
        n = self.settings.trajectories_per_step
        pick = torch.randint(0, len(states), (n,), generator=rng).to(self.device)
        conditioning = self.signal.sample(n, rng)
        condition = self.signal.encode(conditioning, n, self.device)
        trajectories = backward_trajectories(self.env, states[pick], rng)
        return self._optimize(trajectories, condition, conditioning, values[pick], rng)

    def _optimize(
        self,
        trajectories: Trajectories,
        condition: Tensor,
        conditioning: Any,
        values: Tensor,
        rng: torch.Generator,
    ) -> dict[str, float]:
        """One optimizer step of the loss on ``trajectories`` ending at ``values``."""
        s = self.settings
        loss, scores = self._loss(trajectories, condition, conditioning, values, rng)
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
            "learned_log_reward": float(scores.learned_log_reward.detach().mean()),
            "trajectory_length": float((trajectories.actions >= 0).sum(0).float().mean()),
            "skipped": float(not finite),
        }

    def _loss(
        self,
        trajectories: Trajectories,
        condition: Tensor,
        conditioning: Any,
        values: Tensor,
        rng: torch.Generator,
    ) -> tuple[Tensor, TrajectoryScores]:
        log_pf, log_pb = trajectory_log_probs(self.env, self.policy, trajectories, condition)
        scores = TrajectoryScores(self.log_z(condition), log_pf, log_pb)
        return self.loss(scores, self.signal.target(values, conditioning), rng), scores

    def train(
        self,
        objective: ObjectiveFn,
        steps: int,
        rng: torch.Generator,
        offline: Tensor | None = None,
        seconds: float | None = None,
    ) -> dict[str, list[float]]:
        """Up to ``steps`` training steps; ``offline`` terminal states (measured candidates)
        join the replay buffer first. With ``seconds``, training also stops once that much
        time has passed (checked after each step, so at least one step runs). Returns the
        per-step curves (their length: the steps done)."""
        if self.replays and len(self.buffer_states):  # the objective may have changed since
            self.buffer_values = objective(self.buffer_states).to(self.device).float()
        if offline is not None and len(offline) and self.replays:
            offline = offline.to(self.device)
            self.remember(offline, objective(offline), pinned=True)
        return _run(lambda: self.train_step(objective, rng), steps, seconds)

    def warm_start(
        self,
        objective: ObjectiveFn,
        known: Tensor,
        steps: int,
        rng: torch.Generator,
        seconds: float | None = None,
    ) -> dict[str, list[float]]:
        """Offline training before any on-policy step: up to ``steps`` steps on backward
        trajectories of the ``known`` terminal states ``n x state_size`` (seed set,
        measured candidates), against their values under ``objective``; ``seconds`` as in
        :meth:`train`. The sampler then starts from a policy (and ``log Z``) fitted to what
        is known instead of an untrained one."""
        if not len(known) or steps <= 0:
            return {}
        known = known.to(self.device)
        values = objective(known).to(self.device).float()
        if values.shape != (len(known), self.num_objectives):
            raise ValueError(
                f"the objective returned values of shape {tuple(values.shape)} for {len(known)} states "
                f"and {self.num_objectives} objectives; expected {(len(known), self.num_objectives)}"
            )
        return _run(lambda: self.offline_step(known, values, rng), steps, seconds)

    # -- sampling -----------------------------------------------------------------------
    def sample_states(
        self, n: int, rng: torch.Generator, conditioning: Any = None, start: Tensor | None = None
    ) -> Tensor:
        """``n`` terminal states (no exploration), under ``conditioning`` when the signal
        conditions the policy; from the partial states ``start`` (``n x state_size``) when
        given: in a tree, a trained policy then samples ``x`` in proportion to its reward
        among the candidates below each start (``P_F(x | s) = R(x) / F(s)``)."""
        condition = self.signal.encode(conditioning, n, self.device)
        return sample_trajectories(self.env, self.policy, condition, rng, start=start).terminal

    # -- persistence --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "policy": self.policy.state_dict(),
            "log_z": self.log_z.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer_states": self.buffer_states.cpu(),
            "buffer_values": self.buffer_values.cpu(),
            "buffer_pinned": self.buffer_pinned.cpu(),
            "steps_done": self.steps_done,
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.log_z.load_state_dict(state["log_z"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer_states = state["buffer_states"].to(self.device)
        values = state["buffer_values"] if "buffer_values" in state else state["buffer_rewards"]  # <= 0.4
        self.buffer_values = values.to(self.device)
        pinned = state.get("buffer_pinned", torch.zeros(len(values), dtype=torch.bool))
        self.buffer_pinned = pinned.to(self.device)
        self.steps_done = int(state["steps_done"])


def _run(step: Callable[[], dict[str, float]], steps: int, seconds: float | None) -> dict[str, list[float]]:
    """Call ``step`` up to ``steps`` times, stopping early once ``seconds`` have passed
    (``time.perf_counter``, checked after each step); the curves of what it returned."""
    start = time.perf_counter()
    history: dict[str, list[float]] = {}
    for _ in range(steps):
        for key, value in step().items():
            history.setdefault(key, []).append(value)
        if seconds is not None and time.perf_counter() - start >= seconds:
            break
    return history


def _unique_rows(states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Distinct rows, the index of each one's first occurrence, and each row's distinct id."""
    unique, inverse = torch.unique(states, dim=0, return_inverse=True)
    positions = torch.arange(len(states), device=states.device)
    first = torch.full((len(unique),), len(states), device=states.device, dtype=torch.long)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return unique, first, inverse
