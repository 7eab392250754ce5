"""GFlowNet training budgets: warm start on what is known before the first round, and a
time budget per round. Real fits and real training on small sizes."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import SequenceSpace
from paretolab.models.generators.gflownet import (
    MOGFN,
    GFlowNetSettings,
    MOGFNGenerator,
    MOGFNSettings,
    OPGFNGenerator,
    SequenceEnvironment,
)
from paretolab.models.proxies.gp import fit_gp_proxy
from paretolab.models.rewards import ProxyReward
from paretolab.oracles.ngram import NGramOracle

SETTINGS = MOGFNSettings(
    trajectories_per_step=32, hidden=32, layers=2, thermometer_bins=8, replay_fraction=0.25
)


def _sequence_task(seed: int = 4) -> tuple[SequenceSpace, Dataset, ProxyReward]:
    """Three motif counts on sequences of 10-12 of 20 letters; 24 measured, a GP fitted."""
    space = SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 10, 12)
    candidates = list(dict.fromkeys(space.sample(24, torch.Generator().manual_seed(seed))))
    Y = NGramOracle(space, max_score=3)(candidates).values
    data = Dataset(candidates, space.featurize(candidates), Y)
    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    return space, data, ProxyReward(model, space)


def test_warm_start_lowers_the_first_rounds_loss():
    """Offline trajectory balance on the measured candidates calibrates ``log Z`` and the
    policy before the first on-policy step: the first round's loss (same seed, same
    steps) is lower. Over seeds 0-7 the ratio was 0.38-0.75; on this one 0.41."""
    space, data, reward = _sequence_task(seed=4)
    losses = {}
    for warm in (0, 30):
        gen = MOGFNGenerator(space, 3, SETTINGS, steps_per_round=10, kappa=0.5, warm_start_steps=warm, seed=4)
        metrics = gen.update(reward, data, torch.Generator().manual_seed(4))
        assert len(gen.history["loss"]) == 10 and metrics["steps"] == 10
        losses[warm] = statistics.mean(gen.history["loss"])
        if warm:
            assert metrics["warm_start_steps"] == warm and len(gen.history["warm_start_loss"]) == warm
            assert gen.model.steps_done == warm + 10
        else:
            assert "warm_start_steps" not in metrics and "warm_start_loss" not in gen.history
    assert losses[30] < 0.6 * losses[0]


def test_warm_start_runs_on_the_first_update_only_and_not_after_a_restore():
    space, data, reward = _sequence_task()
    gen = MOGFNGenerator(space, 3, SETTINGS, steps_per_round=3, warm_start_steps=4, seed=0)
    first = gen.update(reward, data, torch.Generator().manual_seed(0))
    second = gen.update(reward, data, torch.Generator().manual_seed(1))
    assert first["warm_start_steps"] == 4 and "warm_start_steps" not in second
    assert gen.model.steps_done == 4 + 3 + 3
    twin = MOGFNGenerator(space, 3, SETTINGS, steps_per_round=3, warm_start_steps=4, seed=0)
    twin.load_state_dict(gen.state_dict())  # a resumed campaign continues, never restarts
    assert "warm_start_steps" not in twin.update(reward, data, torch.Generator().manual_seed(2))


def test_known_states_are_the_measured_candidates_then_seeds_up_to_what_warm_start_draws():
    from paretolab.data.spaces import MoleculeSpace

    space = MoleculeSpace(["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "CCCC", "CCCO"], 20)
    measured = ["CCO", "CCN"]
    data = Dataset(measured, space.featurize(measured), torch.tensor([[0.1, 0.2], [0.3, 0.1]]).double())
    settings = GFlowNetSettings(trajectories_per_step=2, hidden=8, layers=1, replay_fraction=0.25)
    gen = OPGFNGenerator(space, 2, settings, warm_start_steps=2, seed=0)  # draws 4 states at most
    known = space.decode(gen.env.to_tokens(gen.known_states(data, torch.Generator().manual_seed(0))).cpu())
    assert known[:2] == measured and len(known) == 4 and set(known) <= set(space.seeds)
    gen.warm_start_steps = 10
    known = space.decode(gen.env.to_tokens(gen.known_states(data, torch.Generator())).cpu())
    assert sorted(known) == sorted(space.seeds)


def test_a_tiny_train_seconds_stops_training_early_and_records_the_steps_done():
    space, data, reward = _sequence_task()
    gen = MOGFNGenerator(
        space, 3, SETTINGS, steps_per_round=1000, train_seconds=1e-3, warm_start_steps=1000, seed=0
    )
    metrics = gen.update(reward, data, torch.Generator().manual_seed(0))
    # the budget covers warm start and training; each runs at least one step
    assert metrics["warm_start_steps"] == len(gen.history["warm_start_loss"]) == 1
    assert metrics["steps"] == len(gen.history["loss"]) == 1
    assert gen.model.steps_done == 2 and math.isfinite(metrics["loss"])
    assert metrics["train_seconds"] < 60


def test_the_trainer_stops_at_the_steps_or_the_seconds_whichever_comes_first():
    env = SequenceEnvironment(SequenceSpace("AB", 2, 3))
    model = MOGFN(env, 2, MOGFNSettings(trajectories_per_step=8, hidden=8, layers=1, thermometer_bins=4))

    def objective(states: torch.Tensor) -> torch.Tensor:
        return (states[:, :2].float() + 1) / 3

    assert len(model.train(objective, 5, torch.Generator(), seconds=3600.0)["loss"]) == 5
    assert len(model.train(objective, 5, torch.Generator(), seconds=1e-9)["loss"]) == 1
    assert model.train(objective, 0, torch.Generator(), seconds=1e-9) == {}


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_train_seconds_that_is_not_positive_is_refused(value):
    space = SequenceSpace("AB", 2, 3)
    with pytest.raises(ValueError, match="train_seconds"):
        MOGFNGenerator(space, 2, SETTINGS, train_seconds=value)
