"""OP-GFN: the order's targets, invariance to monotone transforms, ranking and
sparsification measured exactly by enumeration, and the campaign generator."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy.stats import spearmanr

from paretolab.data.dataset import Dataset
from paretolab.data.pareto import pareto_mask
from paretolab.data.spaces import GridSpace, SequenceSpace
from paretolab.models.generators.gflownet import (
    MOGFN,
    OPGFN,
    GFlowNetSettings,
    MOGFNSettings,
    OPGFNGenerator,
    OrderPreserving,
    TrajectoryScores,
    environment_for,
    order_target,
    pair_target,
    terminal_distribution,
)
from paretolab.models.proxies.gp import fit_gp_proxy
from paretolab.models.rewards import ProxyReward
from paretolab.oracles.hypergrid import HyperGridOracle, hypergrid_values

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
INF = float("inf")
MONOTONE = {  # strictly increasing maps, applied to one objective each
    "exp": torch.exp,
    "cube": lambda v: v**3,
    "affine": lambda v: 1e3 * v - 7.0,
    "sigmoid": torch.sigmoid,
    "shifted log": lambda v: torch.log(v + 100.0),
}


def test_order_target_is_uniform_over_the_maximal_elements():
    Y = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [2.0, 1.0], [-INF, 5.0], [float("nan"), 9.0]])
    # duplicates both count; -inf and NaN rows (not members) are never maximal
    assert order_target(Y).tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3, 0, 0])
    assert order_target(torch.tensor([[3.0], [5.0], [5.0], [1.0]])).tolist() == [0, 0.5, 0.5, 0]  # argmax set
    assert order_target(torch.full((3, 2), -INF)).tolist() == [0, 0, 0]  # nothing to order
    assert order_target(torch.tensor([[INF, 0.0], [1.0, 1.0], [0.0, 0.0]])).tolist() == [0.5, 0.5, 0]
    with pytest.raises(ValueError, match="n x m"):
        order_target(torch.tensor([1.0, 2.0]))


def test_pair_target_is_the_order_target_of_each_pair():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 3, (300, 2), generator=g).double()  # many ties and incomparable pairs
    b = torch.randint(0, 3, (300, 2), generator=g).double()
    a[::7, 0], b[::11, 1] = -INF, float("nan")
    expected = torch.stack([order_target(torch.stack([x, y])) for x, y in zip(a, b, strict=True)])
    assert torch.equal(pair_target(a, b), expected)


@pytest.mark.parametrize("pairs", [False, True], ids=["batch", "pairs"])
def test_order_preserving_loss_is_invariant_to_monotone_transforms(pairs):
    g = torch.Generator().manual_seed(1)
    Y = torch.randint(-3, 4, (64, 3), generator=g).double() / 2  # ties within and across rows
    Y[5] = -INF
    scores = TrajectoryScores(torch.zeros(64), torch.randn(64, generator=g), torch.randn(64, generator=g))
    loss = OrderPreserving(pairs=pairs)

    def evaluate(values):
        return loss(scores, values, torch.Generator().manual_seed(2))

    reference = evaluate(Y)
    assert math.isfinite(reference.item()) and reference.item() > 0
    for combo in itertools.permutations(MONOTONE, 3):
        transformed = torch.stack([MONOTONE[name](Y[:, i]) for i, name in enumerate(combo)], -1)
        assert torch.equal(evaluate(transformed), reference), combo
    # the loss does see the order: swapping which rows are best changes it
    assert not torch.equal(evaluate(-Y), reference)
    with pytest.raises(ValueError, match="n x m"):
        evaluate(Y[:, 0])


def _train(model_class, settings, objective, steps=15):
    env = environment_for(GridSpace(2, 6))
    model = model_class(env, 2, settings, seed=3)
    model.train(objective, steps, torch.Generator().manual_seed(4))
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("replay", [0.0, 0.25], ids=["on-policy", "replay"])
def test_training_is_invariant_to_monotone_transforms_of_the_objectives(replay):
    def objective(states):
        return hypergrid_values(states, 6, ["branin", "currin"]).float()

    def transformed(states):
        Y = objective(states)
        return torch.stack([torch.exp(3 * Y[:, 0]), Y[:, 1] ** 3 + 2], -1)

    # with replay, a small buffer is pruned many times: what it keeps must not depend on scale
    settings = GFlowNetSettings(
        trajectories_per_step=32, hidden=16, layers=2, policy="mlp", replay_fraction=replay, replay_capacity=6
    )
    assert torch.equal(_train(OPGFN, settings, objective), _train(OPGFN, settings, transformed))
    # MOGFN-PC's scalarized reward is not: the same transform changes what it learns
    mogfn = MOGFNSettings(trajectories_per_step=32, hidden=16, layers=2, thermometer_bins=4)
    assert not torch.equal(_train(MOGFN, mogfn, objective), _train(MOGFN, mogfn, transformed))


def _sequence_task(seed: int):
    """Every sequence of 1-3 letters over ABCD (84 states) with a black-box total order:
    a random permutation, so only the order can be learned."""
    space = SequenceSpace("ABCD", 1, 3)
    everything = ["".join(p) for n in (1, 2, 3) for p in itertools.product("ABCD", repeat=n)]
    ranks = torch.randperm(len(everything), generator=torch.Generator().manual_seed(seed)).double()
    return space, dict(zip(everything, ranks, strict=True))


def test_single_objective_ranking_and_sparsification_measured_exactly():
    space, value = _sequence_task(0)
    env = environment_for(space)

    def objective(states):
        return torch.stack([value[x] for x in space.decode(env.to_tokens(states).cpu())])[:, None].float()

    # the reference's replay buffer keeps the best states in the order's pairs
    settings = GFlowNetSettings(
        trajectories_per_step=64,
        lr=1e-3,
        hidden=64,
        layers=2,
        policy="mlp",
        replay_fraction=0.5,
        replay_capacity=20,
    )
    model = OPGFN(env, 1, settings, seed=0)
    generator = torch.Generator().manual_seed(1)
    top_mass, entropy = [], []
    for steps in (0, 200, 400, 800):
        model.train(objective, steps - model.steps_done, generator)
        states, p = terminal_distribution(env, model.policy, torch.zeros(0))  # exact, by enumeration
        assert len(states) == 84 and p.sum().item() == pytest.approx(1.0)
        v = torch.tensor([value[x] for x in space.decode(env.to_tokens(states))])
        order = torch.argsort(v, descending=True)
        top_mass.append(p[order[0]].item())
        entropy.append(-(p * p.log()).sum().item())
    # on a tree P_T(x) = R^(x) / Z exactly, so log P_T ranks like the learned log-reward
    top = order[:10]
    rho = spearmanr(p[top].log().numpy(), v[top].numpy()).statistic
    assert rho >= 0.9, rho
    # sparsification: the mass moves onto the maximal state as training proceeds
    assert top_mass == sorted(top_mass) and top_mass[0] < 0.02 and top_mass[-1] > 0.9, top_mass
    assert entropy == sorted(entropy, reverse=True) and entropy[-1] < 0.25 * entropy[0], entropy
    assert p[order[:5]].sum() > 0.95


def test_multi_objective_sampler_concentrates_on_the_pareto_front():
    space = GridSpace(2, 8)
    env = environment_for(space)

    def objective(states):
        return hypergrid_values(states, 8, ["branin", "currin"]).float()

    model = OPGFN(env, 2, GFlowNetSettings(trajectories_per_step=128, lr=1e-2, hidden=64, layers=3), seed=0)
    states, p = terminal_distribution(env, model.policy, torch.zeros(0))
    front = pareto_mask(objective(states))
    before = p[front].sum().item()
    model.train(objective, 300, torch.Generator().manual_seed(0))
    _, p = terminal_distribution(env, model.policy, torch.zeros(0))
    after = p[front].sum().item()
    assert before < 0.15 and after > 0.9, (before, after)  # the front: 6 of the 64 states


def test_measured_states_stay_in_a_small_replay_buffer():
    env = environment_for(GridSpace(2, 8))
    settings = GFlowNetSettings(
        trajectories_per_step=16, hidden=8, layers=1, replay_fraction=0.25, replay_capacity=3
    )
    model = OPGFN(env, 2, settings, seed=0)
    measured = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1], [7, 0]])  # poor points, except (7, 0)

    def objective(states):
        return hypergrid_values(states, 8, ["branin", "currin"]).float()

    model.train(objective, 20, torch.Generator().manual_seed(0), offline=measured)
    kept = {tuple(s) for s in model.buffer_states.tolist()}
    assert {tuple(s) for s in measured.tolist()} <= kept  # never evicted by better samples
    assert len(kept) == len(model.buffer_states) <= len(measured) + 3
    assert int(model.buffer_pinned.sum()) == len(measured)
    twin = OPGFN(env, 2, settings, seed=1)
    twin.load_state_dict(model.state_dict())
    assert torch.equal(twin.buffer_pinned, model.buffer_pinned)


def test_replay_keeps_members_first_and_ties_as_ties():
    from paretolab.data.pareto import best_first

    Y = torch.tensor([[1, 2], [2, 1], [-INF, 5], [float("nan"), 9], [0, 0], [1, 1], [1, 1], [0, 2]])
    order = best_first(Y).tolist()
    assert set(order[:2]) == {0, 1} and set(order[-2:]) == {2, 3}  # non-members last
    assert abs(order.index(5) - order.index(6)) == 1  # equal rows rank together
    assert order.index(4) == 5  # (0, 0): the last member


def test_an_opgfn_batch_of_replay_only_trains():
    space = GridSpace(2, 8)
    candidates = ["1,2", "3,4", "5,6"]
    data = Dataset(candidates, space.featurize(candidates), HyperGridOracle(space)(candidates).values)
    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    settings = GFlowNetSettings(
        trajectories_per_step=2, hidden=8, layers=1, replay_fraction=0.75
    )  # nothing online
    gen = OPGFNGenerator(space, 2, settings, steps_per_round=3)
    assert math.isfinite(gen.update(ProxyReward(model, space), data, torch.Generator())["loss"])


def test_learned_backward_policy_is_refused():
    with pytest.raises(ValueError, match="uniform backward policy"):
        OPGFN(environment_for(GridSpace(2, 4)), 2, GFlowNetSettings(learn_backward=True))


def test_an_objective_of_the_wrong_shape_is_refused():
    model = OPGFN(
        environment_for(GridSpace(2, 4)), 2, GFlowNetSettings(trajectories_per_step=8, hidden=8, layers=1)
    )
    with pytest.raises(ValueError, match=r"shape \(8, 3\) for 8 states and 2 objectives"):
        model.train(lambda s: torch.zeros(len(s), 3), 1, torch.Generator())


def test_learned_log_reward_is_exact_on_a_tree():
    space, _ = _sequence_task(0)
    env = environment_for(space)
    model = OPGFN(
        env, 1, GFlowNetSettings(trajectories_per_step=128, hidden=16, layers=2, policy="mlp"), seed=0
    )
    states, p = terminal_distribution(env, model.policy, torch.zeros(0))
    log_r = model.learned_log_reward(states, torch.Generator().manual_seed(0))
    log_z = model.log_z(torch.zeros(1, 0)).item()
    assert torch.allclose(log_r.double() - log_z, p.log(), atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_campaign_generator_orders_predictions_with_the_measurements(tmp_path, device):
    space = GridSpace(2, 8)
    candidates = list(dict.fromkeys(space.sample(20, torch.Generator().manual_seed(0))))
    data = Dataset(candidates, space.featurize(candidates), HyperGridOracle(space)(candidates).values)
    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    reward = ProxyReward(model.to(device), space)
    settings = GFlowNetSettings(trajectories_per_step=32, hidden=32, layers=2, replay_fraction=0.25)
    gen = OPGFNGenerator(space, 2, settings, steps_per_round=30, kappa=0.5, device=device)
    metrics = gen.update(reward, data, torch.Generator().manual_seed(0))
    assert math.isfinite(metrics["loss"]) and len(gen.history["loss"]) == 30
    # measured candidates are ordered at their measured values, everything else at the
    # optimistic prediction, whether sampled or replayed
    objective = gen.objective(reward, data)
    measured = gen.env.from_tokens(space.encode(data.candidates)).to(gen.model.device)
    assert torch.equal(objective(measured).cpu(), data.Y.float())
    every = gen.env.from_tokens(space.encode([f"{i},{j}" for i in range(8) for j in range(8)]))
    optimistic = reward.with_kappa(0.5).from_tokens(every).float().cpu()
    values = objective(every.to(gen.model.device)).cpu()
    unmeasured = torch.tensor([f"{i},{j}" not in data.candidates for i in range(8) for j in range(8)])
    assert torch.equal(values[unmeasured], optimistic[unmeasured])
    assert not torch.allclose(optimistic[~unmeasured], values[~unmeasured], atol=1e-4)  # kappa > 0
    values_of = dict(zip(map(tuple, gen.model.buffer_states.tolist()), gen.model.buffer_values, strict=True))
    for state, y in zip(measured.tolist(), data.Y.float(), strict=True):
        assert torch.equal(values_of[tuple(state)].cpu(), y)  # replayed at their measurements
    # warm start and restore
    path = tmp_path / "state.pt"
    torch.save(gen.state_dict(), path)
    twin = OPGFNGenerator(space, 2, settings, steps_per_round=30, kappa=0.5, seed=99, device=device)
    twin.load_state_dict(torch.load(path, weights_only=True))
    a = gen.propose(64, torch.Generator().manual_seed(5))
    assert a == twin.propose(64, torch.Generator().manual_seed(5))
    assert all(space.check(x).canonical == x for x in a)
    gen.update(reward, data, torch.Generator().manual_seed(1))
    twin.update(reward, data, torch.Generator().manual_seed(1))
    assert gen.propose(64, torch.Generator().manual_seed(6)) == twin.propose(
        64, torch.Generator().manual_seed(6)
    )


def test_a_measured_molecule_is_ordered_at_its_measurement_whatever_its_selfies():
    import selfies as sf

    from paretolab.data.spaces import PAD, MoleculeSpace

    space = MoleculeSpace(["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "CCCC"], 20)
    candidates = ["CCO", "Oc1ccccc1", "CC(=O)O", "CCN"]
    assert [space.check(x).canonical for x in candidates] == candidates
    Y = torch.tensor([[0.1, 0.2], [0.3, 0.1], [0.5, 0.5], [0.2, 0.9]], dtype=torch.double)
    data = Dataset(candidates, space.featurize(candidates), Y)
    model, _ = fit_gp_proxy(
        data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0), kernel="minmax"
    )
    gen = OPGFNGenerator(
        space,
        2,
        GFlowNetSettings(trajectories_per_step=128, hidden=8, layers=1, replay_fraction=0.25),
        kappa=1.0,
    )
    objective = gen.objective(ProxyReward(model, space), data)
    alias = list(sf.split_selfies(sf.encoder("OCC")))  # ethanol written from the other end
    assert alias != list(sf.split_selfies(sf.encoder("CCO")))
    tokens = torch.full((2, space.max_length), PAD, dtype=torch.long)
    tokens[0, : len(alias)] = torch.tensor([space.token_names().index(t) for t in alias])
    tokens[1] = space.encode(["CCCC"])[0]  # not measured: the optimistic prediction
    values = objective(gen.env.from_tokens(tokens))
    assert torch.equal(values[0], Y[0].float())
    expected = ProxyReward(model, space, kappa=1.0)(["CCCC"]).float()[0]
    assert torch.allclose(values[1], expected)
