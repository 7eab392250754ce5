"""The bounded proxy: past ``proxy.max_points`` the GP is fitted on the best half of the
measured points and a uniform sample of the rest (real BoTorch fits; the flow run is in
``tests/flows/test_bounded_proxy.py``)."""

from __future__ import annotations

import pytest
import torch

from paretolab.data.pareto import best_first
from paretolab.models.feasibility import LatentFeasibility, fit_feasibility
from paretolab.models.proxies.gp import (
    AUTO_MAX_POINTS,
    ProxyConfig,
    fit_gp_proxy,
    fitted_rows,
    training_inputs,
)
from paretolab.models.proxies.subset import bounded_subset


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.rand(n, 2, generator=_gen(seed), dtype=torch.double)
    Y = torch.stack([torch.sin(5 * X[:, 0]) + X[:, 1], torch.cos(4 * X[:, 1]) - X[:, 0]], -1)
    return X, Y


def test_a_small_dataset_is_kept_whole():
    assert bounded_subset(torch.arange(7.0), 7, _gen(0)).tolist() == list(range(7))


def test_the_subset_holds_the_most_important_half_and_a_uniform_sample_of_the_rest():
    importance = torch.arange(1000.0)  # row i has importance i
    picks = [bounded_subset(importance, 100, _gen(seed)) for seed in range(20)]
    for rows in picks:
        assert len(rows) == 100 and len(set(rows.tolist())) == 100
        assert rows.tolist() == sorted(rows.tolist())
        assert set(range(950, 1000)) <= set(rows.tolist())  # the 50 most important, always
    assert torch.equal(picks[0], bounded_subset(importance, 100, _gen(0)))  # seeded
    others = torch.cat([rows[rows < 950] for rows in picks]).double()
    assert len(set(others.tolist())) > 500  # the rest is drawn anew each time...
    assert others.mean() == pytest.approx(475, abs=40)  # ...uniformly over rows 0..949
    with pytest.raises(ValueError, match="at least 2"):
        bounded_subset(importance, 1, _gen(0))


def test_ties_in_importance_are_broken_at_random():
    importance = torch.cat([torch.ones(300), torch.zeros(700)])  # 300 equally important rows
    first = [set(bounded_subset(importance, 100, _gen(s)).tolist()) & set(range(300)) for s in range(2)]
    assert first[0] != first[1] and all(len(f) >= 50 for f in first)


def test_past_max_points_the_proxy_fits_the_best_half_and_reports_held_out_quality():
    X, Y = _smooth(300, 0)
    model, metrics = fit_gp_proxy(X, Y, holdout_fraction=0.2, rng=_gen(1), max_points=60)
    rows = fitted_rows(model)
    assert metrics["n_train"] == 300 and metrics["n_fitted"] == 60 and len(rows) == 60
    assert set(best_first(Y)[:30].tolist()) <= set(rows.tolist())
    assert torch.equal(training_inputs(model), X[rows])
    assert metrics["spearman"] > 0.9 and metrics["rmse"] < 0.2  # held out from all 300 rows
    X_new, Y_new = _smooth(200, 9)
    with torch.no_grad():
        mean = model.posterior(X_new).mean
    assert ((mean - Y_new) ** 2).mean().sqrt() < 0.2
    # below the bound, and without one, all rows are fitted as before
    whole, metrics = fit_gp_proxy(X[:50], Y[:50], holdout_fraction=0.2, rng=_gen(1), max_points=60)
    assert fitted_rows(whole) is None and "n_fitted" not in metrics
    assert torch.equal(training_inputs(whole), X[:50])


def test_the_latent_feasibility_model_keeps_failed_candidates_first():
    X, _ = _smooth(400, 2)
    failed = X[:, 0] > 0.85  # about 60 failures
    model, metrics = fit_feasibility(
        X[~failed], X[failed], words=None, kernel="rbf", vocab_size=None, rng=_gen(0), max_points=80
    )
    assert metrics["n_failed"] == int(failed.sum())
    assert isinstance(model, LatentFeasibility)
    fitted = training_inputs(model.model)
    assert len(fitted) == 80
    n_failed_kept = int((fitted[:, 0] > 0.85).sum())
    assert n_failed_kept >= 40  # half of the subset from the rarer failed label (the rest: uniform)
    p = model.probability(torch.tensor([[0.95, 0.5], [0.2, 0.5]], dtype=torch.double))
    assert p[0] < 0.5 < p[1]


def test_max_points_defaults_by_kernel_and_rejects_nonsense():
    assert ProxyConfig().max_points_for("rbf") == AUTO_MAX_POINTS["rbf"] == 500
    assert ProxyConfig().max_points_for("kmer") == 2000
    assert ProxyConfig(max_points=64).max_points_for("minmax") == 64
    with pytest.raises(ValueError, match="at least 2"):
        ProxyConfig(max_points=1)
