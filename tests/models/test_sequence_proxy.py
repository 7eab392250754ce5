"""The sequence proxy: MinMax on k-mer counts of one-hot sequences, against one-hot RBF on
held-out sequences of the n-gram task (real BoTorch fits)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from paretolab.data.spaces import SequenceSpace
from paretolab.models.proxies.gp import fit_gp_proxy, heldout_metrics
from paretolab.models.proxies.kernels import MinMaxKernel, kmer_counts, minmax_similarity
from paretolab.oracles.ngram import NGramOracle


def _words(x: str, k: int) -> Counter:
    return Counter(x[i : i + j] for j in range(1, k + 1) for i in range(len(x) - j + 1))


def test_kmer_counts_count_every_word_of_one_to_k_letters_wherever_it_occurs():
    space = SequenceSpace("ABC", 1, 7)
    xs = ["ABCAB", "C", "AAAAAAA", "BCB"]
    counts = kmer_counts(space.featurize(xs), 3, 3)
    words = ["A", "B", "C"]
    for j in (2, 3):
        words += [w + c for w in words[-(3 ** (j - 1)) :] for c in "ABC"]
    for x, row in zip(xs, counts, strict=True):
        assert {w: int(c) for w, c in zip(words, row.tolist(), strict=True) if c} == dict(_words(x, 3))


def test_the_kmer_kernel_is_minmax_on_the_counts_in_every_shape():
    space = SequenceSpace("ABCD", 3, 9)
    rng = torch.Generator().manual_seed(0)
    X1, X2 = space.featurize(space.sample(5, rng)), space.featurize(space.sample(4, rng))
    kernel = MinMaxKernel(kmers=(4, 2))
    expected = minmax_similarity(kmer_counts(X1, 4, 2), kmer_counts(X2, 4, 2))
    assert torch.allclose(kernel(X1, X2).to_dense(), expected)
    batched = kernel(X1.expand(3, -1, -1), X2).to_dense()
    assert batched.shape == (3, 5, 4) and torch.allclose(batched, expected.expand(3, -1, -1))
    assert torch.allclose(kernel(X1, X1, diag=True), torch.ones(5, dtype=torch.double))


def test_the_kmer_proxy_beats_one_hot_rbf_on_held_out_ngram_sequences():
    space = SequenceSpace("ACDEVW", 16, 16)
    oracle = NGramOracle(space, motifs=["AV", "VC", "CA"], max_score=4)
    xs = list(dict.fromkeys(space.sample(400, torch.Generator().manual_seed(1))))[:260]
    Y = oracle(xs).values
    X = space.featurize(xs)
    train, test = slice(0, 60), slice(60, 260)
    g = torch.Generator().manual_seed(0)
    kmer, _ = fit_gp_proxy(X[train], Y[train], holdout_fraction=0.0, rng=g, kernel="kmer", vocab_size=6)
    rbf, _ = fit_gp_proxy(X[train], Y[train], holdout_fraction=0.0, rng=g, kernel="rbf")
    ours, theirs = heldout_metrics(kmer, X[test], Y[test]), heldout_metrics(rbf, X[test], Y[test])
    assert ours["spearman"] > theirs["spearman"] + 0.1
    assert ours["nll"] < theirs["nll"]
    assert ours["spearman"] > 0.6


def test_the_kmer_kernel_needs_the_alphabet_size():
    X = SequenceSpace("AB", 2, 2).featurize(["AB", "BA"])
    with pytest.raises(ValueError, match="vocab_size"):
        fit_gp_proxy(
            X,
            torch.rand(2, 1, dtype=torch.double),
            holdout_fraction=0.0,
            rng=torch.Generator(),
            kernel="kmer",
        )


def test_the_spectral_fit_with_known_noise_matches_gpytorchs_exact_likelihood():
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from paretolab.models.proxies.gp import build_gp, exact_gp
    from paretolab.models.proxies.spectral import SpectralNegativeMLL, fit_scaled_fixed_kernel

    space = SequenceSpace("ACDEVW", 16, 16)
    xs = list(dict.fromkeys(space.sample(120, torch.Generator().manual_seed(2))))[:80]
    X = space.featurize(xs)
    y = NGramOracle(space, motifs=["AV"], max_score=4)(xs).values
    Yvar = torch.linspace(0.001, 0.02, len(xs), dtype=torch.double)[:, None]  # known, unequal noise
    fast, reference = build_gp(X, y, "kmer", 6, Yvar), build_gp(X, y, "kmer", 6, Yvar)
    with exact_gp():
        fit_scaled_fixed_kernel(fast)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(reference.models[0].likelihood, reference.models[0]))
    values = []
    for model in (fast, reference):
        gp = model.models[0].train()
        with exact_gp():
            exact = ExactMarginalLogLikelihood(gp.likelihood, gp)(gp(*gp.train_inputs), gp.train_targets)
            base = gp.covar_module.base_kernel(X).to_dense()
        w = gp.likelihood.noise.detach().rsqrt()
        eigenvalues, eigenvectors = torch.linalg.eigh(w[:, None] * base * w[None, :])
        spectral = -SpectralNegativeMLL(gp, eigenvalues, eigenvectors, w)()
        assert spectral.item() == pytest.approx(exact.item(), abs=1e-8)
        values.append(exact.item())
    assert values[0] == pytest.approx(values[1], abs=1e-5)
