"""The MinMax (Tanimoto) GP proxy: kernel values, exact fast fitting, and its edge over RBF
on one-hot SELFIES for the molecular task (held-out Spearman and NLL), all with real
RDKit fingerprints and real BoTorch fits."""

from __future__ import annotations

import pytest
import torch
from botorch.fit import fit_gpytorch_mll
from gpytorch.mlls import ExactMarginalLogLikelihood
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from paretolab.data.molecules import MoleculeFilters, MorganFingerprints, nci_seed_path, read_seed_file
from paretolab.data.spaces import MoleculeSpace, one_hot_tokens
from paretolab.models.proxies.gp import build_gp, exact_gp, fit_gp_proxy, heldout_metrics
from paretolab.models.proxies.kernels import MinMaxKernel, minmax_similarity
from paretolab.models.proxies.spectral import SpectralNegativeMLL, fit_scaled_fixed_kernel
from paretolab.oracles.molecular import MolecularOracle


def _brute_force(a, b):
    low = torch.minimum(a.unsqueeze(-2), b.unsqueeze(-3)).sum(-1)
    high = torch.maximum(a.unsqueeze(-2), b.unsqueeze(-3)).sum(-1)
    return torch.where(high > 0, low / high.clamp_min(1), torch.ones_like(high))


def test_minmax_similarity_equals_its_definition_with_batches_and_zeros():
    g = torch.Generator().manual_seed(0)
    a = torch.poisson(torch.full((3, 7, 40), 0.4), generator=g).double()
    b = torch.poisson(torch.full((3, 5, 40), 0.4), generator=g).double()
    a[0, 0] = 0
    b[0, 1] = 0
    b[1, 2] = 0
    expected = _brute_force(a, b)
    assert torch.allclose(minmax_similarity(a, b), expected, atol=1e-12)
    shared = b[0].expand(3, 5, 40)  # GPyTorch expands the training inputs over a batch
    assert torch.allclose(minmax_similarity(a, shared), _brute_force(a, shared), atol=1e-12)
    assert torch.allclose(minmax_similarity(a, b[0]), _brute_force(a, b[0].expand(3, 5, 40)), atol=1e-12)
    assert torch.allclose(minmax_similarity(a, a, diag=True), torch.ones(3, 7, dtype=torch.double))
    assert minmax_similarity(a[0, :1], a[0, :1]).item() == 1.0  # two zero vectors: identical
    for bad in (a + 0.5, -a, a * float("inf"), a + 2**17):
        with pytest.raises(ValueError, match="integer counts in"):
            minmax_similarity(bad, b)
    with pytest.raises(ValueError, match="integer counts in"):
        minmax_similarity(a + 0.5, a, diag=True)


def test_distinct_rows_are_found_exactly_and_the_cache_hands_out_copies():
    from paretolab.models.proxies.kernels import _cache, _unique_rows

    one_hot = torch.zeros(4, 9, dtype=torch.double)
    one_hot[[0, 2], 1] = 1
    one_hot[[1, 3], 4] = 1
    rows, index = _unique_rows(one_hot)
    assert len(rows) == 2 and torch.equal(rows[index], one_hot) and index[0] != index[1]

    X = torch.poisson(torch.full((600, 30), 0.5), generator=torch.Generator().manual_seed(2)).double()
    first = _cache(X, X)
    first.fill_(7.0)  # a caller writing into its matrix must not change the cache
    assert torch.allclose(_cache(X, X), _brute_force(X, X))
    X[0, 0] += 1  # nor may the cache miss an in-place change of the inputs
    assert torch.allclose(_cache(X, X), _brute_force(X, X))


def test_on_bits_it_is_rdkits_tanimoto():
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CC(=O)Nc1ccc(O)cc1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "c1ccccc1"]
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    X = torch.from_numpy(MorganFingerprints(2, 2048, counts=False)(smiles)).double()
    K = MinMaxKernel()(X).to_dense()
    expected = torch.tensor([DataStructs.BulkTanimotoSimilarity(f, fps) for f in fps], dtype=torch.double)
    assert torch.allclose(K, expected, atol=1e-12)


@pytest.fixture(scope="module")
def task():
    """Molecules of the NCI seed set with the molecular campaign's three objectives."""
    seeds = read_seed_file(nci_seed_path()).smiles[:1500]
    space = MoleculeSpace(
        seeds,
        48,
        filters=MoleculeFilters(
            elements=frozenset("C N O S F Cl Br".split()), neutral=True, no_radicals=True
        ),
    )
    oracle = MolecularOracle(
        space,
        [
            {"name": "qed", "property": "qed"},
            {"name": "sa", "property": "sa"},
            {"name": "similarity", "property": "similarity", "targets": ["celecoxib"]},
        ],
    )
    molecules = list(space.seeds)[:700]
    Y = oracle(molecules).values * torch.tensor([1.0, -1.0, 1.0], dtype=torch.double)
    return space, molecules, Y


def test_the_fingerprint_kernel_matrix_is_positive_semidefinite(task):
    space, molecules, _ = task
    K = MinMaxKernel()(space.featurize(molecules[:300])).to_dense()
    assert torch.linalg.eigvalsh(K).min() > -1e-8


def test_spectral_fit_reaches_gpytorchs_optimum_with_the_same_likelihood(task):
    space, molecules, Y = task
    X, y = space.featurize(molecules[:150]), Y[:150, :1]
    fast, reference = build_gp(X, y, "minmax"), build_gp(X, y, "minmax")
    with exact_gp():
        fit_scaled_fixed_kernel(fast)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(reference.models[0].likelihood, reference.models[0]))
    values = []
    for model in (fast, reference):
        gp = model.models[0].train()
        with exact_gp():
            exact = ExactMarginalLogLikelihood(gp.likelihood, gp)(gp(*gp.train_inputs), gp.train_targets)
        eigenvalues, eigenvectors = torch.linalg.eigh(gp.covar_module.base_kernel(X).to_dense())
        spectral = -SpectralNegativeMLL(gp, eigenvalues, eigenvectors)()
        assert spectral.item() == pytest.approx(exact.item(), abs=1e-8)
        values.append(exact.item())
    assert values[0] == pytest.approx(values[1], abs=1e-5)
    a, b = fast.models[0], reference.models[0]
    assert a.covar_module.outputscale.item() == pytest.approx(b.covar_module.outputscale.item(), rel=1e-2)
    assert a.likelihood.noise.item() == pytest.approx(b.likelihood.noise.item(), rel=1e-2)


@pytest.mark.slow  # the RBF baseline fits 1,152 ARD lengthscales per objective: about 60 s
def test_minmax_beats_rbf_on_one_hot_selfies_on_held_out_molecules(task):
    space, molecules, Y = task
    train, test = slice(0, 150), slice(150, 350)
    fingerprints = space.featurize(molecules)
    one_hot = one_hot_tokens(space.encode(molecules), space.vocab_size)
    g = torch.Generator().manual_seed(0)
    tanimoto, _ = fit_gp_proxy(fingerprints[train], Y[train], holdout_fraction=0.0, rng=g, kernel="minmax")
    rbf, _ = fit_gp_proxy(one_hot[train], Y[train], holdout_fraction=0.0, rng=g, kernel="rbf")
    ours = heldout_metrics(tanimoto, fingerprints[test], Y[test])
    theirs = heldout_metrics(rbf, one_hot[test], Y[test])
    assert ours["spearman"] > theirs["spearman"] + 0.1
    assert ours["nll"] < theirs["nll"]
    assert ours["spearman"] > 0.5
