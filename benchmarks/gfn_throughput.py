"""Trajectory-balance training throughput: paretolab's GFlowNet vs torchgfn.

Same HyperGrid (torchgfn's "original" reward, R0=0.1, R1=0.5, R2=2), same batch size,
same MLP (2 x 256 hidden, learned backward policy sharing the trunk), same optimizer
settings (Adam, policy lr 1e-3, log Z lr 1e-1), on-policy, same number of steps, one
torch thread each, measured side by side in one run. The final distribution error is the
exact total variation between the trained sampler's terminal distribution (dynamic
programming over the grid) and R / Z.

torchgfn needs numpy<2, so it runs in a benchmark-only virtual environment that this
script creates (``benchmarks/.venv-torchgfn``); it is never a project dependency.

    python benchmarks/gfn_throughput.py [--steps 1000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
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
        subprocess.run([*pip, torch_spec], check=True)
        subprocess.run([*pip, "torchgfn==2.4.1", "numpy<2"], check=True)
        (VENV / ".installed").touch()
    return python


def ours(ndim: int, height: int, batch: int, steps: int, seed: int) -> dict[str, float]:
    """paretolab's MOGFN code path with one objective, fixed beta = 1."""
    sys.path.insert(0, str(HERE.parent))
    import torch

    from data.spaces import GridSpace
    from models.generators.gflownet import (
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
        thermometer_bins=2,
        epsilon=0.0,
        batch_size=batch,
        lr=1e-3,
        logz_lr=1e-1,
        hidden=256,
        layers=2,
        policy="mlp",
        learn_backward=True,
        replay_capacity=0,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ours-only", action="store_true", help="skip torchgfn (no venv)")
    args = parser.parse_args()
    python = None if args.ours_only else ensure_torchgfn_venv()
    rows = []
    for ndim, height, batch in CASES:
        row: dict = {"grid": f"{ndim}-D height {height}", "batch": batch, "steps": args.steps, "runs": []}
        for seed in args.seeds:
            run = {"seed": seed, "ours": ours(ndim, height, batch, args.steps, seed)}
            if python is not None:
                out = subprocess.run(
                    [
                        str(python),
                        str(HERE / "_torchgfn_worker.py"),
                        *map(str, (ndim, height, batch, args.steps, seed)),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                run["torchgfn"] = json.loads(out.stdout.strip().splitlines()[-1])
            row["runs"].append(run)
            print(json.dumps({"grid": row["grid"], "batch": batch, **run}), flush=True)
        rows.append(row)
    print(f"\n{len(args.seeds)} seed(s) per case: mean, and for TV mean ± standard deviation")
    print("| grid | batch | steps | ours steps/s | torchgfn steps/s | speed-up | ours TV | torchgfn TV |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = []
        for side in ("ours", "torchgfn"):
            runs = [run[side] for run in r["runs"] if side in run]
            speed = statistics.mean(x["steps_per_second"] for x in runs) if runs else float("nan")
            tvs = [x["tv"] for x in runs]
            spread = statistics.stdev(tvs) if len(tvs) > 1 else 0.0
            cells.append((speed, f"{statistics.mean(tvs):.3f} ± {spread:.3f}" if tvs else "n/a"))
        (ours_speed, ours_tv), (their_speed, their_tv) = cells
        print(
            f"| {r['grid']} | {r['batch']} | {r['steps']} | {ours_speed:.1f} | {their_speed:.1f} | "
            f"{ours_speed / their_speed:.2f}x | {ours_tv} | {their_tv} |"
        )


if __name__ == "__main__":
    main()
