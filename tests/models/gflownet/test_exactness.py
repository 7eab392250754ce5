"""The sampler is proven right by exact enumeration, not by sampling.

A trained conditional model's terminal distribution (dynamic programming over the DAG) must
match R(x | w)^beta / Z within total variation 0.05 for fixed preferences; a hand-built
perfect policy must have zero trajectory-balance loss on any trajectory.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from paretolab.data.spaces import GridSpace, SequenceSpace
from paretolab.models.generators.gflownet import (
    MOGFN,
    Conditioning,
    Environment,
    HyperGridEnvironment,
    MOGFNSettings,
    Policy,
    SequenceEnvironment,
    Trajectories,
    TrajectoryBalance,
    TrajectoryScores,
    backward_trajectories,
    sample_trajectories,
    terminal_distribution,
    total_variation,
    trajectory_log_probs,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
"""The same code must be exact on every device present (CUDA checks run on a GPU machine)."""

PREFERENCES = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.1, 0.9], [0.3, 0.7], [0.7, 0.3]])
BETA = 4.0


def grid_objectives(states: Tensor) -> Tensor:
    u = states.float() / 7
    near = lambda c: 1 - ((u - torch.tensor(c, device=u.device)) ** 2).sum(-1)  # noqa: E731
    return torch.stack([near([0.2, 0.8]), near([0.8, 0.2])], -1).clamp_min(0)


def sequence_objectives(states: Tensor) -> Tensor:
    present = states >= 0
    n = present.sum(-1).float()
    a = ((states == 0) & present).sum(-1).float()
    c = ((states == 2) & present).sum(-1).float()
    return torch.stack([(a + 1) / (n + 2), (c + 1) / (n + 2)], -1)


def _max_tv(model: MOGFN, objectives, start: Tensor | None = None) -> list[float]:
    """Largest total variation over the preferences between the policy's terminal
    distribution (from ``start`` when given) and the target reward's over the same states."""
    distances = []
    for w in PREFERENCES:
        conditioning = model.conditions.fixed(w[None], BETA).to(model.device)
        condition = model.conditions.encode(conditioning)
        states, p = terminal_distribution(model.env, model.policy, condition, start)
        n = len(states)
        every = Conditioning(conditioning.preferences.expand(n, -1), conditioning.beta.expand(n))
        target = torch.softmax(model.log_reward(objectives(states), every).double(), 0)
        assert p.sum().item() == pytest.approx(1.0, abs=1e-9)
        distances.append(total_variation(p, target))
    return distances


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("env", "objectives", "steps", "size"),
    [
        (HyperGridEnvironment(GridSpace(2, 8)), grid_objectives, 2000, 64),
        (SequenceEnvironment(SequenceSpace("ABC", 1, 4)), sequence_objectives, 1000, 120),
    ],
    ids=["hypergrid-8x8", "sequences-1to4-over-3"],
)
def test_trained_conditional_model_matches_target_exactly(env, objectives, steps, size, device):
    settings = MOGFNSettings(
        beta=BETA, trajectories_per_step=128, epsilon=0.05, hidden=64, layers=2, thermometer_bins=16
    )
    model = MOGFN(env, 2, settings, seed=0, device=device)
    untrained = _max_tv(model, objectives)
    model.train(objectives, steps, torch.Generator().manual_seed(0))
    first = model.conditions.encode(model.conditions.fixed(PREFERENCES[:1]).to(model.device))
    states, _ = terminal_distribution(env, model.policy, first)
    assert len(states) == size  # every terminal state is enumerated
    trained = _max_tv(model, objectives)
    assert max(trained) < 0.05, trained
    assert max(untrained) > 0.1  # the check can fail: an untrained policy is far off
    if env.is_tree:  # local sampling: from a prefix, P_F(x | s) = R(x) / F(s) below it
        local = _max_tv(
            model,
            objectives,
            start=env.step(env.initial(1, model.device), torch.tensor([2], device=model.device)),
        )
        assert max(local) < 0.05, local


class TablePolicy(Policy):
    """Logits read from tables of log-flows: the exact GFlowNet for a reward."""

    def __init__(self, env: Environment, forward: dict[tuple, Tensor], backward: dict | None = None) -> None:
        super().__init__(env, 1)
        self.forward_table = forward
        self.backward_table = backward
        self.learns_backward = backward is not None

    def logits(self, states: Tensor, condition: Tensor) -> tuple[Tensor, Tensor | None]:
        keys = [tuple(s.tolist()) for s in states]
        forward = torch.stack([self.forward_table[k] for k in keys])
        if self.backward_table is None:
            return forward, None
        return forward, torch.stack([self.backward_table[k] for k in keys])


def _backward_table(env: Environment, states: list[Tensor]) -> dict[tuple, Tensor]:
    """A non-uniform backward policy: logits that depend on the state and the action."""
    table = {}
    for s in states:
        key = tuple(s.tolist())
        table[key] = torch.tensor([0.7 * (i + 1) * v for i, v in enumerate(key)], dtype=torch.double)
    return table


def _perfect_policy(
    env: Environment, log_reward, learned_backward: bool = False
) -> tuple[TablePolicy, float]:
    """Flows by backward induction: F(s) = R(s) + sum_children F(c) P_B(s | c), and
    P_F(c | s) = F(c) P_B(s | c) / F(s)."""
    layers = [env.initial(1)]
    for _ in range(env.max_steps):
        state = layers[-1]
        mask = env.forward_mask(state)[:, : env.stop]
        rows, actions = mask.nonzero(as_tuple=True)
        if len(rows) == 0:
            break
        layers.append(torch.unique(env.step(state[rows], actions), dim=0))
    every = [s for layer in layers for s in layer]
    backward = _backward_table(env, every) if learned_backward else None

    def log_pb(child: Tensor, action: Tensor) -> Tensor:
        if env.is_tree:
            return torch.tensor(0.0, dtype=torch.double)
        mask = env.backward_mask(child[None])[0]
        if backward is None:
            return -torch.log(mask.sum().double())
        logits = backward[tuple(child.tolist())].masked_fill(~mask, float("-inf"))
        return torch.log_softmax(logits, 0)[env.backward_action(action[None])[0]]

    flow: dict[tuple, float] = {}
    table: dict[tuple, Tensor] = {}
    for layer in reversed(layers):
        mask = env.forward_mask(layer)
        for s, m in zip(layer, mask, strict=True):
            logits = torch.full((env.n_actions,), float("-inf"), dtype=torch.double)
            if m[env.stop]:
                logits[env.stop] = log_reward(s[None])[0]
            for a in m[: env.stop].nonzero().flatten():
                child = env.step(s[None], a[None])[0]
                logits[a] = flow[tuple(child.tolist())] + log_pb(child, a)
            flow[tuple(s.tolist())] = float(torch.logsumexp(logits, 0))
            table[tuple(s.tolist())] = logits
    return TablePolicy(env, table, backward), flow[tuple(env.initial(1)[0].tolist())]


@pytest.mark.parametrize(
    ("env", "learned_backward"),
    [
        (HyperGridEnvironment(GridSpace(2, 5)), False),
        (HyperGridEnvironment(GridSpace(3, 3)), True),
        (SequenceEnvironment(SequenceSpace("AB", 1, 3)), False),
    ],
    ids=["hypergrid-uniform-pb", "hypergrid-learned-pb", "sequences"],
)
def test_trajectory_balance_is_zero_for_a_perfect_policy(env, learned_backward):
    weights = torch.tensor([0.3, 0.7])

    def log_reward(states: Tensor) -> Tensor:
        r = torch.stack([(states == 0).sum(-1), (states == 1).sum(-1)], -1).double() + 1
        return 2.0 * torch.log((r * weights).sum(-1))

    policy, log_z = _perfect_policy(env, log_reward, learned_backward)
    generator = torch.Generator().manual_seed(1)
    condition = torch.zeros(64, 1)
    online = sample_trajectories(env, policy, condition, generator, epsilon=0.3)
    replayed = backward_trajectories(env, online.terminal.flip(0), generator)
    mixed = Trajectories.cat([online[:40], replayed[40:]])  # different horizons, as in training
    loss = TrajectoryBalance()
    for trajectories in (online, replayed, mixed):
        log_pf, log_pb = trajectory_log_probs(env, policy, trajectories, condition)
        if learned_backward:
            assert log_pb.min() < log_pb.max()  # P_B is not uniform: the table matters
        scores = TrajectoryScores(torch.full((64,), log_z, dtype=torch.double), log_pf, log_pb)
        target = log_reward(trajectories.terminal)
        assert loss.residuals(scores, target).abs().max().item() < 1e-9
        assert loss(scores, target).item() == pytest.approx(0.0, abs=1e-15)
    # a policy that is slightly off is penalized: the check can fail
    start = tuple(env.initial(1)[0].tolist())  # every trajectory leaves from here
    policy.forward_table[start] = policy.forward_table[start] + torch.linspace(0, 0.3, env.n_actions).double()
    log_pf, log_pb = trajectory_log_probs(env, policy, online, condition)
    wrong = TrajectoryScores(scores.log_z, log_pf, log_pb)
    assert loss(wrong, log_reward(online.terminal)).item() > 1e-4
    states, p = terminal_distribution(env, policy, condition[0])
    target = torch.softmax(log_reward(states), 0)
    assert total_variation(p, target) > 1e-3
