"""The quality suite: hypervolume per oracle call of paretolab's generators and of the
tools a user would pick instead, on the shipped tasks, with one command.

    make benchmark-suite                        # every task, method and seed (hours on 2 cores)
    .venv/bin/python benchmarks/suite.py --tasks branin_currin dtlz2 --seeds 0 1 2
    .venv/bin/python benchmarks/suite.py --smoke  # seconds: the runner itself (in CI)

Every run starts from the task's initial design (the same candidates for a seed) and gets
the shipped config's oracle budget. Ours run through ``benchmarks/campaigns.py`` (the Python
API: the same steps as ``paretolab run``), each method a variant of the shipped config;
peers run from ``benchmarks/peers/``: BoTorch's qLogNEHVI over a mutation pool (the main
environment has BoTorch), pymoo's NSGA-II and, on the grid tasks, Ax's loop
(``benchmarks/.venv-peers``,
created by ``make benchmark-peers-env``; skipped with a note when it is missing). Records
go to ``--out`` (JSON lines, one per task, method and seed, with the hypervolume after
every round); ``benchmarks/report.py`` turns them into the plots and tables of
``benchmarks/README.md``. The BoTorch tutorial's continuous Branin-Currin protocol (6 + 20
x 4 evaluations) is the task ``branin_currin_continuous`` (a 256 x 256 grid).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / "benchmarks" / ".venv-peers" / "bin" / "python"


@dataclass(frozen=True)
class Task:
    config: str
    seeds: int
    ours: dict[str, dict]
    """Method label -> top-level overrides of the shipped config ({} = as shipped)."""
    nsga2: bool = True
    ax: bool = False
    """Ax's loop (grid tasks: a few integer parameters)."""
    overrides: dict | None = None
    """Overrides every method of the task gets (the continuous anchor's grid and budget)."""


def _generators(*generators: dict) -> dict:
    return {"generators": list(generators)}


GRID_MOGFN = {
    "kind": "mogfn",
    "pool_size": 256,
    "steps_per_round": 150,
    "trajectories_per_step": 64,
    "hidden": 64,
    "layers": 3,
    "replay_fraction": 0.1,
}  # campaigns/hypergrid_mogfn.yaml
GRID_OPGFN = {k: v for k, v in GRID_MOGFN.items() if k not in ("kind",)} | {"kind": "opgfn"}


def _shipped_generator(config: str, kind: str) -> dict:
    """The settings of the ``kind`` generator in the shipped example ``config``."""
    generators = yaml.safe_load((ROOT / "campaigns" / config).read_text())["generators"]
    return next(g for g in generators if g["kind"] == kind)


SEQUENCE_MOGFN = _shipped_generator("ngram_mogfn.yaml", "mogfn")
SEQUENCE_OPGFN = _shipped_generator("ngram_opgfn.yaml", "opgfn")
DIFFUSION = _shipped_generator("ngram_diffusion.yaml", "diffusion")


def _grid_methods() -> dict[str, dict]:
    return {
        "paretolab default": {},
        "random": _generators({"kind": "random", "pool_size": 512}),
        "genetic": _generators({"kind": "genetic", "pool_size": 512}),
        "MOGFN": _generators(GRID_MOGFN),
        "OP-GFN": _generators(GRID_OPGFN),
    }


def _sequence_methods(pool: int) -> dict[str, dict]:
    return {
        "paretolab default": {},
        "random": _generators({"kind": "random", "pool_size": pool}),
        "genetic": _generators({"kind": "genetic", "pool_size": pool}),
        "MOGFN": _generators(SEQUENCE_MOGFN),
        "OP-GFN": _generators(SEQUENCE_OPGFN),
        "diffusion": _generators(DIFFUSION),
    }


TASKS: dict[str, Task] = {
    "branin_currin": Task("campaigns/branin_currin.yaml", 5, _grid_methods(), ax=True),
    "dtlz2": Task("campaigns/dtlz2.yaml", 5, _grid_methods(), ax=True),
    "ngram": Task("campaigns/ngram_mogfn.yaml", 3, _sequence_methods(256)),
    "ehrlich": Task("campaigns/ehrlich.yaml", 3, _sequence_methods(256)),
    "molecules": Task(
        "campaigns/molecules.yaml",
        3,
        {
            "paretolab default": {},
            "random": _generators({"kind": "random", "pool_size": 256}),
            "genetic": _generators({"kind": "genetic", "pool_size": 256}),
            "MOGFN": _generators(_shipped_generator("molecules.yaml", "mogfn")),
            "OP-GFN": _generators(_shipped_generator("molecules_opgfn.yaml", "opgfn")),
            "diffusion": _generators(DIFFUSION),
        },
    ),
    "branin_currin_continuous": Task(
        "campaigns/branin_currin.yaml",
        3,
        {"paretolab default": {}},
        ax=True,
        overrides={
            "space": {"kind": "grid", "dims": 2, "levels": 256},
            "initial_design": 6,
            "batch_size": 4,
            "rounds": 20,
        },
    ),
}


def _variant(label: str, overrides: dict) -> str:
    fields = ";".join(
        f"{k}={yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()}" for k, v in overrides.items()
    )
    return f"{label}:{fields}" if fields else label


def commands(task_name: str, task: Task, seeds: list[int], out: Path, rounds: int | None) -> list[list[str]]:
    """The processes that run ``task``: ours (one per method), then the peers."""
    seeds_args = ["--seeds", *map(str, seeds)]
    common = ["--task", task_name, "--out", str(out)]
    extra = dict(task.overrides or {})
    if rounds is not None:
        extra["rounds"] = rounds
    runs = [
        [
            sys.executable,
            "benchmarks/campaigns.py",
            task.config,
            *seeds_args,
            *common,
            "--variant",
            _variant(label, extra | overrides),
        ]
        for label, overrides in task.ours.items()
    ]
    config = Path(task.config)
    if extra:  # the peers read the task from a config file: write the changed one
        changed = yaml.safe_load((ROOT / config).read_text()) | extra
        config = out.parent / f"{task_name}.yaml"
        config.write_text(yaml.safe_dump(changed, sort_keys=False))
    runs.append([sys.executable, "benchmarks/peers/botorch_pool.py", str(config), *seeds_args, *common])
    if task.nsga2:
        if PEERS_PYTHON.exists():
            runs.append([str(PEERS_PYTHON), "benchmarks/peers/nsga2.py", str(config), *seeds_args, *common])
        else:
            print(
                f"# {task_name}: pymoo NSGA-II skipped: {PEERS_PYTHON} is missing (make benchmark-peers-env)"
            )
    return runs


def run_all(runs: list[list[str]], jobs: int, log: Path) -> None:
    """Run the processes, ``jobs`` at a time (one torch thread each); their output goes to ``log``."""
    waiting, running = list(runs), []
    with log.open("a") as sink:
        while waiting or running:
            while waiting and len(running) < jobs:
                command = waiting.pop(0)
                print("$ " + shlex.join(command), flush=True)
                sink.write("$ " + shlex.join(command) + "\n")
                sink.flush()
                running.append((command, subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=sink)))
            time.sleep(0.5)
            for item in list(running):
                command, process = item
                if process.poll() is not None:
                    running.remove(item)
                    if process.returncode:
                        raise SystemExit(f"failed ({process.returncode}): {shlex.join(command)}; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=sorted(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: each task's (3 or 5)")
    parser.add_argument("--rounds", type=int, default=None, help="default: each task's shipped budget")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.jsonl")
    parser.add_argument("--smoke", action="store_true", help="one round of two methods on one task")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; records: {args.out}")
    runs: list[list[str]] = []
    if args.smoke:
        task = TASKS["branin_currin"]
        smoke = Task(task.config, 1, {"paretolab default": {}}, nsga2=False)
        runs = commands("branin_currin", smoke, [0], args.out, rounds=1)
    else:
        for name in args.tasks:
            task = TASKS[name]
            runs += commands(name, task, args.seeds or list(range(task.seeds)), args.out, args.rounds)
    run_all(runs, args.jobs, args.out.with_suffix(".log"))
    print(f"done: {len(runs)} runs; plots and tables: python benchmarks/report.py {args.out}")


if __name__ == "__main__":
    main()
