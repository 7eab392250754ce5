"""Reproduce the synthetic tasks of Jain et al. 2023, "Multi-Objective GFlowNets" (ICML,
arXiv 2210.12765) with our MOGFN-PC, beside NSGA-II-style genetic search given the same
number of reward calls.

* HyperGrid, 2-D, horizon 32, Branin / Currin / Shubert / Beale in all pairs and
  triples: hypervolume of the sampled candidates relative to the enumerated true front,
  R2 (utopian point 1, simplex weights), and the fraction of true Pareto points found.
* n-gram: 3 objectives counting AV, VC, CA (divided by 8) in sequences of length 32-36
  over the 20 amino acids: hypervolume (reference 0), R2, top-10 reward and top-10
  diversity, evaluated as the paper's code does (see ``ngram_task``).

Training budgets are far below the paper's (CPU, minutes); see benchmarks/README.md.

    python benchmarks/mogfn_paper.py [--grid-steps 1000] [--ngram-steps 1000] [--tasks all]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paper_metrics import front_recovery, r2_indicator, top_k_diversity, top_k_reward

from paretolab.data.dataset import Dataset
from paretolab.data.pareto import hypervolume, pareto_mask
from paretolab.data.spaces import GridSpace, SequenceSpace
from paretolab.models.generators.genetic import GeneticGenerator
from paretolab.models.generators.gflownet import MOGFN, MOGFNSettings, environment_for, simplex_grid
from paretolab.oracles.hypergrid import hypergrid_values
from paretolab.oracles.ngram import motif_counts

FUNCTIONS = ["branin", "currin", "shubert", "beale"]


def mogfn_samples(space, objective, m, settings, steps, n_samples, seed):
    env = environment_for(space)
    model = MOGFN(env, m, settings, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train(objective, steps, generator)
    seconds = time.perf_counter() - start
    conditioning = model.conditions.sample(n_samples, generator)
    conditioning.beta.fill_(model.conditions.beta_max)
    states = model.sample(conditioning, generator)
    candidates = space.decode(env.to_tokens(states))
    return candidates, steps * settings.trajectories_per_step, seconds


def genetic_search(space, evaluate, calls, batch, seed):
    """NSGA-II-style search (our genetic generator) spending ``calls`` reward calls."""
    generator = torch.Generator().manual_seed(seed)
    ga = GeneticGenerator(space)
    seen: dict[str, torch.Tensor] = {}
    candidates = space.sample(batch, generator)
    spent = 0
    while spent < calls:
        values = evaluate(candidates)
        spent += len(candidates)
        for c, v in zip(candidates, values, strict=True):
            seen[c] = v
        keys = list(seen)
        Y = torch.stack([seen[k] for k in keys])
        ga.update(None, Dataset(keys, torch.empty(len(keys), 0), Y), generator)
        candidates = ga.propose(min(batch, calls - spent), generator) if spent < calls else []
    return list(seen)


def grid_task(functions, steps, seed):
    space = GridSpace(2, 32)
    everything = [f"{i},{j}" for i in range(32) for j in range(32)]
    values = dict(zip(everything, hypergrid_values(space.encode(everything), 32, functions), strict=True))
    all_Y = torch.stack(list(values.values()))
    true_front = all_Y[pareto_mask(all_Y)]
    m = len(functions)
    ref, utopian, weights = torch.zeros(m), torch.ones(m), simplex_grid(m, 50 if m == 2 else 20)
    true_hv = hypervolume(true_front, ref)

    def objective(states):
        return hypergrid_values(states, 32, functions).clamp_min(0).float()

    settings = MOGFNSettings(
        beta=16.0, trajectories_per_step=128, lr=1e-2 / 10, logz_lr=1e-2, hidden=64, layers=3
    )
    samples, calls, seconds = mogfn_samples(space, objective, m, settings, steps, 1280, seed)
    row = {"task": "-".join(functions), "true_front": len(true_front), "reward_calls": calls}
    for name, candidates in (
        ("mogfn", samples),
        ("genetic", genetic_search(space, lambda xs: [values[x] for x in xs], calls, 128, seed)),
    ):
        Y = torch.stack([values[c] for c in set(candidates)])
        row[name] = {
            "hv_ratio": hypervolume(Y, ref) / true_hv,
            "r2": r2_indicator(Y, weights, utopian),
            "front_found": front_recovery(Y, true_front),
            "distinct": len(Y),
        }
    row["r2_true_front"] = r2_indicator(true_front, weights, utopian)
    row["mogfn"]["train_seconds"] = seconds
    return row


def ngram_task(steps, seed, bins):
    """The paper's protocol (its code's ``evaluation``): for each preference of a simplex
    grid, sample 128 sequences and keep the best by scalarized reward; HV (reference 0)
    and R2 (utopian 1) of that set's Pareto front; top-10 reward and diversity per
    preference. The genetic search is scored on its whole archive the same way."""
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    space = SequenceSpace(alphabet, 32, 36)
    motifs = ["AV", "VC", "CA"]

    def score(xs):
        return motif_counts(xs, motifs) / 8  # max_score_per_dim of the reference task

    def objective(states):
        return score(space.decode(states.cpu())).float()

    settings = MOGFNSettings(
        beta=96.0, trajectories_per_step=64, lr=1e-3, logz_lr=1e-2, hidden=64, layers=4, epsilon=0.01
    )
    env = environment_for(space)
    model = MOGFN(env, 3, settings, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train(objective, steps, generator)
    seconds = time.perf_counter() - start
    prefs = simplex_grid(3, bins)
    best, top_rewards, top_diversity = [], [], []
    for w in prefs:
        states = model.sample(model.conditions.fixed(w.repeat(128, 1)), generator)
        xs = space.decode(env.to_tokens(states))
        Y = score(xs)
        best.append(xs[int((Y @ w).argmax())])
        top_rewards.append(top_k_reward(Y, w[None], 10))
        top_diversity.append(top_k_diversity(xs, Y, w[None], 10))
    calls = steps * settings.trajectories_per_step
    weights = simplex_grid(3, 50)
    row = {"task": "ngram AV-VC-CA", "reward_calls": calls, "preferences": len(prefs)}
    Y = score(best)
    front = Y[pareto_mask(Y)]
    row["mogfn"] = {
        "hv": hypervolume(front, torch.zeros(3)),
        "r2": r2_indicator(front, weights, torch.ones(3)),
        "top10_reward": sum(top_rewards) / len(top_rewards),
        "top10_diversity": sum(top_diversity) / len(top_diversity),
        "distinct": len(set(best)),
        "train_seconds": seconds,
    }
    archive = sorted(set(genetic_search(space, lambda xs: list(score(xs)), calls, 128, seed)))
    Y = score(archive)
    front = Y[pareto_mask(Y)]
    row["genetic"] = {
        "hv": hypervolume(front, torch.zeros(3)),
        "r2": r2_indicator(front, weights, torch.ones(3)),
        "top10_reward": top_k_reward(Y, prefs, 10),
        "top10_diversity": top_k_diversity(archive, Y, prefs, 10),
        "distinct": len(archive),
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid-steps", type=int, default=1000)
    parser.add_argument("--ngram-steps", type=int, default=1000)
    parser.add_argument(
        "--ngram-bins", type=int, default=10, help="simplex bins of the evaluation preferences"
    )
    parser.add_argument("--tasks", choices=["all", "grid", "ngram"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    if args.tasks in ("all", "grid"):
        for k in (2, 3):
            for functions in itertools.combinations(FUNCTIONS, k):
                rows.append(grid_task(list(functions), args.grid_steps, args.seed))
                print(json.dumps(rows[-1]), flush=True)
    if args.tasks in ("all", "ngram"):
        rows.append(ngram_task(args.ngram_steps, args.seed, args.ngram_bins))
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| task | reward calls | MOGFN HV/true | GA HV/true | MOGFN R2 | GA R2 | true-front R2 "
        "| MOGFN front found | GA front found |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "hv_ratio" in r["mogfn"]:
            a, b = r["mogfn"], r["genetic"]
            print(
                f"| {r['task']} | {r['reward_calls']} | {a['hv_ratio']:.3f} | {b['hv_ratio']:.3f} "
                f"| {a['r2']:.3f} | {b['r2']:.3f} | {r['r2_true_front']:.3f} "
                f"| {a['front_found']:.2f} | {b['front_found']:.2f} |"
            )
    for r in rows:
        if "hv" in r["mogfn"]:
            print(f"\n{r['task']} ({r['reward_calls']} reward calls):")
            print(
                "| method | HV | R2 | top-10 reward | top-10 diversity | distinct |\n"
                "|---|---|---|---|---|---|"
            )
            for name in ("mogfn", "genetic"):
                v = r[name]
                print(
                    f"| {name} | {v['hv']:.4f} | {v['r2']:.3f} | {v['top10_reward']:.3f} | "
                    f"{v['top10_diversity']:.2f} | {v['distinct']} |"
                )


if __name__ == "__main__":
    main()
