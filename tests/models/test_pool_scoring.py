"""Pool scoring in chunks: the picks and their values do not depend on how the pool is
cut, nor on who scores the chunks, and the greedy loop is BoTorch's."""

from __future__ import annotations

import pickle

import pytest
import torch
from botorch.optim import optimize_acqf_discrete

from paretolab.data.objectives import to_max_space
from paretolab.data.spaces import GridSpace
from paretolab.models.acquisition import build_qlognehvi, select_batch
from paretolab.models.pool_scoring import chunk_bounds, score_here
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy
from paretolab.models.selection import SampledHVISelector
from paretolab.oracles.synthetic import BraninCurrinOracle


def _task(n_measured=24, n_pool=700, pending=2):
    space = GridSpace(2, 32)
    oracle = BraninCurrinOracle(space)
    xs = space.sample(n_measured + pending, torch.Generator().manual_seed(0))
    X = space.featurize(xs)
    Y = to_max_space(oracle(xs).values, oracle.objectives)
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=torch.Generator().manual_seed(0))
    ref = to_max_space(torch.tensor(oracle.ref_point, dtype=torch.double), oracle.objectives)
    pool = space.featurize(space.sample(n_pool, torch.Generator().manual_seed(1)))
    return model, X[:n_measured], Y[:n_measured], X[n_measured:], ref, pool


def _selectors(model, X, Y, X_pending, ref):
    return {
        "qlognehvi": lambda: build_qlognehvi(model, X, ref, mc_samples=32, seed=3, X_pending=X_pending),
        "sampled_hvi": lambda: SampledHVISelector(model, Y, ref, n_samples=64, seed=3, X_pending=X_pending),
    }


class _ShippingScorer:
    """Scores each chunk on a copy that went through pickle, as a Dask worker gets it."""

    def __init__(self) -> None:
        self.chunks = 0

    def __call__(self, fn, jobs):
        self.chunks += len(jobs)
        return [pickle.loads(pickle.dumps(fn))(*pickle.loads(pickle.dumps(job))) for job in jobs]


@pytest.mark.parametrize("kind", ["qlognehvi", "sampled_hvi"])
def test_picks_are_the_same_however_the_pool_is_chunked_and_wherever_chunks_run(kind):
    model, X, Y, X_pending, ref, pool = _task()
    make = _selectors(model, X, Y, X_pending, ref)[kind]
    whole = select_batch(make(), pool, 5)
    shipper = _ShippingScorer()
    with exact_gp():
        chunked = select_batch(make(), pool, 5, chunk=128, score=shipper)
    assert chunked[0] == whole[0]
    assert chunked[1] == pytest.approx(whole[1], rel=1e-9, abs=1e-12)
    # qLogNEHVI scores the whole pool for each pick; the sampled selector's first pass only
    assert shipper.chunks == (5 if kind == "qlognehvi" else 1) * len(chunk_bounds(len(pool), 128))


@pytest.mark.parametrize("pending", [True, False])
def test_the_greedy_loop_is_botorchs_optimize_acqf_discrete(pending):
    model, X, _Y, X_pending, ref, pool = _task(n_pool=300)
    X_pending = X_pending if pending else None
    ours = build_qlognehvi(model, X, ref, mc_samples=32, seed=3, X_pending=X_pending)
    indices, values = select_batch(ours, pool, 4)
    theirs = build_qlognehvi(model, X, ref, mc_samples=32, seed=3, X_pending=X_pending)
    with exact_gp():
        picked, their_values = optimize_acqf_discrete(theirs, q=4, choices=pool, unique=True)
    assert torch.equal(pool[indices], picked)
    assert values == pytest.approx(their_values.tolist(), rel=1e-9)
    # the pending points given are restored after the batch
    assert ours.X_pending is None if X_pending is None else torch.equal(ours.X_pending, X_pending)


def test_chunk_bounds_cover_every_row_once():
    assert chunk_bounds(0, 4) == []
    assert chunk_bounds(10, None) == [(0, 10)]
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="at least one row"):
        chunk_bounds(3, 0)
    assert score_here(lambda a, b: a + b, [(1, 2), (3, 4)]) == [3, 7]
