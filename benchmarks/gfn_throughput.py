"""Trajectory-balance training throughput: paretolab's GFlowNet vs torchgfn.

Same HyperGrid (torchgfn's "original" reward, R0=0.1, R1=0.5, R2=2), same batch size,
same MLP (2 x 256 hidden, learned backward policy sharing the trunk), same optimizer
settings (Adam, policy lr 1e-3, log Z lr 1e-1, no gradient clipping), on-policy, same
number of steps, one torch thread each, measured side by side in one run. The final distribution error is the
exact total variation between the trained sampler's terminal distribution (dynamic
programming over the grid) and R / Z.

torchgfn needs numpy<2, so it runs in a benchmark-only virtual environment that this
script creates (``benchmarks/.venv-torchgfn``); it is never a project dependency.

    python benchmarks/gfn_throughput.py [--steps 1000] [--seeds 0 1 2 3 4] [--jobs 2]

With ``--jobs 2`` two (case, seed) pairs run at once, one per core; within a pair the two
libraries run one after the other, so each sees the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-torchgfn"
CASES = [(2, 32, 16), (2, 32, 128), (4, 8, 16), (4, 8, 128)]
"""(ndim, height, batch size)"""


def ensure_torchgfn_venv() -> Path:
    """The benchmark venv's python, created on first use."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        torch_spec = os.environ.get("TORCH_SPEC", "torch==2.13.0")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *shlex.split(torch_spec)], check=True)
        subprocess.run([*pip, "torchgfn==2.4.1", "numpy<2"], check=True)
        (VENV / ".installed").touch()
    return python


def ours(ndim: int, height: int, batch: int, steps: int, seed: int) -> dict[str, float]:
    """paretolab's MOGFN code path with one objective and a fixed beta = 1: nothing is
    conditioned on, so log Z is one number, as in torchgfn."""
    sys.path.insert(0, str(HERE.parent))
    import torch

    from paretolab.data.spaces import GridSpace
    from paretolab.models.generators.gflownet import (
        MOGFN,
        HyperGridEnvironment,
        MOGFNSettings,
        terminal_distribution,
        total_variation,
    )

    torch.set_num_threads(1)
    env = HyperGridEnvironment(GridSpace(ndim, height))

    def reward(states: torch.Tensor) -> torch.Tensor:
        ax = (states / (height - 1) - 0.5).abs()
        eps = 1e-12
        r = 0.1 + (ax > 0.25 + eps).prod(-1) * 0.5 + ((ax > 0.3 + eps) & (ax < 0.4 - eps)).prod(-1) * 2.0
        return r.unsqueeze(-1).float()

    settings = MOGFNSettings(
        beta=1.0,
        epsilon=0.0,
        trajectories_per_step=batch,
        lr=1e-3,
        logz_lr=1e-1,
        hidden=256,
        layers=2,
        policy="mlp",
        learn_backward=True,
        replay_capacity=0,
        grad_clip=float("inf"),  # torchgfn does not clip
    )
    model = MOGFN(env, 1, settings, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    history = model.train(reward, steps, generator)
    elapsed = time.perf_counter() - start
    condition = model.conditions.encode(model.conditions.fixed(torch.ones(1, 1)))
    states, p = terminal_distribution(env, model.policy, condition)
    target = reward(states).squeeze(-1).double()
    return {
        "steps_per_second": steps / elapsed,
        "seconds": elapsed,
        "tv": total_variation(p, target / target.sum()),
        "loss": history["loss"][-1],
    }


def measure(ndim: int, height: int, batch: int, steps: int, seed: int, python: Path | None) -> dict:
    """Both libraries on one case and seed, one after the other."""
    run: dict = {"seed": seed, "ours": ours(ndim, height, batch, steps, seed)}
    if python is not None:
        out = subprocess.run(
            [str(python), str(HERE / "_torchgfn_worker.py"), *map(str, (ndim, height, batch, steps, seed))],
            check=True,
            capture_output=True,
            text=True,
        )
        run["torchgfn"] = json.loads(out.stdout.strip().splitlines()[-1])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=1, help="(case, seed) pairs measured at once")
    parser.add_argument("--ours-only", action="store_true", help="skip torchgfn (no venv)")
    parser.add_argument("--one", nargs=5, type=int, help=argparse.SUPPRESS)  # ndim height batch steps seed
    args = parser.parse_args()
    python = None if args.ours_only else ensure_torchgfn_venv()
    if args.one:
        print(json.dumps(measure(*args.one, python)))
        return
    jobs = [(case, seed) for case in CASES for seed in args.seeds]

    def launch(job: tuple) -> dict:
        (ndim, height, batch), seed = job
        command = [sys.executable, __file__, "--one", *map(str, (ndim, height, batch, args.steps, seed))]
        if args.ours_only:
            command.append("--ours-only")
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"grid": f"{ndim}-D height {height}", "batch": batch, **result}), flush=True)
        return result

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(launch, jobs))
    print(f"\n{len(args.seeds)} seed(s) per case, {args.jobs} measured at once: mean steps/s; TV mean ± sd")
    print("| grid | batch | steps | ours steps/s | torchgfn steps/s | speed-up | ours TV | torchgfn TV |")
    print("|---|---|---|---|---|---|---|---|")
    for ndim, height, batch in CASES:
        runs = [r for (case, _), r in zip(jobs, results, strict=True) if case == (ndim, height, batch)]
        cells = []
        for side in ("ours", "torchgfn"):
            sided = [run[side] for run in runs if side in run]
            speed = statistics.mean(x["steps_per_second"] for x in sided) if sided else float("nan")
            tvs = [x["tv"] for x in sided]
            spread = statistics.stdev(tvs) if len(tvs) > 1 else 0.0
            cells.append((speed, f"{statistics.mean(tvs):.3f} ± {spread:.3f}" if tvs else "n/a"))
        (ours_speed, ours_tv), (their_speed, their_tv) = cells
        print(
            f"| {ndim}-D height {height} | {batch} | {args.steps} | {ours_speed:.1f} | {their_speed:.1f} | "
            f"{ours_speed / their_speed:.2f}x | {ours_tv} | {their_tv} |"
        )


if __name__ == "__main__":
    main()
