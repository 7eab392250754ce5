"""Campaign quality on the shipped sequence and molecule tasks: final hypervolume, share of
oracle calls wasted on failures, share of picks per generator, and round time, for
variants of a shipped config over several seeds (same oracle budget for every variant).

Each run drives the Python API (``paretolab.Campaign``: the same store, steps and selection
as ``paretolab run``, without Prefect) and measures every asked batch with the config's
oracle, telling failures with their reasons. The initial design (the config's size, drawn
as the shipped campaign draws it) is told first, so every variant starts from the same
measurements for a given seed.

    .venv/bin/python benchmarks/campaigns.py campaigns/ehrlich.yaml --seeds 0 1 2 \\
        --variant default --variant 'genetic only:generators=[{kind: genetic, pool_size: 256}]'

A variant is ``label`` (the config as shipped) or ``label:field=YAML;field=YAML`` (top-level
fields replaced). Prints one Markdown row per variant: mean ± standard error over seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from paretolab.flows.config import load_config
from paretolab.flows.factories import build_setup
from paretolab.flows.runtime import configure_environment
from paretolab.flows.steps import round_rng


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    label, _, fields = text.partition(":")
    overrides: dict[str, Any] = {}
    for part in filter(None, fields.split(";")):
        key, _, value = part.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return label, overrides


def measure(oracle: Any, names: list[str], candidates: list[str]) -> pd.DataFrame:
    result = oracle(candidates)
    table = pd.DataFrame(result.values.numpy(), columns=names)
    table.insert(0, "candidate", candidates)
    table["failure_reason"] = result.reasons
    return table


def run(config_path: Path, overrides: dict[str, Any], seed: int, folder: Path) -> dict[str, float]:
    import paretolab as pl

    data = yaml.safe_load(config_path.read_text()) | overrides | {"seed": seed}
    task = {k: data[k] for k in ("space", "oracle") if k in overrides}  # a changed space or oracle
    merged = folder / "task.yaml"
    merged.write_text(yaml.safe_dump(yaml.safe_load(config_path.read_text()) | task))
    setup = build_setup(load_config(merged if task else config_path))  # the task's space and oracle
    oracle, names = setup.oracle, [o.name for o in setup.objectives]
    ref = data.get("ref_point") or list(oracle.ref_point)
    campaign = pl.Campaign.create(
        folder / "campaign",
        space=data["space"],
        objectives=[{"name": o.name, "direction": o.direction} for o in setup.objectives],
        generator=data["generators"],
        batch_size=data["batch_size"],
        seed=seed,
        ref_point=ref,
        proxy=data.get("proxy", {}),
        acquisition=data.get("acquisition", {}),
    )
    rng = round_rng(seed, 0, "initial-design")
    initial = oracle.seed_candidates(data["initial_design"], rng)
    initial = initial if initial is not None else setup.space.sample(data["initial_design"], rng)
    campaign.tell(measure(oracle, names, list(dict.fromkeys(initial))))
    picks: dict[str, int] = {}
    failed = asked = 0
    round_seconds = []
    history = [(len(campaign.measurements()), campaign.hypervolume())]
    for _ in range(data["rounds"]):
        start = time.perf_counter()
        batch = campaign.ask()
        round_seconds.append(time.perf_counter() - start)
        told = measure(oracle, names, batch["candidate"].tolist())
        told.insert(0, "candidate_id", batch["candidate_id"].to_numpy())
        campaign.tell(told.drop(columns=["candidate"]))
        failed += int(told["failure_reason"].notna().sum())
        asked += len(told)
        for generator, count in batch["generator"].value_counts().items():
            picks[generator] = picks.get(generator, 0) + int(count)
        history.append((len(campaign.measurements()), campaign.hypervolume()))
    row = {
        "hypervolume": campaign.hypervolume(),
        "failed_share": failed / max(asked, 1),
        "ask_s": statistics.mean(round_seconds),
    }
    row |= {
        "history": history,  # (candidates measured, hypervolume) after the initial design and each round
        "round_s": round_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # this process so far
    }
    return row | {f"picks/{g}": n / max(asked, 1) for g, n in picks.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--rounds", type=int, default=None, help="rounds after the initial design")
    parser.add_argument(
        "--task", default=None, help="task name in --out records (default: the config's stem)"
    )
    parser.add_argument("--out", type=Path, default=None, help="append one JSON record per run here")
    args = parser.parse_args()
    configure_environment()
    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    print(f"{args.config}: seeds {args.seeds}")
    print("| variant | final HV | failed calls | ask s | picks per generator |")
    print("|---|---|---|---|---|")
    for text in args.variant or ["default"]:
        label, overrides = parse_variant(text)
        if args.rounds is not None:
            overrides["rounds"] = args.rounds
        rows = []
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as folder:
                rows.append(run(args.config, overrides, seed, Path(folder)))
            if args.out is not None:
                record = {"task": args.task or args.config.stem, "method": label, "seed": seed} | rows[-1]
                with args.out.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")

        def stat(key: str, rows: list[dict[str, float]] = rows) -> str:
            values = [r.get(key, 0.0) for r in rows]
            se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.4g} ± {se:.2g}"

        generators = sorted({k for r in rows for k in r if k.startswith("picks/")})
        shares = ", ".join(f"{g.removeprefix('picks/')} {stat(g)}" for g in generators)
        print(
            f"| {label} | {stat('hypervolume')} | {stat('failed_share')} | {stat('ask_s')} | {shares} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
