"""Peer: pymoo's NSGA-II on a shipped grid task, with the campaign's initial design and
oracle budget. Runs in ``benchmarks/.venv-peers`` (pymoo is never a project dependency;
``make benchmark-peers`` creates that environment, which sees the project's own packages
through a ``.pth`` file, so the task's space, oracle and hypervolume are paretolab's).

NSGA-II (Deb et al. 2002) as pymoo recommends it for integer variables: the grid point's
level indices as integers, simulated binary crossover and polynomial mutation with rounding
repair, duplicates eliminated. The first population is the campaign's initial design (the
same candidates ``benchmarks/campaigns.py`` tells first for the same seed), each
generation has ``batch_size`` offspring, and the run stops after ``initial_design + rounds x
batch_size`` oracle calls, so the history lines up with a campaign's rounds.

    benchmarks/.venv-peers/bin/python benchmarks/peers/nsga2.py campaigns/branin_currin.yaml \\
        --seeds 0 1 2 --out benchmarks/results/quality.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize

from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.spaces import GridSpace
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup
from paretolab.flows.steps import round_rng


class GridTask(Problem):
    """A shipped grid task for pymoo: level indices in, minimized objective values out;
    every evaluated point is kept (maximization space) for the hypervolume history."""

    def __init__(self, setup) -> None:
        space: GridSpace = setup.space
        super().__init__(n_var=space.dims, n_obj=len(setup.objectives), xl=0, xu=space.levels - 1, vtype=int)
        self.setup = setup
        self.measured: list[np.ndarray] = []

    def _evaluate(self, x: np.ndarray, out: dict, *args, **kwargs) -> None:
        candidates = [",".join(str(int(v)) for v in row) for row in np.rint(x).astype(int)]
        raw = self.setup.oracle(candidates).values.double()
        values = to_max_space(raw, self.setup.objectives).numpy()
        self.measured.append(values)
        out["F"] = -values


class History(Callback):
    def __init__(self, problem: GridTask, ref: torch.Tensor) -> None:
        super().__init__()
        self.problem, self.ref, self.points = problem, ref, []

    def notify(self, algorithm) -> None:
        Y = torch.from_numpy(np.concatenate(self.problem.measured))
        self.points.append((len(Y), hypervolume(Y, self.ref)))


def run(config_path: Path, seed: int) -> dict:
    config = load_config(config_path)
    setup = build_setup(config)
    if not isinstance(setup.space, GridSpace):
        raise SystemExit(f"{config_path}: nsga2.py runs grid tasks (integer variables)")
    rng = round_rng(seed, 0, "initial-design")  # the initial design benchmarks/campaigns.py tells
    initial = setup.oracle.seed_candidates(config.initial_design, rng)
    initial = initial if initial is not None else setup.space.sample(config.initial_design, rng)
    X0 = np.array([[int(v) for v in c.split(",")] for c in dict.fromkeys(initial)])
    problem = GridTask(setup)
    raw_ref = config.ref_point if config.ref_point is not None else setup.oracle.ref_point
    ref = to_max_space(torch.tensor(raw_ref, dtype=torch.double)[None], setup.objectives)[0]
    history = History(problem, ref)
    algorithm = NSGA2(
        pop_size=len(X0),
        n_offsprings=config.batch_size,
        sampling=X0,
        crossover=SBX(prob=1.0, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    budget = len(X0) + config.rounds * config.batch_size
    start = time.perf_counter()
    minimize(problem, algorithm, ("n_eval", budget), seed=seed, callback=history, verbose=False)
    seconds = time.perf_counter() - start
    return {
        "hypervolume": history.points[-1][1],
        "history": history.points,
        "round_s": [seconds / max(len(history.points) - 1, 1)] * (len(history.points) - 1),
        "ask_s": seconds / max(len(history.points) - 1, 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--task", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        row = run(args.config, seed)
        record = {"task": args.task or args.config.stem, "method": "pymoo NSGA-II", "seed": seed} | row
        print(
            f"seed {seed}: hypervolume {row['hypervolume']:.4g} after {row['history'][-1][0]} calls",
            flush=True,
        )
        if args.out is not None:
            with args.out.open("a") as fh:
                fh.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
