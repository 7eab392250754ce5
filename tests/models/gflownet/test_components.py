"""Reward transforms, conditioning, environments, sampler and the campaign generator."""

from __future__ import annotations

import math

import pytest
import torch

from paretolab.data.dataset import Dataset
from paretolab.data.pareto import best_first
from paretolab.data.spaces import PAD, GridSpace, SequenceSpace
from paretolab.models.generators.gflownet import (
    MOGFN,
    ConditionSampler,
    HyperGridEnvironment,
    MOGFNGenerator,
    MOGFNSettings,
    SequenceEnvironment,
    ancestors,
    backward_trajectories,
    sample_trajectories,
    simplex_grid,
    thermometer,
)
from paretolab.models.proxies.gp import fit_gp_proxy
from paretolab.models.rewards import (
    MIN_SCALARIZED_REWARD,
    ProxyReward,
    Tchebycheff,
    WeightedSum,
    log_reward,
    scalarization,
)


def test_log_reward_is_beta_times_one_log_of_the_scalarized_reward():
    r = torch.tensor([[0.2, 0.6], [1.0, 0.0], [0.0, 0.0]])
    w = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]])
    s = WeightedSum()(r, w)
    assert s.tolist() == pytest.approx([0.5, 0.5, 0.0])
    logs = log_reward(s, torch.tensor([3.0, 2.0, 2.0]))
    assert logs[0].item() == pytest.approx(3 * math.log(0.5))
    assert logs[1].item() == pytest.approx(2 * math.log(0.5))
    assert logs[2].item() == pytest.approx(2 * math.log(MIN_SCALARIZED_REWARD), rel=1e-6)
    # R^beta, not log(log R) nor (log R)^beta: exp(log R) is a power of the reward
    assert torch.exp(logs[:2]).tolist() == pytest.approx([0.5**3, 0.5**2])
    with pytest.raises(ValueError, match="non-negative"):
        log_reward(torch.log(s[:2]), 1.0)  # a log-reward passed twice is refused


def test_tchebycheff_and_lookup():
    r = torch.tensor([[0.2, 0.6]])
    assert Tchebycheff()(r, torch.tensor([[0.5, 0.5]])).item() == pytest.approx(0.1)
    assert isinstance(scalarization("tchebycheff"), Tchebycheff)
    with pytest.raises(ValueError, match="unknown scalarization 'sum'"):
        scalarization("sum")


def test_thermometer_and_simplex_grid():
    code = thermometer(torch.tensor([0.0, 0.5, 0.6, 1.0]), 5, 0.0, 1.0)
    expected = [[0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 0.4, 0, 0], [1, 1, 1, 1, 0]]
    assert torch.allclose(code, torch.tensor(expected))
    grid = simplex_grid(3, 4)
    assert len(grid) == 15 and torch.allclose(grid.sum(-1), torch.ones(15, dtype=torch.double))


def test_condition_sampler_is_seeded_and_encodes_beta_only_when_it_varies():
    fixed = ConditionSampler(3, 16.0, bins=10)
    ranged = ConditionSampler(3, (1.0, 32.0), bins=10)
    a = ranged.sample(8, torch.Generator().manual_seed(0))
    b = ranged.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(a.preferences, b.preferences) and torch.equal(a.beta, b.beta)
    assert (
        torch.allclose(a.preferences.sum(-1), torch.ones(8)) and (a.beta >= 1).all() and (a.beta <= 32).all()
    )
    assert fixed.encode(fixed.sample(4, torch.Generator())).shape == (4, 30)
    assert ranged.encode(a).shape == (8, 40)
    single = ConditionSampler(1, 2.0, bins=10)  # nothing varies: an unconditional GFlowNet
    assert single.encoding_size == 0 and single.encode(single.sample(3, torch.Generator())).shape == (3, 0)
    with pytest.raises(ValueError, match="beta"):
        ConditionSampler(2, (5.0, 1.0))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "env",
    [HyperGridEnvironment(GridSpace(3, 4)), SequenceEnvironment(SequenceSpace("ABCD", 2, 5))],
    ids=["grid", "sequence"],
)
def test_sampled_trajectories_respect_masks_and_replay_round_trips(env, device):
    model = MOGFN(
        env,
        2,
        MOGFNSettings(trajectories_per_step=128, hidden=16, layers=2, thermometer_bins=4),
        seed=0,
        device=device,
    )
    conditioning = model.conditions.sample(200, torch.Generator().manual_seed(0)).to(model.device)
    cond = model.conditions.encode(conditioning)
    traj = sample_trajectories(env, model.policy, cond, torch.Generator().manual_seed(1), epsilon=0.5)
    for t in range(traj.actions.shape[0]):
        taken = traj.actions[t] >= 0
        allowed = env.forward_mask(traj.states[t][taken])
        assert allowed.gather(1, traj.actions[t][taken, None]).all()
    assert ((traj.actions == env.stop).sum(0) == 1).all()  # each trajectory stops once
    tokens = env.to_tokens(traj.terminal).cpu()
    candidates = env.space.decode(tokens)
    assert all(env.space.check(c).canonical == c for c in candidates)
    replay = backward_trajectories(env, traj.terminal, torch.Generator().manual_seed(2))
    assert torch.equal(replay.terminal, traj.terminal)
    assert torch.equal(replay.states[0], env.initial(200, model.device))
    assert ((replay.actions == env.stop).sum(0) == 1).all()
    again = sample_trajectories(env, model.policy, cond, torch.Generator().manual_seed(1), epsilon=0.5)
    assert torch.equal(again.terminal, traj.terminal)  # seeded


def test_invalid_actions_are_never_sampled_at_the_edges():
    env = SequenceEnvironment(SequenceSpace("AB", 3, 3))
    model = MOGFN(
        env, 1, MOGFNSettings(trajectories_per_step=128, hidden=8, layers=1, thermometer_bins=2), seed=0
    )
    cond = model.conditions.encode(model.conditions.sample(500, torch.Generator()))
    traj = sample_trajectories(env, model.policy, cond, torch.Generator().manual_seed(0), epsilon=0.9)
    assert ((traj.terminal != PAD).sum(-1) == 3).all()


def _grid_dataset(space, n=20):
    from paretolab.oracles.hypergrid import HyperGridOracle

    candidates = space.sample(n, torch.Generator().manual_seed(0))
    candidates = list(dict.fromkeys(candidates))
    Y = HyperGridOracle(space)(candidates).values
    return Dataset(candidates, space.featurize(candidates), Y)


@pytest.mark.parametrize("device", DEVICES)
def test_generator_trains_on_the_proxy_warm_starts_and_restores(tmp_path, device):
    space = GridSpace(2, 8)
    data = _grid_dataset(space)
    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    reward = ProxyReward(model.to(device), space)
    settings = MOGFNSettings(
        trajectories_per_step=32, hidden=32, layers=2, thermometer_bins=8, replay_fraction=0.25
    )
    gen = MOGFNGenerator(space, 2, settings, steps_per_round=30, kappa=0.5, device=device)
    metrics = gen.update(reward, data, torch.Generator().manual_seed(0))
    assert {"loss", "log_z", "steps_per_second"} <= metrics.keys() and math.isfinite(metrics["loss"])
    assert len(gen.history["loss"]) == 30
    measured = gen.env.from_tokens(space.encode(data.candidates)).to(gen.model.device)
    buffered = {tuple(r) for r in gen.model.buffer_states.tolist()}
    assert {tuple(r) for r in measured.tolist()} <= buffered  # measured candidates are replayed
    state = gen.state_dict()
    path = tmp_path / "state.pt"
    torch.save(state, path)

    twin = MOGFNGenerator(space, 2, settings, steps_per_round=30, kappa=0.5, seed=99, device=device)
    twin.load_state_dict(torch.load(path, weights_only=True))
    a = gen.propose(64, torch.Generator().manual_seed(5))
    b = twin.propose(64, torch.Generator().manual_seed(5))
    assert a == b and all(space.check(x).canonical == x for x in a)
    gen.update(reward, data, torch.Generator().manual_seed(1))
    twin.update(reward, data, torch.Generator().manual_seed(1))  # warm start continues identically
    assert gen.propose(64, torch.Generator().manual_seed(6)) == twin.propose(
        64, torch.Generator().manual_seed(6)
    )


def test_learned_backward_policy_is_refused_on_a_tree():
    with pytest.raises(ValueError, match="DAG"):
        MOGFN(SequenceEnvironment(SequenceSpace("AB", 1, 2)), 2, MOGFNSettings(learn_backward=True))


def test_learned_backward_policy_trains_on_a_grid():
    env = HyperGridEnvironment(GridSpace(2, 5))
    settings = MOGFNSettings(
        learn_backward=True, hidden=16, layers=2, thermometer_bins=4, trajectories_per_step=16
    )
    model = MOGFN(env, 2, settings, seed=0)
    history = model.train(lambda s: (s.float() + 1) / 5, 5, torch.Generator().manual_seed(0))
    assert all(math.isfinite(v) for v in history["loss"])


def test_campaign_reward_is_normalized_by_the_measurements_even_when_one_is_constant():
    space = GridSpace(2, 8)
    data = _grid_dataset(space)
    Y = torch.stack([data.Y[:, 0], torch.full_like(data.Y[:, 0], 0.5)], -1)  # nothing learned yet
    data = Dataset(data.candidates, data.X, Y)
    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    gen = MOGFNGenerator(
        space, 2, MOGFNSettings(trajectories_per_step=128, hidden=8, layers=1, thermometer_bins=4), kappa=0.5
    )
    every = gen.env.from_tokens(space.encode([f"{i},{j}" for i in range(8) for j in range(8)]))
    rewards = gen.objective(ProxyReward(model, space), data)(every)
    assert torch.isfinite(rewards).all() and (rewards >= 0).all()
    assert rewards[:, 1].abs().max() < 2  # a constant objective is not blown up by a zero range
    measured = gen.objective(ProxyReward(model, space), data)(
        gen.env.from_tokens(space.encode(data.candidates))
    )
    assert measured[:, 0].min() > 0.05  # the worst measured keeps a positive reward (margin)


def test_ancestors_undo_the_last_actions_and_stop_at_the_initial_state():
    env = SequenceEnvironment(SequenceSpace("ABC", 2, 6))
    terminal = env.from_tokens(env.space.encode(["ABCABC", "AB", "CCCC"]))
    back = ancestors(env, terminal, torch.tensor([2, 5, 1]), torch.Generator().manual_seed(0))
    assert env.space.decode(back[[0]]) == ["ABCA"] and env.depth(back).tolist() == [4, 0, 3]
    grid = HyperGridEnvironment(GridSpace(3, 6))
    points = torch.tensor([[5, 2, 0], [1, 1, 1]])
    back = ancestors(grid, points, torch.tensor([3, 1]), torch.Generator().manual_seed(0))
    assert (back <= points).all() and grid.depth(back).tolist() == [4, 2]  # a parent on every step


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_local_samples_complete_the_best_measured_sequences(share):
    """A pool's local share starts from the anchors (the best measured candidates) with
    at most local_steps tokens undone; the rest is sampled from the empty sequence."""
    space = SequenceSpace("ABCD", 10, 10)
    rng = torch.Generator().manual_seed(0)
    candidates = list(dict.fromkeys(space.sample(30, rng)))
    X = space.featurize(candidates)
    Y = torch.stack([X[:, 0::4].sum(-1), X[:, 1::4].sum(-1)], -1).double()  # counts of A and of B
    data = Dataset(candidates, X, Y)
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    settings = MOGFNSettings(trajectories_per_step=16, hidden=16, layers=2, thermometer_bins=8)
    gen = MOGFNGenerator(
        space, 2, settings, steps_per_round=2, local_share=share, local_steps=3, local_anchors=4
    )
    gen.update(ProxyReward(model, space), data, torch.Generator().manual_seed(0))
    anchors = space.decode(gen.env.to_tokens(gen.anchors))
    best = [candidates[i] for i in best_first(Y)[:4].tolist()]
    assert anchors == best
    pool = gen.propose(200, torch.Generator().manual_seed(1))
    near = [x for x in pool if any(x[:7] == a[:7] for a in anchors)]
    assert len(pool) == 200 and gen.proposal_metrics["local_share"] == share
    # every local sample keeps an anchor's first 7 letters; one from the empty sequence almost never does
    assert share * 200 <= len(near) <= share * 200 + 5
    if share:  # at least one letter is redrawn: local samples are not just the anchors again
        assert sum(x in anchors for x in pool) < 0.5 * share * 200
    assert gen.propose(200, torch.Generator().manual_seed(1)) == pool

    state = gen.state_dict()  # a checkpoint saved before local samples has no anchors
    del state["anchors"]
    gen.load_state_dict(state)
    assert len(gen.anchors) == 0 and gen.propose(20, rng) and gen.proposal_metrics["local_share"] == 0.0
    empty = Dataset([], X[:0], Y[:0])  # nothing measured yet: no anchors, every sample from the start
    gen.update(ProxyReward(model, space), empty, torch.Generator().manual_seed(0))
    assert len(gen.anchors) == 0 and len(gen.propose(20, rng)) == 20
    assert gen.proposal_metrics["local_share"] == 0.0
