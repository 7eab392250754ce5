"""Batch selection time: sampled EHVI (models/selection.py) beside BoTorch's qLogNEHVI.

The case of the sequence-campaign issue: three objectives (n-gram motif counts; reference
point one occurrence below none) over sequences of length 32 and 20 letters. ``--measured``
candidates are measured (random sequences, plus mutants of the best so the front is not
trivial) and the pool holds ``--pool`` unmeasured sequences; the batch is 16. One proxy is
fitted (``--kernel``) and both selectors pick from the same pool. Printed per seed: the
time of each (build + select) and the expected hypervolume improvement of each batch
(512 joint posterior samples, moocore's exact hypervolume).

    .venv/bin/python benchmarks/selection_speed.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import moocore
import numpy as np
import torch
from botorch.sampling import SobolQMCNormalSampler

from paretolab.data.pareto import pareto_mask
from paretolab.data.spaces import SequenceSpace
from paretolab.models.acquisition import build_qlognehvi, select_batch
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy
from paretolab.models.selection import SampledHVISelector
from paretolab.oracles.ngram import NGramOracle

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


def _mutants(space: SequenceSpace, parents: list[str], n: int, rng: torch.Generator) -> list[str]:
    out = []
    for i in range(n):
        s = list(parents[i % len(parents)])
        for j in torch.randint(0, len(s), (3,), generator=rng).tolist():
            s[j] = ALPHABET[int(torch.randint(0, len(ALPHABET), (1,), generator=rng))]
        out.append("".join(s))
    return out


def _expected_hvi(model, X_batch, front, ref, n=512) -> float:
    with torch.no_grad(), exact_gp():
        samples = SobolQMCNormalSampler(torch.Size([n]), seed=12345)(model.posterior(X_batch)).double()
    base = moocore.hypervolume(front.numpy(), ref=ref.numpy(), maximise=True)
    values = [
        moocore.hypervolume(torch.cat([front, s]).numpy(), ref=ref.numpy(), maximise=True) for s in samples
    ]
    return float(np.mean(values) - base)


def run(seed: int, measured: int, pool: int, kernel: str, skip_qlognehvi: bool) -> dict[str, float]:
    rng = torch.Generator().manual_seed(seed)
    space = SequenceSpace(ALPHABET, 32, 32)
    oracle = NGramOracle(space, motifs=("AV", "VC", "CA"), max_score=4.0)
    xs = space.sample(measured // 2, rng)
    Y = oracle(xs).values
    top = [xs[i] for i in Y.sum(-1).argsort(descending=True)[:20].tolist()]
    xs += _mutants(space, top, measured - len(xs), rng)
    xs = list(dict.fromkeys(xs))
    Y = oracle(xs).values.double()
    X = space.featurize(xs)
    candidates = [
        c for c in dict.fromkeys(space.sample(pool, rng) + _mutants(space, top, pool, rng)) if c not in xs
    ]
    X_pool = space.featurize(candidates[:pool])
    ref = torch.tensor(oracle.ref_point, dtype=torch.double)  # one occurrence below none
    row: dict[str, float] = {"seed": seed, "measured": len(xs), "pool": len(X_pool)}
    start = time.perf_counter()
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=rng, kernel=kernel, vocab_size=space.vocab_size)
    row["fit_s"] = time.perf_counter() - start
    front = Y[pareto_mask(Y)]
    start = time.perf_counter()
    selector = SampledHVISelector(model, Y, ref, n_samples=128, seed=seed)
    ours, _ = selector.select(X_pool, 16)
    row["sampled_hvi_s"] = time.perf_counter() - start
    row["sampled_hvi_ehvi"] = _expected_hvi(model, X_pool[ours], front, ref)
    if not skip_qlognehvi:
        start = time.perf_counter()
        with exact_gp():
            acqf = build_qlognehvi(model, X, ref, mc_samples=128, seed=seed)
            theirs, _ = select_batch(acqf, X_pool, 16)
        row["qlognehvi_s"] = time.perf_counter() - start
        row["qlognehvi_ehvi"] = _expected_hvi(model, X_pool[theirs], front, ref)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--measured", type=int, default=500)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--kernel", default="kmer", choices=["kmer", "minmax", "rbf"])
    parser.add_argument("--skip-qlognehvi", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    for seed in args.seeds:
        row = run(seed, args.measured, args.pool, args.kernel, args.skip_qlognehvi)
        print(
            "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            flush=True,
        )


if __name__ == "__main__":
    main()
