"""GFlowNet sampling time: the transformer policy with its key/value cache vs without.

1,000 sequences over 20 letters up to length 32, from a ``CausalTransformerPolicy`` of the
default GFlowNet settings (width 64, ``layers`` 3 -> 2 transformer layers, random weights),
sampled by ``sample_trajectories`` with ``cache=True`` and ``cache=False`` from the same
seed. Cases: fixed length 32 and lengths 8-32, each unconditional (OP-GFN) and conditioned
on an encoded preference and temperature (MOGFN-PC, 2 objectives). Prints the median time
over the seeds and checks that both paths drew the same sequences.

    .venv/bin/python benchmarks/sampling_speed.py --seeds 0 1 2 3 4
    TORCH_THREADS=2 .venv/bin/python benchmarks/sampling_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from paretolab.data.spaces import SequenceSpace
from paretolab.models.generators.gflownet import (
    CausalTransformerPolicy,
    ConditionSampler,
    GFlowNetSettings,
    SequenceEnvironment,
    sample_trajectories,
)

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


def _sample_seconds(env, policy, condition, seed: int, cache: bool) -> tuple[float, torch.Tensor]:
    if condition.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    terminal = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(seed), cache=cache)
    if condition.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, terminal.terminal


def run(n: int, min_length: int, conditioned: bool, seeds: list[int], device: str) -> dict[str, object]:
    env = SequenceEnvironment(SequenceSpace(ALPHABET, min_length, 32))
    settings = GFlowNetSettings()
    conditions = ConditionSampler(2, (1.0, 16.0))
    size = conditions.encoding_size if conditioned else 0
    torch.manual_seed(0)
    policy = CausalTransformerPolicy(env, size, settings.hidden, max(1, settings.layers - 1)).to(device)
    rng = torch.Generator().manual_seed(0)
    condition = conditions.encode(conditions.sample(n, rng)) if conditioned else torch.empty(n, 0)
    condition = condition.to(device)
    _sample_seconds(env, policy, condition[:64], 0, True)  # warm-up
    _sample_seconds(env, policy, condition[:64], 0, False)
    times: dict[bool, list[float]] = {True: [], False: []}
    same = True
    for seed in seeds:
        cached_s, cached = _sample_seconds(env, policy, condition, seed, True)
        plain_s, plain = _sample_seconds(env, policy, condition, seed, False)
        times[True].append(cached_s)
        times[False].append(plain_s)
        same &= torch.equal(cached, plain)
    cached_s, plain_s = statistics.median(times[True]), statistics.median(times[False])
    return {
        "n": n,
        "lengths": f"{min_length}-32",
        "condition": size,
        "cached_s": cached_s,
        "uncached_s": plain_s,
        "speedup": plain_s / cached_s,
        "same_samples": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "1")))
    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, device {args.device}")
    for min_length in (32, 8):
        for conditioned in (False, True):
            row = run(args.n, min_length, conditioned, args.seeds, args.device)
            print(
                "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
