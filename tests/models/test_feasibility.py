"""The feasibility model (models/feasibility.py): failed candidates lower the acquisition of
their close neighbours under both selectors, and far candidates keep theirs. Real GP fits on
a 1-D task; no mocks."""

from __future__ import annotations

import pytest
import torch

from paretolab.models.acquisition import build_qlognehvi
from paretolab.models.feasibility import fit_feasibility, probability_feasible
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy
from paretolab.models.selection import SampledHVISelector

REF = torch.tensor([-1.5, -1.5], dtype=torch.double)


def _task():
    """Two conflicting objectives on [0, 1] (the front: x below 0.52); measured on a coarse
    grid, failed around x = 0.3."""
    X = torch.linspace(0, 1, 41, dtype=torch.double).unsqueeze(-1)
    Y = torch.cat([torch.sin(3 * X), torch.cos(3 * X) - 0.5 * X], dim=-1)
    measured = [0, 4, 8, 16, 20, 24, 28]
    failed = [10, 12, 14]  # x = 0.25, 0.3, 0.35: the oracle could not measure them
    g = torch.Generator().manual_seed(0)
    proxy, _ = fit_gp_proxy(X[measured], Y[measured], holdout_fraction=0.0, rng=g)
    feasibility, metrics = fit_feasibility(X[measured], X[failed], kernel="rbf", vocab_size=None, rng=g)
    assert metrics["n_failed"] == 3
    near, far = [11, 13], [2, 6, 18]  # unmeasured neighbours of the failures; far from them
    return proxy, feasibility, X, Y[measured], measured, near, far


def test_nothing_failed_means_no_feasibility_model():
    X = torch.rand(5, 1, dtype=torch.double)
    model, metrics = fit_feasibility(X, X[:0], kernel="rbf", vocab_size=None, rng=torch.Generator())
    assert model is None and metrics == {"n_failed": 0.0}


def test_failures_make_their_neighbourhood_unlikely_to_be_feasible():
    _, feasibility, X, _, measured, near, far = _task()
    p = probability_feasible(feasibility, X)
    assert p[near].max() < 0.3
    assert p[far].min() > 0.7 and p[measured].min() > 0.7


def test_failed_candidates_lower_the_sampled_hvi_of_their_close_neighbours():
    proxy, feasibility, X, Y, _, near, far = _task()
    plain = SampledHVISelector(proxy, Y, REF, n_samples=256, seed=1).values(X)
    shaped = SampledHVISelector(proxy, Y, REF, n_samples=256, seed=1, feasibility=feasibility).values(X)
    assert plain[near].min() > 0  # without the model the neighbours look worth measuring
    assert (shaped[near] < 0.3 * plain[near]).all()
    kept = shaped[far] / plain[far].clamp_min(1e-12)
    assert (kept[plain[far] > 1e-6] > 0.6).all()


def test_failed_candidates_lower_the_qlognehvi_of_their_close_neighbours():
    proxy, feasibility, X, Y, measured, near, far = _task()
    with exact_gp():
        plain = build_qlognehvi(proxy, X[measured], REF, mc_samples=128, seed=0)
        shaped = build_qlognehvi(proxy, X[measured], REF, mc_samples=128, seed=0, feasibility=feasibility)
        # log-EHVI of each candidate alone
        lp, ls = plain(X[:, None, :]).detach(), shaped(X[:, None, :]).detach()
    assert (ls[near] < lp[near] - 1.0).all()  # at least e times lower
    assert (ls[far] > lp[far] - 0.5).all()


def test_a_feasibility_model_needs_measured_candidates():
    model, metrics = fit_feasibility(
        torch.empty(0, 1, dtype=torch.double),
        torch.rand(3, 1, dtype=torch.double),
        kernel="rbf",
        vocab_size=None,
        rng=torch.Generator(),
    )
    assert model is None and metrics["n_failed"] == pytest.approx(3)


def test_the_generators_reward_is_the_expected_score_when_a_failure_scores_the_floor():
    from paretolab.data.spaces import GridSpace
    from paretolab.models.rewards import ProxyReward, failure_floor

    proxy, feasibility, X, Y, _, near, far = _task()
    space = GridSpace(1, 41)  # featurize is not used: scores take features
    floor = failure_floor(Y)
    assert torch.allclose(floor, Y.min(0).values - 0.1 * (Y.max(0).values - Y.min(0).values))
    plain = ProxyReward(proxy, space).scores(X)
    shaped = ProxyReward(proxy, space, feasibility=feasibility, floor=floor).with_kappa(0.0).scores(X)
    p = probability_feasible(feasibility, X)[:, None]
    assert torch.allclose(shaped, floor + p * (plain - floor))
    assert ((shaped - floor)[near] < 0.3 * (plain - floor)[near]).all()
    assert ((shaped - floor)[far] > 0.7 * (plain - floor)[far]).all()
