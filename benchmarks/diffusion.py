"""Guided discrete diffusion (LaMBO-2): pool time, and guidance vs no guidance on the proxy.

Speed: a guided pool of 1,000 sequences of length 32 (20 letters) from the default
diffusion settings, after one round's update on 100 measured n-gram sequences (the k-mer
GP proxy distilled into the value heads). Prints update and ``propose`` seconds per seed.

Quality: on the n-gram task (length 24) and the molecular task (qed, logP; NCI seeds), for
each seed the same 256 seed rows are edited at the same budget (3 positions) by the guided
sampler and by the unguided one (positions uniform, no hidden-state perturbation). Reports
the mean proxy gain over the seed row (the proxy's mean, weighted by each row's preference)
of the proposals each returns (guided: the accepted edits; unguided: every changed row),
of the raw edits before acceptance, the acceptance rate and the value heads' held-out
Spearman against the proxy.

    .venv/bin/python benchmarks/diffusion.py --seeds 0 1 2 3 4
    .venv/bin/python benchmarks/diffusion.py --device cuda --skip-quality
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import SequenceSpace
from paretolab.models.generators.diffusion import DiffusionGenerator, DiffusionSettings, ScalarizedGuidance
from paretolab.models.proxies.gp import fit_gp_proxy
from paretolab.models.rewards import ProxyReward
from paretolab.oracles.ngram import NGramOracle

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"


def ngram_task(seed: int, n: int, length: int) -> tuple[SequenceSpace, Dataset, ProxyReward]:
    space = SequenceSpace(ALPHABET, length, length)
    oracle = NGramOracle(space, motifs=["AV", "VC", "CA"], max_score=length // 4)
    rng = torch.Generator().manual_seed(seed)
    xs = list(dict.fromkeys(space.sample(n, rng)))
    X, Y = space.featurize(xs), oracle(xs).values
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=rng, kernel="kmer", vocab_size=len(ALPHABET))
    return space, Dataset(xs, X, Y), ProxyReward(model, space)


def molecule_task(seed: int, n: int) -> tuple[object, Dataset, ProxyReward]:
    from paretolab.data.molecules import nci_seed_path, read_seed_file
    from paretolab.data.spaces import MoleculeSpace
    from paretolab.oracles.molecular import MolecularOracle

    space = MoleculeSpace(read_seed_file(nci_seed_path()).smiles[:400], 40)
    objectives = [
        {"name": "qed", "property": "qed"},
        {"name": "logp", "property": "logp", "direction": "max"},
    ]
    oracle = MolecularOracle(space, objectives)
    xs = space.sample(n, torch.Generator().manual_seed(seed))
    X, Y = space.featurize(xs), oracle(xs).values
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=torch.Generator(), kernel="minmax")
    return space, Dataset(xs, X, Y), ProxyReward(model, space)


def speed(seed: int, device: str) -> dict[str, float]:
    space, dataset, reward = ngram_task(seed, 100, 32)
    generator = DiffusionGenerator(space, 3, DiffusionSettings(), seed=seed, device=device)
    start = time.perf_counter()
    metrics = generator.update(reward, dataset, torch.Generator().manual_seed(seed))
    updated = time.perf_counter() - start
    start = time.perf_counter()
    pool = generator.propose(1000, torch.Generator().manual_seed(seed))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {
        "update_s": updated,
        "propose_s": time.perf_counter() - start,
        "pool": len(pool),
        "acceptance": generator.proposal_metrics["guidance_acceptance"],
        "value_spearman": metrics.get("value_spearman", float("nan")),
    }


def _gain(reward: ProxyReward, generator: DiffusionGenerator, rows, seeds, weights) -> float:
    scores = reward.from_tokens(generator.codes.to_space(rows).cpu())
    before = reward.from_tokens(generator.codes.to_space(seeds).cpu())
    gain = ((scores - before) * weights.to(scores)).sum(-1)
    gain = gain[torch.isfinite(gain)]  # an invalid molecule never reaches a pool
    return float(gain.mean()) if len(gain) else float("nan")


def quality(task: str, seed: int, device: str) -> dict[str, float]:
    space, dataset, reward = ngram_task(seed, 96, 24) if task == "ngram" else molecule_task(seed, 96)
    m = reward.model.num_outputs
    generator = DiffusionGenerator(space, m, DiffusionSettings(), seed=seed, device=device)
    metrics = generator.update(reward, dataset, torch.Generator().manual_seed(seed))
    rng = torch.Generator().manual_seed(100 + seed)
    seeds = generator._seeds[torch.randint(0, len(generator._seeds), (256,), generator=rng).to(device)]
    guidance = ScalarizedGuidance(m)
    guidance.draw(len(seeds), rng)
    editable = torch.ones_like(seeds, dtype=torch.bool)
    row: dict[str, float] = {"value_spearman": metrics.get("value_spearman", float("nan"))}
    sampler = generator.sampler
    for guided, label in ((True, "guided"), (False, "unguided")):
        draws = torch.Generator().manual_seed(seed)
        scores = sampler.saliency(seeds, guidance) if guided else torch.zeros(seeds.shape, device=device)
        raw = sampler.edit(
            seeds, sampler.choose_positions(scores, editable, 3, draws), guidance, draws, guided
        )
        row[f"{label}_raw"] = _gain(reward, generator, raw, seeds, guidance.weights)
        result = sampler.improve(
            seeds,
            guidance,
            torch.Generator().manual_seed(seed),
            max_edits=3,
            editable=editable,
            guided=guided,
        )
        kept = result.accepted.to(device)
        row[f"{label}_pool"] = _gain(
            reward, generator, result.rows[kept], seeds[kept], guidance.weights[kept.cpu()]
        )
        row[f"{label}_acceptance"] = result.acceptance_rate
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    machine = platform.processor() or platform.machine()
    print(f"{machine}, torch threads {torch.get_num_threads()}, {args.device}")
    print("\nSpeed: guided pool of 1,000 sequences, length 32")
    for seed in args.seeds:
        r = speed(seed, args.device)
        print(
            f"  seed {seed}: update {r['update_s']:.1f} s, propose {r['propose_s']:.2f} s "
            f"-> {r['pool']} accepted "
            f"({r['acceptance']:.0%} of edits tried), value-head Spearman {r['value_spearman']:.2f}"
        )
    if args.skip_quality:
        return
    for task in ("ngram", "molecules"):
        print(f"\nQuality on {task}: mean proxy gain over the seed row (scalarized), 256 rows, 3 edits")
        rows = [quality(task, seed, args.device) for seed in args.seeds]
        for seed, r in zip(args.seeds, rows, strict=True):
            print(
                f"  seed {seed}: pool guided {r['guided_pool']:+.5f} vs unguided {r['unguided_pool']:+.5f}; "
                f"raw edits guided {r['guided_raw']:+.5f} vs unguided {r['unguided_raw']:+.5f}; "
                f"acceptance {r['guided_acceptance']:.0%}; value Spearman {r['value_spearman']:.2f}"
            )
        for key in ("pool", "raw"):
            diffs = [r[f"guided_{key}"] - r[f"unguided_{key}"] for r in rows]
            wins = sum(d > 0 for d in diffs)
            print(
                f"  {key}: guided - unguided mean {statistics.mean(diffs):+.5f}, "
                f"guided ahead on {wins}/{len(diffs)} seeds"
            )


if __name__ == "__main__":
    main()
