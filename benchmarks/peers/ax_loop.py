"""Peer: Ax's recommended multi-objective loop (``ax.Client`` with its default generation
strategy, ``fast``: BoTorch's qLogNEHVI on a GP; ``quality`` needs JAX for fully Bayesian
models) on a shipped grid task, with the campaign's initial design and oracle budget.
Runs in ``benchmarks/.venv-peers`` (Ax 1.3.1 is never a project dependency; it shares the
project's BoTorch 0.18.1).

Each grid dimension is an integer range parameter (its level index); the objectives are
Ax objectives with the task's reference point as their thresholds. The initial design is
attached as completed trials (the same candidates ``benchmarks/campaigns.py`` tells first
for a seed), so Ax's model-based steps start at once; each round asks Ax for
``batch_size`` trials and completes them with the oracle's values. Sequence and molecule
spaces (32-48 categorical positions of 20 or more letters) are not given to Ax: its
mixed-space optimization is built for far fewer categorical parameters.

    benchmarks/.venv-peers/bin/python benchmarks/peers/ax_loop.py campaigns/branin_currin.yaml --seeds 0
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import torch
from ax import Client, RangeParameterConfig

from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.spaces import GridSpace
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup


def run(config_path: Path, seed: int) -> dict:
    config = load_config(config_path)
    setup = build_setup(config)
    space, oracle, objectives = setup.space, setup.oracle, setup.objectives
    if not isinstance(space, GridSpace):
        raise SystemExit(f"{config_path}: ax_loop.py runs grid tasks")
    raw_ref, ref = common.reference_point(config, setup)
    initial = common.initial_design(config, setup, seed)

    client = Client(random_seed=seed)
    names = [f"x{i}" for i in range(space.dims)]
    client.configure_experiment(
        parameters=[
            RangeParameterConfig(name=n, parameter_type="int", bounds=(0, space.levels - 1)) for n in names
        ]
    )
    signs = ["-" if o.direction == "min" else "" for o in objectives]
    client.configure_optimization(
        objective=", ".join(f"{s}{o.name}" for s, o in zip(signs, objectives, strict=True)),
        outcome_constraints=[
            f"{o.name} {'<=' if o.direction == 'min' else '>='} {r}"
            for o, r in zip(objectives, raw_ref, strict=True)
        ],
    )
    client.configure_generation_strategy(
        method="fast", initialization_budget=len(initial), initialize_with_center=False
    )
    Y = torch.zeros(0, len(objectives), dtype=torch.double)

    def complete(trials: dict[int, dict]) -> None:
        nonlocal Y
        candidates = [",".join(str(int(p[n])) for n in names) for p in trials.values()]
        result = oracle(candidates)
        for index, values in zip(trials, result.values.double().tolist(), strict=True):
            client.complete_trial(
                index, raw_data={o.name: v for o, v in zip(objectives, values, strict=True)}
            )
        Y = torch.cat([Y, to_max_space(result.values.double(), objectives)])

    attached = {}
    for candidate in initial:
        parameters = {n: int(v) for n, v in zip(names, candidate.split(","), strict=True)}
        attached[client.attach_trial(parameters)] = parameters
    complete(attached)
    history = [(len(Y), hypervolume(Y, ref))]
    round_s = []
    for _ in range(config.rounds):
        start = time.perf_counter()
        trials = client.get_next_trials(max_trials=config.batch_size)
        round_s.append(time.perf_counter() - start)
        complete(trials)
        history.append((len(Y), hypervolume(Y, ref)))
    return common.result(history, round_s)


if __name__ == "__main__":
    common.main("Ax", run, __doc__)
