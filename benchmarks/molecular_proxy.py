"""The molecular proxy: fit time of the MinMax (Tanimoto) GP at 500 / 2,000 / 5,000 molecules,
and its held-out quality against BoTorch's RBF GP on one-hot SELFIES tokens.

Molecules: the NCI set shipped with RDKit (members of a 48-token organic space), topped up
to 5,000 with genetic children of them. Objectives: the molecular campaign's QED, SA and
similarity to celecoxib. Run: ``.venv/bin/python benchmarks/molecular_proxy.py``.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from paretolab.data.dataset import Dataset
from paretolab.data.molecules import MoleculeFilters, nci_seed_path, read_seed_file
from paretolab.data.spaces import MoleculeSpace, one_hot_tokens
from paretolab.models.generators.genetic import GeneticGenerator
from paretolab.models.proxies.gp import fit_gp_proxy, heldout_metrics
from paretolab.oracles.molecular import MolecularOracle

ORGANIC = frozenset({"C", "N", "O", "S", "F", "Cl", "Br"})
OBJECTIVES = [
    {"name": "qed", "property": "qed"},
    {"name": "sa", "property": "sa"},
    {"name": "similarity", "property": "similarity", "targets": ["celecoxib"]},
]


def molecules(n: int) -> tuple[MoleculeSpace, list[str], torch.Tensor]:
    space = MoleculeSpace(
        read_seed_file(nci_seed_path()).smiles,
        48,
        filters=MoleculeFilters(elements=ORGANIC, neutral=True, no_radicals=True),
    )
    found = list(dict.fromkeys(space.seeds))
    genetic = GeneticGenerator(space)
    generator = torch.Generator().manual_seed(0)
    flat = Dataset(found, torch.zeros(len(found), 1), torch.zeros(len(found), 1))  # every parent equal
    genetic.update(None, flat, generator)  # type: ignore[arg-type]  # the genetic search needs no reward
    while len(found) < n:
        children = [c for c in genetic.propose(2000, generator) if space.check(c).canonical]
        found = list(dict.fromkeys(found + children))
    found = found[:n]
    oracle = MolecularOracle(space, OBJECTIVES)
    Y = oracle(found).values * torch.tensor([1.0, -1.0, 1.0], dtype=torch.double)
    return space, found, Y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    space, found, Y = molecules(5000)
    X = space.featurize(found)
    print(f"torch threads: {args.threads}; {len(found)} molecules; {space.vocab_size} SELFIES tokens")
    print("\n| molecules | MinMax GP fit, 3 objectives (s) | with the 20% hold-out fit first (s) |")
    print("|---|---|---|")
    for n in (500, 2000, 5000):
        g = torch.Generator().manual_seed(0)
        start = time.perf_counter()
        fit_gp_proxy(X[:n], Y[:n], holdout_fraction=0.0, rng=g, kernel="minmax")
        plain = time.perf_counter() - start
        start = time.perf_counter()
        fit_gp_proxy(X[:n], Y[:n], holdout_fraction=0.2, rng=g, kernel="minmax")
        print(f"| {n:,} | {plain:.2f} | {time.perf_counter() - start:.2f} |")

    print("\n| train / test | proxy | features | Spearman | NLL | RMSE | fit (s) |")
    print("|---|---|---|---|---|---|---|")
    one_hot = one_hot_tokens(space.encode(found), space.vocab_size)
    order = torch.randperm(len(found), generator=torch.Generator().manual_seed(1))
    for n_train in (200, 400):
        train, test = order[:n_train], order[n_train : n_train + 500]
        for kernel, features, name in (("minmax", X, "Morgan counts"), ("rbf", one_hot, "one-hot SELFIES")):
            start = time.perf_counter()
            model, _ = fit_gp_proxy(
                features[train],
                Y[train],
                holdout_fraction=0.0,
                generator=torch.Generator().manual_seed(0),
                kernel=kernel,
            )
            seconds = time.perf_counter() - start
            m = heldout_metrics(model, features[test], Y[test])
            print(
                f"| {n_train} / 500 | {kernel} | {name} | {m['spearman']:.3f} | {m['nll']:.3f} | "
                f"{m['rmse']:.3f} | {seconds:.1f} |"
            )


if __name__ == "__main__":
    main()
