"""The feasibility models (models/feasibility.py): failed candidates lower the acquisition of
their close neighbours under both selectors, and far candidates keep theirs; on sequences
the word model learns banned letter pairs of the Ehrlich task. Real GP fits; no mocks."""

from __future__ import annotations

import pytest
import torch

from paretolab.models.acquisition import build_qlognehvi
from paretolab.models.feasibility import WordFeasibility, WordsOf, fit_feasibility
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
    feasibility, metrics = fit_feasibility(
        X[measured], X[failed], words=None, kernel="rbf", vocab_size=None, rng=g
    )
    assert metrics["n_failed"] == 3
    near, far = [11, 13], [2, 6, 18]  # unmeasured neighbours of the failures; far from them
    return proxy, feasibility, X, Y[measured], measured, near, far


def test_nothing_failed_means_no_feasibility_model():
    X = torch.rand(5, 1, dtype=torch.double)
    model, metrics = fit_feasibility(
        X, X[:0], words=None, kernel="rbf", vocab_size=None, rng=torch.Generator()
    )
    assert model is None and metrics == {"n_failed": 0.0}


def test_failures_make_their_neighbourhood_unlikely_to_be_feasible():
    _, feasibility, X, _, measured, near, far = _task()
    p = feasibility.probability(X)
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
    proxy, feasibility, X, _Y, measured, near, far = _task()
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
        words=None,
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
    p = feasibility.probability(X)[:, None]
    assert torch.allclose(shaped, floor + p * (plain - floor))
    assert ((shaped - floor)[near] < 0.3 * (plain - floor)[near]).all()
    assert ((shaped - floor)[far] > 0.7 * (plain - floor)[far]).all()


def _ehrlich_history(n_children=300):
    """Feasible seeds of the Ehrlich task and their one-point mutants, measured."""
    from paretolab.data.spaces import SequenceSpace
    from paretolab.oracles.ehrlich import EhrlichOracle

    space = SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 32, 32)
    oracle = EhrlichOracle(space, num_motifs=2, motif_length=4, seed=0)
    g = torch.Generator().manual_seed(0)
    seeds = oracle.sample_feasible(64, g)
    children = []
    for i in range(n_children):
        x = list(seeds[i % len(seeds)])
        x[int(torch.randint(0, 32, (1,), generator=g))] = space.alphabet[
            int(torch.randint(0, 20, (1,), generator=g))
        ]
        children.append("".join(x))
    xs = list(dict.fromkeys(seeds + children))
    result = oracle(xs)
    return space, oracle, xs, result


def test_the_word_model_learns_how_often_unknown_letter_pairs_fail_and_ranks_new_candidates():
    from sklearn.metrics import roc_auc_score

    space, _oracle, xs, result = _ehrlich_history()
    ok = result.valid
    X = space.featurize(xs)
    train = torch.arange(len(xs)) < 200
    model, metrics = fit_feasibility(
        X[train & ok], X[train & ~ok], words=WordsOf(20), kernel="kmer", vocab_size=20, rng=torch.Generator()
    )
    assert isinstance(model, WordFeasibility) and 0 < metrics["share_of_bad_words"] < 1
    test = ~train
    auc = roc_auc_score(ok[test].numpy(), model.probability(X[test]).numpy())
    assert auc > 0.9
    # a candidate holding only pairs seen in measured candidates is certainly feasible
    assert model.probability(X[train & ok]).eq(1).all()


def test_failed_sequences_lower_the_acquisition_of_sequences_sharing_their_unknown_pairs():
    space, _oracle, xs, result = _ehrlich_history()
    ok = result.valid
    X, Y = space.featurize(xs), result.values
    measured = torch.arange(len(xs)) < 200
    g = torch.Generator().manual_seed(0)
    proxy, _ = fit_gp_proxy(
        X[measured & ok], Y[measured & ok], holdout_fraction=0.0, rng=g, kernel="kmer", vocab_size=20
    )
    feasibility, _ = fit_feasibility(
        X[measured & ok], X[measured & ~ok], words=WordsOf(20), kernel="kmer", vocab_size=20, rng=g
    )
    pool = ~measured
    ref = torch.zeros(2, dtype=torch.double)
    plain = SampledHVISelector(proxy, Y[measured & ok], ref, n_samples=128, seed=0).values(X[pool])
    shaped = SampledHVISelector(proxy, Y[measured & ok], ref, n_samples=128, seed=0, feasibility=feasibility)
    shaped = shaped.values(X[pool])
    p = feasibility.probability(X[pool])
    unlikely, likely = p < 0.5, p == 1
    assert unlikely.any() and likely.any()
    assert shaped[unlikely].sum() < 0.6 * plain[unlikely].sum()
    assert float(shaped[likely].sum()) == pytest.approx(float(plain[likely].sum()), rel=0.05)
    assert not ok[pool][likely].logical_not().any()  # what it is sure of is right


def test_the_space_decides_the_words():
    from paretolab.data.spaces import GridSpace, SequenceSpace
    from paretolab.models.feasibility import words_of

    words = words_of(SequenceSpace("AB", 3, 3))
    X = SequenceSpace("AB", 3, 3).featurize(["ABA", "BBB"])
    assert words(X).tolist() == [[False, True, True, False], [False, False, False, True]]  # AA AB BA BB
    assert words_of(GridSpace(2, 4)) is None


def test_word_model_draws_fail_candidates_that_share_an_unknown_pair_together():
    from paretolab.data.spaces import SequenceSpace

    space = SequenceSpace("ABCD", 4, 4)
    words = WordsOf(4)
    measured = space.featurize(["AAAA", "BBBB", "ABAB"])
    failed = space.featurize(["AACC", "BBDD", "CCDA"])
    model = WordFeasibility(words, words(measured), words(failed))
    assert 0 < model.rho < 1
    X = space.featurize(["AACD", "BACD", "ABAB", "DDDD"])  # share the unknown pair CD; known; own
    draws = model.sample(X, 4000, seed=0)
    assert torch.equal(draws[:, 0], draws[:, 1])
    assert draws[:, 2].all()
    assert float(draws[:, 0].double().mean()) == pytest.approx(float(model.probability(X)[0]), abs=0.03)
