"""A round's generator phase: generators updated one after another vs side by side.

The n-gram task (three motif counts over protein-like sequences, as in
``campaigns/ngram_mogfn.yaml``) with three generators: MOGFN and OP-GFN as shipped in
``campaigns/ngram_mogfn.yaml`` and ``campaigns/ngram_opgfn.yaml``, and genetic. ``--measured``
random sequences are measured and one proxy is fitted; then round 1's update and sampling
of every generator (:func:`paretolab.flows.steps.refresh_generator`) runs twice from the
same state: in turn (the Python API) and side by side in threads (what the flow's default
thread runner does, without Prefect's bookkeeping). Printed per seed: both wall times,
their ratio, and whether both gave the same proposals (they must).

    .venv/bin/python benchmarks/parallel_generators.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import yaml

from paretolab.data.dataset import Dataset
from paretolab.data.objectives import to_max_space
from paretolab.flows import steps
from paretolab.flows.config import parse_config
from paretolab.flows.factories import build_setup
from paretolab.models.rewards import ProxyReward, failure_floor

CAMPAIGNS = Path(__file__).resolve().parents[1] / "campaigns"


def _config(seed: int):
    data = yaml.safe_load((CAMPAIGNS / "ngram_mogfn.yaml").read_text())
    opgfn = yaml.safe_load((CAMPAIGNS / "ngram_opgfn.yaml").read_text())["generators"][0]
    data["generators"] = [data["generators"][0], opgfn, {"kind": "genetic", "pool_size": 128}]
    data["seed"] = seed
    return parse_config(data, "benchmark")


def _timed_phase(jobs, side_by_side: bool) -> tuple[float, list[steps.GeneratorRound]]:
    start = time.perf_counter()
    if side_by_side:
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda job: steps.refresh_generator(*job), jobs))
    else:
        results = steps.refresh_in_turn(jobs)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--measured", type=int, default=64)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the shipped runtime default: 1)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print("seed  in_turn_s  side_by_side_s  ratio  same_proposals")
    ratios = []
    for seed in args.seeds:
        config = _config(seed)
        setup = build_setup(config)
        candidates = setup.space.sample(args.measured, torch.Generator().manual_seed(seed))
        Y = to_max_space(setup.oracle(candidates).values, setup.objectives)
        dataset = Dataset(candidates, setup.space.featurize(candidates), Y, (), None, None)
        model, _ = steps.fit_proxy(setup, dataset, 1)
        reward = ProxyReward(model, setup.space, floor=failure_floor(dataset.Y))

        def jobs(setup=setup, config=config, reward=reward, dataset=dataset, seed=seed):
            generators = copy.deepcopy(setup.generators)  # the same untrained state each time
            return [
                (g, reward, dataset, c.pool_size, seed, 1)
                for g, c in zip(generators, config.generators, strict=True)
            ]

        in_turn, turned = _timed_phase(jobs(), side_by_side=False)
        side, sided = _timed_phase(jobs(), side_by_side=True)
        same = [r.proposed for r in turned] == [r.proposed for r in sided]
        ratios.append(in_turn / side)
        print(f"{seed:4d}  {in_turn:9.2f}  {side:14.2f}  {in_turn / side:5.2f}  {same}")
    print(f"mean speed-up {statistics.mean(ratios):.2f}x over {len(ratios)} seeds")


if __name__ == "__main__":
    main()
