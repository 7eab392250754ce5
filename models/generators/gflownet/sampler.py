"""How a GFlowNet is rolled out: forward sampling (on-policy, with epsilon-uniform
exploration), backward sampling from given terminal states (replay and offline data), and
the log-probabilities of whole trajectories under the policy.

Rollouts run without gradients; :func:`trajectory_log_probs` then scores all steps of a
batch in one pass of the policy, so sampled, replayed and offline trajectories are
trained the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from paretolab.models.generators.gflownet.envs import Environment
from paretolab.models.generators.gflownet.policy import Policy

__all__ = [
    "Trajectories",
    "ancestors",
    "backward_trajectories",
    "sample_trajectories",
    "trajectory_log_probs",
]

NO_ACTION = -1
"""Action of a trajectory that has already stopped."""


@dataclass
class Trajectories:
    """A batch of complete trajectories.

    ``states[t]`` is the state before action ``t`` (``(T + 1) x n x state_size``; a stopped
    trajectory repeats its terminal state); ``actions[t]`` is ``NO_ACTION`` after stop.
    """

    states: Tensor
    actions: Tensor

    @property
    def terminal(self) -> Tensor:
        return self.states[-1]

    def __len__(self) -> int:
        return self.actions.shape[1]

    def __getitem__(self, index: slice | Tensor) -> Trajectories:
        """A sub-batch of trajectories."""
        return Trajectories(self.states[:, index], self.actions[:, index])

    @staticmethod
    def cat(parts: list[Trajectories]) -> Trajectories:
        """Join batches of different horizons (shorter ones are padded)."""
        steps = max(p.actions.shape[0] for p in parts)
        states, actions = [], []
        for p in parts:
            extra = steps - p.actions.shape[0]
            states.append(torch.cat([p.states, p.states[-1:].expand(extra, -1, -1)]))
            actions.append(torch.nn.functional.pad(p.actions, (0, 0, 0, extra), value=NO_ACTION))
        return Trajectories(torch.cat(states, dim=1), torch.cat(actions, dim=1))


def _masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    return torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


@torch.no_grad()
def sample_trajectories(
    env: Environment,
    policy: Policy,
    condition: Tensor,
    rng: torch.Generator,
    epsilon: float = 0.0,
    cache: bool = True,
    start: Tensor | None = None,
) -> Trajectories:
    """Roll out one trajectory per row of the encoded ``condition`` (``n x c``), from the
    initial state or, with ``start`` (``n x state_size``), from those partial states.

    With probability ``epsilon`` an action is drawn uniformly among the valid ones
    (off-policy exploration; trajectory balance stays valid). Draws use ``rng``
    on the CPU whatever the device (the same seed gives the same run on one device;
    devices differ only by floating-point rounding of the policy). With ``cache`` the
    policy's incremental :class:`~paretolab.models.generators.gflownet.policy.Rollout`
    is used when it has one (a transformer's key/value cache: linear in the length);
    without, every prefix is evaluated from scratch. Both draw the same samples from one
    seed (their logits differ only by floating-point rounding). Rollouts from ``start``
    evaluate whole prefixes (the cache fills as it decodes from the initial state).
    """
    n, device = len(condition), condition.device
    state = env.initial(n, device) if start is None else start.to(device)
    states, actions = [state], []
    active = torch.ones(n, dtype=torch.bool, device=device)
    rollout = policy.start_rollout(condition) if cache and start is None else None
    for _ in range(env.max_steps):
        rows = active.nonzero().squeeze(-1)
        current = state[rows]
        mask = env.forward_mask(current)
        if rollout is None:
            logits, _ = policy.logits(current, condition[rows])
        else:
            logits = rollout.logits(rows, current)
        probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        if epsilon > 0:
            uniform = mask / mask.sum(-1, keepdim=True)
            probs = (1 - epsilon) * probs + epsilon * uniform
        chosen = torch.multinomial(probs.float().cpu(), 1, generator=rng).squeeze(-1).to(device)
        action = torch.full((n,), NO_ACTION, dtype=torch.long, device=device)
        action[rows] = chosen
        moving = rows[chosen != env.stop]
        state = state.clone()
        state[moving] = env.step(state[moving], chosen[chosen != env.stop])
        active[rows[chosen == env.stop]] = False
        actions.append(action)
        states.append(state)
        if not active.any():
            break
    return Trajectories(torch.stack(states), torch.stack(actions))


@torch.no_grad()
def backward_trajectories(env: Environment, terminal: Tensor, rng: torch.Generator) -> Trajectories:
    """Trajectories ending in the given terminal states, each parent drawn uniformly
    (the unique path in a tree)."""
    n, device = len(terminal), terminal.device
    depth = env.depth(terminal)
    backward = [terminal]
    state = terminal
    for _ in range(int(depth.max()) if n else 0):
        mask = env.backward_mask(state)
        has_parent = mask.any(-1)
        weights = torch.where(has_parent[:, None], mask, torch.ones_like(mask)).float()
        choice = torch.multinomial(weights.cpu(), 1, generator=rng).squeeze(-1).to(device)
        state = torch.where(has_parent[:, None], env.backward_step(state, choice), state)
        backward.append(state)
    path = torch.stack(backward)  # path[k] = state k backward steps before the end
    steps = int(depth.max()) + 1 if n else 1
    t = torch.arange(steps + 1, device=device)[:, None]
    index = (depth[None, :] - t).clamp_min(0)  # forward position t is backward step depth - t
    states = path[index, torch.arange(n, device=device)[None, :]]
    parents, children = states[:-1].flatten(0, 1), states[1:].flatten(0, 1)
    actions = env.action_between(parents, children).reshape(steps, n)
    actions = torch.where(t[:-1] == depth[None, :], env.stop, actions)
    actions = torch.where(t[:-1] > depth[None, :], NO_ACTION, actions)
    return Trajectories(states, actions)


@torch.no_grad()
def ancestors(env: Environment, terminal: Tensor, steps: Tensor, rng: torch.Generator) -> Tensor:
    """The state ``steps[i]`` actions before each terminal state (``n x state_size``; at most
    its depth back, i.e. the initial state), along a backward trajectory with each parent
    drawn uniformly (the prefix ``steps`` tokens shorter, in a tree)."""
    trajectories = backward_trajectories(env, terminal, rng)
    back = (env.depth(terminal) - steps.to(terminal.device)).clamp_min(0)
    return trajectories.states[back, torch.arange(len(terminal), device=terminal.device)]


def trajectory_log_probs(
    env: Environment, policy: Policy, trajectories: Trajectories, condition: Tensor
) -> tuple[Tensor, Tensor]:
    """``sum_t log P_F(s_t+1 | s_t)`` and ``sum_t log P_B(s_t | s_t+1)`` per trajectory.

    ``P_B`` is 1 in a tree, uniform over parents unless the policy learns it; the stop
    transition has ``P_B = 1``.
    """
    states, actions = trajectories.states, trajectories.actions
    steps, n = actions.shape
    moves = ((actions != NO_ACTION) & (actions != env.stop)).sum(0)
    needed = torch.arange(steps + 1, device=actions.device)[:, None] <= moves[None, :]
    forward, backward = policy.trajectory_logits(states, condition, needed)
    flat_states = states[:-1].flatten(0, 1)
    mask = env.forward_mask(flat_states).reshape(steps, n, -1)
    taken = actions != NO_ACTION
    log_pf = _masked_log_softmax(forward[:steps], mask)
    log_pf = log_pf.gather(-1, actions.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    log_pf = torch.where(taken, log_pf, 0.0).sum(0)

    moved = taken & (actions != env.stop)
    if env.is_tree:
        return log_pf, torch.zeros_like(log_pf)
    children = states[1:].flatten(0, 1)
    if backward is None:
        log_pb = -torch.log(env.parent_count(children).clamp_min(1).to(log_pf.dtype)).reshape(steps, n)
    else:
        back_mask = env.backward_mask(children).reshape(steps, n, -1)
        log_pb = _masked_log_softmax(backward[1 : steps + 1], back_mask)
        back_action = env.backward_action(actions.clamp_min(0))
        log_pb = log_pb.gather(-1, back_action.unsqueeze(-1)).squeeze(-1)
    return log_pf, torch.where(moved, log_pb, 0.0).sum(0)
