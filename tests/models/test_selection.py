"""Sampled-EHVI batch selection (models/selection.py): the estimator against moocore's exact
hypervolume, picks against brute force and qLogNEHVI on a tiny enumerable case, pending
points, determinism. Real GP fits; no mocks."""

from __future__ import annotations

import itertools

import moocore
import numpy as np
import pytest
import torch
from botorch.sampling import SobolQMCNormalSampler

from paretolab.models.acquisition import build_qlognehvi, select_batch
from paretolab.models.pool_scoring import score_here
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy
from paretolab.models.selection import (
    SampledHVISelector,
    _constant,
    expected_gains,
    hypervolume_scalarizations,
    positive_directions,
)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_the_scalarized_hypervolume_matches_moocore(m):
    g = torch.Generator().manual_seed(m)
    Y = torch.rand(40, m, generator=g, dtype=torch.double)
    Y = Y / Y.norm(dim=-1, keepdim=True)  # points on a concave front
    ref = torch.full((m,), -0.1, dtype=torch.double)
    estimate = (
        _constant(m) * hypervolume_scalarizations(Y, ref, positive_directions(512, m, 0)).amax(0).mean()
    )
    exact = moocore.hypervolume(Y.numpy(), ref=ref.numpy(), maximise=True)
    assert float(estimate) == pytest.approx(exact, rel=0.02)


def _task():
    """Two smooth, conflicting objectives on 1-D inputs; 14 measured, 10 in the pool."""
    X = torch.linspace(0, 1, 24, dtype=torch.double).unsqueeze(-1)
    Y = torch.cat([torch.sin(3 * X), torch.cos(3 * X) - 0.5 * X], dim=-1)
    measured = [*torch.arange(0, 24, 2)[:12].tolist(), 1, 23]
    pool = [i for i in range(24) if i not in measured]
    model, _ = fit_gp_proxy(
        X[measured], Y[measured], holdout_fraction=0.0, rng=torch.Generator().manual_seed(0)
    )
    return model, X, Y, measured, pool


def _expected_hv(model, X_batch, front, ref, n=1024):
    """The batch's expected hypervolume with the front, by exact HV per joint sample."""
    with torch.no_grad(), exact_gp():
        samples = SobolQMCNormalSampler(torch.Size([n]), seed=7)(model.posterior(X_batch)).double()
    return float(
        np.mean(
            [
                moocore.hypervolume(torch.cat([front, s]).numpy(), ref=ref.numpy(), maximise=True)
                for s in samples
            ]
        )
    )


def test_picks_match_brute_force_and_qlognehvi_on_a_tiny_enumerable_case():
    model, X, Y, measured, pool = _task()
    ref = Y[measured].min(0).values - 0.1
    selector = SampledHVISelector(model, Y[measured], ref, n_samples=256, seed=0)
    ours, values = selector.select(X[pool], 2)
    assert len(set(ours)) == 2 and values[0] >= values[1] >= 0
    front = Y[measured]
    scores = {
        pair: _expected_hv(model, X[[pool[i] for i in pair]], front, ref)
        for pair in itertools.combinations(range(len(pool)), 2)
    }
    best = max(scores.values())
    assert scores[tuple(sorted(ours))] >= best - 1e-3 * abs(best)  # the best pair (or a tie)
    with exact_gp():
        qlognehvi = build_qlognehvi(model, X[measured], ref, mc_samples=256, seed=0)
        theirs, _ = select_batch(qlognehvi, X[pool], 2)
    assert set(theirs) == set(ours)


def test_a_pending_candidate_lowers_the_value_of_itself_and_its_neighbour():
    model, X, Y, measured, pool = _task()
    ref = Y[measured].min(0).values - 0.1
    free = SampledHVISelector(model, Y[measured], ref, n_samples=128, seed=0)
    (first,), _ = free.select(X[pool], 1)
    candidates = torch.cat([X[pool], X[[pool[first]]] + 0.01])  # the last one: a close neighbour
    neighbour = len(pool)
    directions = positive_directions(512, 2, 0).to(torch.double)
    unit, best = _unit(free, candidates)
    before = expected_gains(best, directions, unit)
    pending = SampledHVISelector(model, Y[measured], ref, n_samples=128, seed=0, X_pending=X[[pool[first]]])
    unit, best = _unit(pending, candidates)
    after = expected_gains(best, directions, unit)
    assert after[first] < 0.05 * before[first]  # as good as measured in every sample
    assert after[neighbour] < 0.5 * before[neighbour]
    others = [i for i in range(len(pool)) if abs(pool[i] - pool[first]) > 4]
    assert (after[others] >= 0.5 * before[others]).all()  # far ones keep most of their value
    (picked,), _ = pending.select(X[pool], 1)
    assert picked != first


def _unit(selector, pool):
    """The selector's pool samples in unit scale and its running maxima after the pending
    points (as ``select`` computes them), to read the gain of every candidate."""
    Y_pool, Y_pending = selector._samples(pool)
    m, ref = Y_pool.shape[-1], selector.ref_point
    known = torch.cat([Y_pool.reshape(-1, m), Y_pending.reshape(-1, m), selector.front])
    scale = (known.amax(0) - ref).clamp_min(1e-12)
    directions = positive_directions(512, m, selector.seed).to(torch.double)
    zero = torch.zeros(m, dtype=torch.double)
    best = hypervolume_scalarizations((selector.front - ref) / scale, zero, directions).amax(0)
    best = best.expand(selector.n_samples, -1).clone()
    if Y_pending.shape[1]:
        best = torch.maximum(
            best, hypervolume_scalarizations((Y_pending - ref) / scale, zero, directions).amax(1)
        )
    return (Y_pool - ref) / scale, best


def test_the_same_seed_gives_the_same_batch_and_a_batch_is_distinct():
    model, X, Y, measured, pool = _task()
    ref = Y[measured].min(0).values - 0.1
    a = SampledHVISelector(model, Y[measured], ref, n_samples=64, seed=3).select(X[pool], 5)
    b = SampledHVISelector(model, Y[measured], ref, n_samples=64, seed=3).select(X[pool], 5)
    assert a == b and len(set(a[0])) == 5
    assert SampledHVISelector(model, Y[measured], ref, n_samples=64, seed=3).select(X[pool][:0], 5) == (
        [],
        [],
    )


def test_a_pool_larger_than_joint_pool_is_screened_to_its_best_and_batches_as_well():
    """Past ``joint_pool`` candidates the pool is screened by each one's improvement alone;
    the screened batch is as good as the batch over the whole pool, judged by exact HV."""
    g = torch.Generator().manual_seed(4)
    X = torch.rand(60, 3, generator=g, dtype=torch.double)

    def f(X):
        return torch.stack([X.sum(-1) - 2 * X[:, 0] ** 2, 1 - (X[:, 1] - X[:, 2]) ** 2 - X[:, 0]], -1)

    model, _ = fit_gp_proxy(X, f(X), holdout_fraction=0.0, rng=g)
    pool = torch.rand(600, 3, generator=g, dtype=torch.double)
    ref = torch.tensor([-1.0, -1.5], dtype=torch.double)
    front = f(X)
    whole = SampledHVISelector(model, front, ref, n_samples=64, seed=3, joint_pool=10_000)
    screened = SampledHVISelector(model, front, ref, n_samples=64, seed=3, joint_pool=80)
    kept = screened._screen(pool, 80, None, score_here)
    assert len(kept) == 80 and len(set(kept.tolist())) == 80
    picks_whole, _ = whole.select(pool, 4)
    picks, values = screened.select(pool, 4)
    assert len(set(picks)) == 4 and set(picks) <= set(kept.tolist())
    assert picks_whole[0] in kept.tolist()  # the best single candidate survives screening
    assert values == sorted(values, reverse=True)
    truth = [_expected_hv(model, pool[p], front, ref) for p in (picks, picks_whole)]
    assert truth[0] == pytest.approx(truth[1], rel=0.02)
    assert screened.select(pool, 4) == (picks, values)  # deterministic


def test_a_batch_larger_than_joint_pool_still_picks_distinct_candidates():
    model, X, Y, measured, pool = _task()
    selector = SampledHVISelector(
        model, Y[measured], torch.tensor([-1.5, -1.5], dtype=torch.double), n_samples=32, seed=0, joint_pool=3
    )
    picks, values = selector.select(X[pool[:6]], 5)  # more picks than joint_pool: screened to 5
    assert len(picks) == 5 and len(set(picks)) == 5 and all(v >= 0 for v in values)
    assert len(selector.select(X[pool[:6]], 9)[0]) == 6  # never more than the pool
