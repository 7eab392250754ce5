"""Peer: the loop a BoTorch user writes for a discrete space, with no learned generator.

Each round: a ``ModelListGP`` of BoTorch's default ``SingleTaskGP`` (RBF kernel, fitted
with ``fit_gpytorch_mll``) on the space's features of everything measured; a pool of
``pool`` random single-token mutations of the measured Pareto set (plus random members
of the space when the front is small); ``qLogNoisyExpectedHypervolumeImprovement`` with
``optimize_acqf_discrete`` picking ``batch_size`` of them. Nothing of paretolab's model
or selection code is used: only the task's space (features, tokens), oracle and
hypervolume, so the comparison is with the library used the way its tutorials use it.
Same initial design and oracle budget as ``benchmarks/campaigns.py``.

    .venv/bin/python benchmarks/peers/botorch_pool.py campaigns/ngram_mogfn.yaml --seeds 0 1 2 \\
        --out benchmarks/results/quality.jsonl
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import common
import torch
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms import Standardize
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.mlls import SumMarginalLogLikelihood

from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import hypervolume, pareto_mask
from paretolab.data.spaces import PAD
from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup
from paretolab.flows.runtime import configure_environment


def mutations(space, parents: list[str], n: int, rng: torch.Generator) -> list[str]:
    """``n`` single-token mutations of random ``parents`` (valid members of the space)."""
    tokens = space.encode(parents)
    rows = tokens[torch.randint(0, len(parents), (n,), generator=rng)]
    present = rows != PAD
    where = (torch.rand(rows.shape, generator=rng) * present).argmax(dim=1)
    shift = torch.randint(1, max(space.vocab_size, 2), (n,), generator=rng)
    rows[torch.arange(n), where] = (rows[torch.arange(n), where] + shift) % space.vocab_size
    checked = (space.check(c) for c in space.decode(rows) if c is not None)
    return [c.canonical for c in checked if c.canonical is not None]


def run(config_path: Path, seed: int, pool: int = 512, rounds: int | None = None) -> dict:
    config = load_config(config_path)
    setup = build_setup(config)
    space, oracle, objectives = setup.space, setup.oracle, setup.objectives
    _, ref = common.reference_point(config, setup)
    initial = common.initial_design(config, setup, seed)
    candidates: list[str] = []
    Y = torch.zeros(0, len(objectives), dtype=torch.double)

    def measure(batch: list[str]) -> None:
        nonlocal Y
        result = oracle(batch)
        values = to_max_space(result.values.double(), objectives)
        values[~result.valid] = float("nan")
        candidates.extend(batch)
        Y = torch.cat([Y, values])

    measure(initial)
    history = [(len(candidates), hypervolume(Y[~Y.isnan().any(-1)], ref))]
    round_s = []
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    rounds = config.rounds if rounds is None else rounds
    for _ in range(rounds):
        start = time.perf_counter()
        ok = ~Y.isnan().any(-1)
        measured = [c for c, v in zip(candidates, ok.tolist(), strict=True) if v]
        X = space.featurize(measured).double()
        model = ModelListGP(
            *(
                SingleTaskGP(X, Y[ok][:, j : j + 1], outcome_transform=Standardize(m=1))
                for j in range(Y.shape[1])
            )
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
        front = [c for c, on in zip(measured, pareto_mask(Y[ok]).tolist(), strict=True) if on]
        taken = set(candidates)
        proposals = [c for c in dict.fromkeys(mutations(space, front, pool, g)) if c not in taken]
        if len(proposals) < pool // 2:
            proposals += [
                c for c in dict.fromkeys(space.sample(pool, g)) if c not in taken and c not in proposals
            ]
        acqf = qLogNoisyExpectedHypervolumeImprovement(
            model=model,
            ref_point=ref.tolist(),
            X_baseline=X,
            prune_baseline=True,
            sampler=SobolQMCNormalSampler(sample_shape=torch.Size([128]), seed=seed),
        )
        choices = space.featurize(proposals).double()
        picked, _ = optimize_acqf_discrete(acqf, q=config.batch_size, choices=choices, unique=True)
        index = {tuple(row.tolist()): i for i, row in enumerate(choices)}
        batch = [proposals[index[tuple(row.tolist())]] for row in picked]
        round_s.append(time.perf_counter() - start)
        measure(batch)
        history.append((len(candidates), hypervolume(Y[~Y.isnan().any(-1)], ref)))
    failed = float(Y.isnan().any(-1)[len(initial) :].double().mean()) if rounds else 0.0
    return common.result(history, round_s, failed_share=failed)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", type=int, default=512, help="mutations scored per round")
    parser.add_argument("--rounds", type=int, default=None)


if __name__ == "__main__":
    configure_environment()
    common.main("BoTorch qLogNEHVI, mutation pool", run, __doc__, _options)
