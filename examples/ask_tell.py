"""Drive a paretolab campaign from Python: tell what you know, ask for a batch, measure it,
tell the results, repeat.

    .venv/bin/python examples/ask_tell.py [CAMPAIGN_DIR [ROUNDS]]   # runs/ask_tell_example, 4

The "lab" is a toy assay of 12-residue peptides with two objectives that pull apart:
``binding`` (more hydrophobic residues bind better, maximized) and ``aggregation`` (the
same residues make it aggregate, minimized); a peptide with two cysteines in a row fails
to fold and is reported with a failure reason. Run it again with the same directory and
the campaign goes on where it stopped.
"""

from __future__ import annotations

import itertools
import random
import sys

import pandas as pd

import paretolab as pl

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
HYDROPHOBIC = set("AILMFVW")
CHARGED = set("DEKR")


def assay(peptides: pd.Series) -> pd.DataFrame:
    """The toy lab: one row per peptide, values or a failure reason."""
    rows = []
    for peptide in peptides:
        if "CC" in peptide:
            rows.append({"binding": None, "aggregation": None, "failure_reason": "did not fold"})
            continue
        hydrophobic = sum(a in HYDROPHOBIC for a in peptide) / len(peptide)
        charged = sum(a in CHARGED for a in peptide) / len(peptide)
        runs = sum(a in HYDROPHOBIC and b in HYDROPHOBIC for a, b in itertools.pairwise(peptide))
        rows.append(
            {
                "binding": round(10 * hydrophobic + 2 * runs / len(peptide), 4),
                "aggregation": round(5 * hydrophobic**2 - 3 * charged + 3, 4),
                "failure_reason": "",
            }
        )
    return pd.DataFrame(rows, index=peptides.index)


def main(directory: str = "runs/ask_tell_example", rounds: int = 4) -> None:
    """Create (or continue) the campaign and run ``rounds`` rounds of ask and tell."""
    campaign = pl.Campaign.create(
        directory,
        space=pl.SequenceSpace(alphabet=AMINO_ACIDS, length=12),
        objectives=[pl.Objective("binding", "max"), pl.Objective("aggregation", "min")],
        generator=[{"kind": "genetic", "pool_size": 128}, {"kind": "random", "pool_size": 64}],
        batch_size=8,
        seed=0,
        proxy={"kernel": "kmer"},  # MinMax on k-mer counts: fast exact fit (auto picks it too)
        acquisition={"mc_samples": 32},
        exist_ok=True,  # a second run continues the campaign
    )
    if campaign.measurements().empty:
        # measurements the team already has: rows name their candidate, no id needed
        rng = random.Random(0)
        known = pd.Series(["".join(rng.choice(AMINO_ACIDS) for _ in range(12)) for _ in range(10)])
        campaign.tell(pd.concat([known.rename("candidate"), assay(known)], axis=1))

    for _ in range(rounds):
        batch = campaign.ask()  # candidate_id, candidate, generator, acquisition, predictions
        results = pd.concat([batch[["candidate_id"]], assay(batch["candidate"])], axis=1)
        campaign.tell(results)
        print(f"round {batch['round'].iloc[0]}: hypervolume {campaign.hypervolume():.4g}")

    history = campaign.history()
    print(history[["round", "hypervolume", "n_pareto", "n_observations"]].to_string(index=False))
    print(campaign.pareto_front().to_string(index=False))
    first, last = history["hypervolume"].iloc[0], history["hypervolume"].iloc[-1]
    print(f"hypervolume: {first:.4g} -> {last:.4g} over {len(history)} round(s); campaign in {directory}")


if __name__ == "__main__":
    main(*sys.argv[1:2], *[int(n) for n in sys.argv[2:3]])
