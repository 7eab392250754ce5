"""How a round's cost grows with the campaign: 1k, 10k and 100k measured candidates,
pools of 1k and 10k; and what the bounded proxy (``proxy.max_points``) costs in quality.

Round time by step: a campaign on the DTLZ2 task (4-D grid of 32 levels, 3 objectives,
the shipped ``campaigns/dtlz2.yaml`` space and oracle) is told ``n`` measured candidates
(distinct random grid points with their DTLZ2 values), then asked for one batch of 4 with
random and genetic proposals of ``pool / 2`` each (``Campaign.ask``, the round's real steps;
per-step seconds from the round's recorded ``time/*`` metrics). ``paretolab status`` is then
run on the campaign as a user would (a fresh process, import included).

Proxy quality: the exact GP on all ``n`` training points beside the bounded proxy
(``max_points`` of them: the best half by Pareto rank, a uniform sample of the rest), both
judged on the same 1,000 held-out points: RMSE, Gaussian NLL and Spearman (mean over
objectives), and on the held-out points of the best Pareto layers (top 10 %), where the
acquisition looks. DTLZ2 on the grid (RBF) and the n-gram sequences (k-mer MinMax).

    .venv/bin/python benchmarks/round_scale.py            # both parts (about 30 minutes)
    .venv/bin/python benchmarks/round_scale.py --part rounds --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

import paretolab as pl
from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import best_first
from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup
from paretolab.models.proxies.gp import fit_gp_proxy, heldout_metrics
from paretolab.oracles.synthetic import DTLZ2Oracle

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("load_dataset", "fit_proxy", "build_acquisition", "update_generator", "propose", "select_batch")


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _grid_points(space: GridSpace, n: int, seed: int) -> list[str]:
    """``n`` distinct grid points, drawn uniformly."""
    g = torch.Generator().manual_seed(seed)
    total = space.levels**space.dims
    flat = torch.randperm(total, generator=g)[:n]
    digits = torch.stack([(flat // space.levels**k) % space.levels for k in range(space.dims)], -1)
    return [",".join(str(int(v)) for v in row) for row in digits]


def rounds(sizes: list[int], pools: list[int], acquisition: str) -> list[dict]:
    setup = build_setup(load_config(ROOT / "campaigns" / "dtlz2.yaml"))
    space, oracle = setup.space, setup.oracle
    assert isinstance(space, GridSpace) and isinstance(oracle, DTLZ2Oracle)
    names = [o.name for o in oracle.objectives]
    results = []
    for n in sizes:
        candidates = _grid_points(space, n, seed=n)
        values = oracle._evaluate(candidates).numpy()
        told = pd.DataFrame({"candidate": candidates} | {k: values[:, j] for j, k in enumerate(names)})
        for pool in pools:
            with tempfile.TemporaryDirectory() as folder:
                campaign = pl.Campaign.create(
                    Path(folder) / "c",
                    space=pl.GridSpace(dims=space.dims, levels=space.levels),
                    objectives=[pl.Objective(k, "min") for k in names],
                    generator=[
                        {"kind": "random", "pool_size": pool // 2},
                        {"kind": "genetic", "pool_size": pool // 2},
                    ],
                    batch_size=4,
                    seed=0,
                    ref_point=list(oracle.ref_point),
                    acquisition={
                        "kind": acquisition,
                        "mc_samples": 32 if acquisition == "qlognehvi" else 128,
                    },
                    runtime={"torch_threads": 1},
                    tracking={"tracking_uri": f"sqlite:///{folder}/mlflow.db"},
                )
                start = time.perf_counter()
                campaign.tell(told)
                tell_s = time.perf_counter() - start
                start = time.perf_counter()
                batch = campaign.ask()
                ask_s = time.perf_counter() - start
                assert len(batch) == 4
                with CampaignStore.open(campaign.directory, lock=False) as store:
                    chosen = store.read("batches")
                metrics = json.loads(chosen.loc[chosen["round"] == chosen["round"].max(), "metrics"].iloc[0])
                start = time.perf_counter()
                shown = subprocess.run(
                    [sys.executable, "-m", "paretolab", "status", str(campaign.directory)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                status_s = time.perf_counter() - start
                assert "Pareto" in shown.stdout
            row = {"measured": n, "pool": pool, "tell_s": tell_s, "ask_s": ask_s, "status_s": status_s}
            row |= {s: metrics.get(f"time/{s}", float("nan")) for s in STEPS}
            row["proxy_fitted"] = metrics.get("proxy/n_fitted", n)
            results.append(row)
            print(json.dumps(row), flush=True)
    return results


def proxy_quality(task: str, n_train: int, max_points: int, seed: int) -> dict:
    """Exact GP on ``n_train`` points beside the bounded proxy, on 1,000 held-out points."""
    g = torch.Generator().manual_seed(seed)
    if task == "dtlz2":
        setup = build_setup(load_config(ROOT / "campaigns" / "dtlz2.yaml"))
        candidates = _grid_points(setup.space, n_train + 1000, seed)
        Y = to_max_space(setup.oracle._evaluate(candidates).double(), setup.oracle.objectives)
        kernel, vocab = "rbf", None
    else:
        setup = build_setup(load_config(ROOT / "campaigns" / "ngram_mogfn.yaml"))
        candidates = list(dict.fromkeys(setup.space.sample(3 * (n_train + 1000), g)))[: n_train + 1000]
        Y = to_max_space(setup.oracle(candidates).values.double(), setup.oracle.objectives)
        kernel, vocab = "kmer", setup.space.vocab_size
    X = setup.space.featurize(candidates).double()
    X_train, Y_train, X_test, Y_test = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    top = best_first(Y_test)[:100]
    row: dict = {"task": task, "n_train": n_train, "max_points": max_points, "seed": seed}
    for label, bound in (("exact", None), ("bounded", max_points)):
        start = time.perf_counter()
        model, _ = fit_gp_proxy(
            X_train,
            Y_train,
            holdout_fraction=0.0,
            rng=torch.Generator().manual_seed(seed),
            kernel=kernel,
            vocab_size=vocab,
            max_points=bound,
        )
        row[f"{label}_fit_s"] = time.perf_counter() - start
        for part, rows in (("all", slice(None)), ("top", top)):
            quality = heldout_metrics(model, X_test[rows], Y_test[rows])
            row |= {f"{label}_{part}_{k}": v for k, v in quality.items()}
    print(json.dumps(row), flush=True)
    return row


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=["rounds", "quality", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--pools", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--acquisition", choices=["sampled_hvi", "qlognehvi"], default="sampled_hvi")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# {_machine()}", flush=True)
    if args.part in ("rounds", "all"):
        rows = pd.DataFrame(rounds(args.sizes, args.pools, args.acquisition))
        print(_markdown(rows))
    if args.part in ("quality", "all"):
        # an exact RBF fit of 3 objectives took 399 s at 2,000 points: the exact side stops at 1,000
        cases = [("dtlz2", 1_000, 500), ("dtlz2", 1_000, 250), ("ngram", 4_000, 2_000)]
        rows = pd.DataFrame([proxy_quality(t, n, b, s) for t, n, b in cases for s in args.seeds])
        summary = rows.drop(columns="seed").groupby(["task", "n_train", "max_points"]).agg(["mean", "sem"])
        summary.columns = [f"{a} {b}" for a, b in summary.columns]
        print(_markdown(summary.reset_index()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# peak memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
