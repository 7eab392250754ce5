"""Sequence proxies: held-out Spearman, NLL and fit time of GP kernels on sequence tasks.

Kernels (all on the one-hot features a sequence campaign uses):
- ``rbf``: BoTorch's RBF GP on one-hot positions (the default before ``kmer``);
- ``minmax``: MinMax on one-hot positions (a Hamming-type kernel: shared positions over
  all positions), fitted exactly (:mod:`paretolab.models.proxies.spectral`);
- ``kmer-K``: MinMax on counts of words of 1 to K letters (``proxy.kernel: kmer``).

Tasks:
- ``ngram``: the shipped n-gram campaigns' oracle (AV, VC, CA counts / 8), length 32-36.
  Uniform sequences almost never hold a motif, so each motif is planted Poisson(1) times
  at random places (what a campaign's measured set looks like after a few rounds).
- ``ehrlich``: three spaced motifs of four letters over length 32 with banned transitions
  (:class:`paretolab.oracles.ehrlich.EhrlichOracle`); sequences drawn from its feasible
  chain (infeasible ones have no values to fit).

Each seed draws fresh training and test sets (test: 300 sequences). Run:
``.venv/bin/python benchmarks/sequence_proxy.py [--seeds 3] [--sizes 100 300]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch

from paretolab.data.spaces import SequenceSpace
from paretolab.models.proxies import gp
from paretolab.models.proxies.gp import fit_gp_proxy, heldout_metrics
from paretolab.oracles.ehrlich import EhrlichOracle
from paretolab.oracles.ngram import NGramOracle

AMINO = "ACDEFGHIKLMNPQRSTVWY"
KERNELS = ("rbf", "minmax", "kmer-1", "kmer-2", "kmer-3")
TEST = 300


def ngram_data(n: int, rng: torch.Generator) -> tuple[SequenceSpace, list[str], torch.Tensor]:
    space = SequenceSpace(AMINO, 32, 36)
    oracle = NGramOracle(space)
    xs = []
    for x in space.sample(n, rng):
        letters = list(x)
        for motif in oracle.motifs:
            for _ in range(int(torch.poisson(torch.ones(1), generator=rng))):
                at = int(torch.randint(0, len(letters) - 1, (1,), generator=rng))
                letters[at : at + 2] = motif
        xs.append("".join(letters))
    return space, xs, oracle(xs).values


def ehrlich_data(n: int, rng: torch.Generator) -> tuple[SequenceSpace, list[str], torch.Tensor]:
    space = SequenceSpace(AMINO, 32, 32)
    oracle = EhrlichOracle(space, num_motifs=3, motif_length=4, seed=0)
    xs = oracle.sample_feasible(n, rng)
    return space, xs, oracle(xs).values


def evaluate(kernel: str, space: SequenceSpace, xs: list[str], Y: torch.Tensor, n_train: int) -> dict:
    X = space.featurize(xs)
    name = kernel
    if kernel.startswith("kmer-"):
        gp.KMER_LENGTH = int(kernel.split("-")[1])
        name = "kmer"
    start = time.perf_counter()
    model, _ = fit_gp_proxy(
        X[:n_train],
        Y[:n_train],
        holdout_fraction=0.0,
        rng=torch.Generator().manual_seed(0),
        kernel=name,  # type: ignore[arg-type]
        vocab_size=space.vocab_size,
    )
    seconds = time.perf_counter() - start
    return heldout_metrics(model, X[n_train:], Y[n_train:]) | {"fit_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}; {args.seeds} seeds; test sets of {TEST}")
    print("| task | n train | kernel | Spearman | NLL | fit s |")
    print("|---|---|---|---|---|---|")
    for task, data in (("ngram", ngram_data), ("ehrlich", ehrlich_data)):
        for n_train in args.sizes:
            for kernel in args.kernels:
                runs = []
                for seed in range(args.seeds):
                    space, xs, Y = data(n_train + TEST, torch.Generator().manual_seed(seed))
                    runs.append(evaluate(kernel, space, xs, Y, n_train))
                mean = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
                se = {k: statistics.stdev(r[k] for r in runs) / len(runs) ** 0.5 for k in runs[0]}
                print(
                    f"| {task} | {n_train} | {kernel} | {mean['spearman']:.3f} ± {se['spearman']:.3f} | "
                    f"{mean['nll']:.3f} ± {se['nll']:.3f} | {mean['fit_s']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
