"""The sampler is proven right by exact enumeration, not by sampling.

A trained conditional model's terminal distribution (dynamic programming over the DAG) must
match R(x | w)^beta / Z within total variation 0.05 for fixed preferences; a hand-built
perfect policy must have zero trajectory-balance loss on any trajectory.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from data.spaces import GridSpace, SequenceSpace
from models.generators.gflownet import (
    MOGFN,
    Conditioning,
    Environment,
    HyperGridEnvironment,
    MOGFNSettings,
    Policy,
    SequenceEnvironment,
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


def _max_tv(model: MOGFN, objectives) -> list[float]:
    distances = []
    for w in PREFERENCES:
        conditioning = model.conditions.fixed(w[None], BETA).to(model.device)
        states, p = terminal_distribution(model.env, model.policy, model.conditions.encode(conditioning))
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
        beta=BETA, batch_size=128, epsilon=0.05, hidden=64, layers=2, thermometer_bins=16
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


class TablePolicy(Policy):
    """Forward logits read from a table of log-flows: the exact GFlowNet for a reward."""

    def __init__(self, env: Environment, table: dict[tuple, Tensor]) -> None:
        super().__init__(env, 1)
        self.table = table

    def logits(self, states: Tensor, condition: Tensor) -> tuple[Tensor, None]:
        return torch.stack([self.table[tuple(s.tolist())] for s in states]), None


def _perfect_policy(env: Environment, log_reward) -> tuple[TablePolicy, float]:
    """Flows by backward induction: F(s) = R(s) + sum_children F(c) P_B(s | c)."""
    layers = [env.initial(1)]
    for _ in range(env.max_steps):
        state = layers[-1]
        mask = env.forward_mask(state)[:, : env.stop]
        rows, actions = mask.nonzero(as_tuple=True)
        if len(rows) == 0:
            break
        layers.append(torch.unique(env.step(state[rows], actions), dim=0))
    flow: dict[tuple, float] = {}
    table: dict[tuple, Tensor] = {}
    for layer in reversed(layers):
        mask = env.forward_mask(layer)
        for s, m in zip(layer, mask, strict=True):
            logits = torch.full((env.n_actions,), float("-inf"), dtype=torch.double)
            if m[env.stop]:
                logits[env.stop] = log_reward(s[None])[0]
            for a in m[: env.stop].nonzero().flatten():
                child = env.step(s[None], a[None])
                parents = env.parent_count(child)[0] if not env.is_tree else 1
                logits[a] = flow[tuple(child[0].tolist())] - torch.log(
                    torch.tensor(float(parents), dtype=torch.double)
                )
            flow[tuple(s.tolist())] = float(torch.logsumexp(logits, 0))
            table[tuple(s.tolist())] = logits
    return TablePolicy(env, table), flow[tuple(env.initial(1)[0].tolist())]


@pytest.mark.parametrize(
    "env",
    [HyperGridEnvironment(GridSpace(2, 5)), SequenceEnvironment(SequenceSpace("AB", 1, 3))],
    ids=["hypergrid", "sequences"],
)
def test_trajectory_balance_is_zero_for_a_perfect_policy(env):
    weights = torch.tensor([0.3, 0.7])

    def log_reward(states: Tensor) -> Tensor:
        r = torch.stack([(states == 0).sum(-1), (states == 1).sum(-1)], -1).double() + 1
        return 2.0 * torch.log((r * weights).sum(-1))

    policy, log_z = _perfect_policy(env, log_reward)
    generator = torch.Generator().manual_seed(1)
    condition = torch.zeros(64, 1)
    online = sample_trajectories(env, policy, condition, generator, epsilon=0.3)
    replayed = backward_trajectories(env, online.terminal.flip(0), generator)
    loss = TrajectoryBalance()
    for trajectories in (online, replayed):
        log_pf, log_pb = trajectory_log_probs(env, policy, trajectories, condition)
        scores = TrajectoryScores(
            torch.full((64,), log_z, dtype=torch.double), log_pf, log_pb, log_reward(trajectories.terminal)
        )
        assert loss.residuals(scores).abs().max().item() < 1e-9
        assert loss(scores).item() == pytest.approx(0.0, abs=1e-15)
        # a wrong log Z is penalized: the check can fail
        assert loss(TrajectoryScores(scores.log_z + 0.5, log_pf, log_pb, scores.log_reward)).item() > 0.2
    states, p = terminal_distribution(env, policy, condition[0])
    target = torch.softmax(log_reward(states), 0)
    assert total_variation(p, target) < 1e-12
