"""Peer: pymoo's NSGA-II on a shipped task, with the campaign's initial design and oracle
budget. Runs in ``benchmarks/.venv-peers`` (pymoo is never a project dependency;
``make benchmark-peers`` creates that environment, which sees the project's own packages
through a ``.pth`` file, so the task's space, oracle and hypervolume are paretolab's).

NSGA-II (Deb et al. 2002) on the candidate's tokens as integer genes (plus its length where
lengths vary). Grid levels are ordered: pymoo's recipe for integer variables (simulated
binary crossover and polynomial mutation with rounding repair). Letters and SELFIES symbols
are categories: uniform crossover and random resetting (1 / length per token, at least
one). Duplicates are eliminated; a candidate measured before is not measured again, and a
gene row that is no member of the space (or failed) scores the reference point without a
call. The first population is the campaign's initial design (the same candidates
``benchmarks/campaigns.py`` tells first for the same seed), each generation has
``batch_size`` offspring, and the run stops after ``initial_design + rounds x batch_size``
oracle calls; the history is read at each round's number of calls.

    benchmarks/.venv-peers/bin/python benchmarks/peers/nsga2.py campaigns/branin_currin.yaml \\
        --seeds 0 1 2 --out benchmarks/results/quality.jsonl
"""

from __future__ import annotations

import time
from pathlib import Path

import common
import numpy as np
import torch
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.crossover.ux import UX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair

from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.spaces import PAD, GridSpace
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup


class Task(Problem):
    """A shipped task for pymoo. Genes: the candidate's ``max_length`` token ids (grid
    levels, letters, SELFIES symbols), then its length where lengths vary; objectives
    minimized. Evaluation goes through :meth:`measure`, which counts oracle calls."""

    def __init__(self, setup, budget: int, ref: torch.Tensor) -> None:
        space = setup.space
        self.varies = space.min_length < space.max_length
        xu = [space.vocab_size - 1] * space.max_length + ([space.max_length] if self.varies else [])
        xl = [0] * space.max_length + ([space.min_length] if self.varies else [])
        super().__init__(
            n_var=len(xu), n_obj=len(setup.objectives), xl=np.array(xl), xu=np.array(xu), vtype=int
        )
        self.setup, self.budget, self.ref = setup, budget, ref
        self.values: dict[str, np.ndarray | None] = {}  # measured candidates (None: failed)
        self.history: list[tuple[int, float]] = []

    def genes(self, candidates: list[str]) -> np.ndarray:
        tokens = self.setup.space.encode(candidates).numpy()
        lengths = (tokens != PAD).sum(1, keepdims=True)
        tokens = np.where(tokens == PAD, 0, tokens)
        return np.hstack([tokens, lengths]) if self.varies else tokens

    def candidate(self, genes: np.ndarray) -> str | None:
        """The canonical candidate of a gene row, or None if it is not a member of the space."""
        space = self.setup.space
        tokens = torch.as_tensor(np.rint(genes[: space.max_length]).astype(int))
        if self.varies:
            tokens[int(np.rint(genes[-1])) :] = PAD
        decoded = space.decode(tokens[None])[0]
        return None if decoded is None else space.check(decoded).canonical

    def measure(self, X: np.ndarray) -> np.ndarray:
        """Minimized objective values of gene rows; new members of the space are measured
        (within the budget), a non-member or a failed measurement scores the reference point."""
        candidates = [self.candidate(row) for row in X]
        new = [c for c in dict.fromkeys(c for c in candidates if c is not None) if c not in self.values]
        new = new[: self.budget - len(self.values)]
        if new:
            result = self.setup.oracle(new)
            values = to_max_space(result.values.double(), self.setup.objectives).numpy()
            for c, v, ok in zip(new, values, result.valid.tolist(), strict=True):
                self.values[c] = v if ok else None
        worst = self.ref.numpy()
        rows = [self.values.get(c) if c is not None else None for c in candidates]
        measured = [v for v in self.values.values() if v is not None]
        Y = torch.from_numpy(np.array(measured)) if measured else torch.zeros(0, len(worst))
        self.history.append((len(self.values), hypervolume(Y, self.ref)))
        return -np.array([worst if v is None else v for v in rows])


class RandomReset(Mutation):
    """Each categorical gene (a token) redrawn with probability ``1 / length``, at least one
    per child; the length gene moves by one."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        self.rng = rng

    def _do(self, problem, X, **kwargs):
        X = np.rint(X).astype(int)
        n_tokens = problem.setup.space.max_length
        rate = 1.0 / n_tokens
        for row in X:
            hit = np.flatnonzero(self.rng.random(n_tokens) < rate)
            hit = hit if len(hit) else [self.rng.integers(n_tokens)]
            for i in hit:
                row[i] = self.rng.integers(problem.setup.space.vocab_size)
            if problem.varies and self.rng.random() < rate:
                row[-1] = np.clip(row[-1] + self.rng.choice([-1, 1]), problem.xl[-1], problem.xu[-1])
        return X


def run(config_path: Path, seed: int) -> dict:
    config = load_config(config_path)
    setup = build_setup(config)
    initial = common.initial_design(config, setup, seed)
    _, ref = common.reference_point(config, setup)
    budget = len(initial) + config.rounds * config.batch_size
    problem = Task(setup, budget, ref)
    if isinstance(setup.space, GridSpace):  # ordered levels: pymoo's integer recipe
        crossover = SBX(prob=1.0, eta=15, vtype=float, repair=RoundingRepair())
        mutation = PM(eta=20, vtype=float, repair=RoundingRepair())
    else:  # categorical tokens: uniform crossover, random resetting
        crossover, mutation = UX(), RandomReset(np.random.default_rng(seed))
    algorithm = NSGA2(
        pop_size=len(initial),
        n_offsprings=config.batch_size,
        sampling=problem.genes(initial),
        crossover=crossover,
        mutation=mutation,
        eliminate_duplicates=True,
    )
    algorithm.setup(problem, seed=seed, verbose=False)
    start, generations = time.perf_counter(), 0
    while len(problem.values) < budget and generations < 50 * config.rounds:
        population = algorithm.ask()
        population.set("F", problem.measure(population.get("X")))
        algorithm.tell(infills=population)
        generations += 1
    seconds = time.perf_counter() - start
    # one history point per oracle budget step of a round (initial design, then each batch)
    marks = [len(initial) + r * config.batch_size for r in range(config.rounds + 1)]
    history = [
        next((c, hv) for c, hv in problem.history if c >= mark)
        for mark in marks
        if any(c >= mark for c, _ in problem.history)
    ]
    failed = sum(v is None for v in problem.values.values()) / max(len(problem.values), 1)
    round_s = [seconds / config.rounds] * config.rounds
    return common.result(history, round_s, failed_share=failed, generations=generations)


if __name__ == "__main__":
    common.main("pymoo NSGA-II", run, __doc__)
