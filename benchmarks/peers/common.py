"""What every peer script shares: the task's start (the initial design and reference point
``benchmarks/campaigns.py`` uses for a seed), the record of a run, and the command line."""

from __future__ import annotations

import argparse
import json
import logging
import resource
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from paretolab.data.objectives import to_max_space
from paretolab.flows.steps import round_rng


def initial_design(config: Any, setup: Any, seed: int) -> list[str]:
    """The campaign's initial design for ``seed``: the oracle's seed candidates where it has
    them, else uniform members of the space, drawn as ``paretolab run`` draws them."""
    rng = round_rng(seed, 0, "initial-design")
    drawn = setup.oracle.seed_candidates(config.initial_design, rng)
    drawn = drawn if drawn is not None else setup.space.sample(config.initial_design, rng)
    return list(dict.fromkeys(drawn))


def reference_point(config: Any, setup: Any) -> tuple[list[float], torch.Tensor]:
    """The task's reference point in raw units, and in maximization space."""
    raw = list(config.ref_point if config.ref_point is not None else setup.oracle.ref_point)
    return raw, to_max_space(torch.tensor(raw, dtype=torch.double)[None], setup.objectives)[0]


def result(history: list[tuple[int, float]], round_s: list[float], **extra: Any) -> dict[str, Any]:
    """A run's record: the hypervolume after the initial design and each round, seconds per
    round, and this process's peak memory so far."""
    return {
        "hypervolume": history[-1][1],
        "history": history,
        "round_s": round_s,
        "ask_s": sum(round_s) / max(len(round_s), 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    } | extra


def main(
    method: str,
    run: Callable[..., dict[str, Any]],
    doc: str | None,
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
) -> None:
    """``CONFIG --seeds ... [--task NAME] [--out FILE]``: ``run(config, seed, **options)`` per
    seed, one JSON line per run appended to ``--out``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--task", default=None, help="task name in the records (default: the config's stem)")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON record per run here")
    options(parser)
    args = vars(parser.parse_args())
    config, seeds, task, out = (args.pop(k) for k in ("config", "seeds", "task", "out"))
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    for seed in seeds:
        row = run(config, seed, **args)
        calls = row["history"][-1][0]
        print(f"seed {seed}: hypervolume {row['hypervolume']:.4g} after {calls} calls", flush=True)
        if out is not None:
            record = {"task": task or config.stem, "method": method, "seed": seed}
            with out.open("a") as fh:
                fh.write(json.dumps(record | row) + "\n")
