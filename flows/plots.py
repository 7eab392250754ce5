"""Pictures of a campaign for people: the measured Pareto front, and its molecules."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import pandas as pd
from matplotlib.figure import Figure
from PIL.Image import Image
from rdkit import Chem
from rdkit.Chem import Draw

from paretolab.data.dataset import raw_values, valid_observations
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import pareto_mask

__all__ = ["MAX_GRID_MOLECULES", "molecule_grid", "pareto_figure"]

MAX_GRID_MOLECULES = 48
"""Most molecules drawn in one grid image (the best by the first objective)."""


def pareto_figure(observations: pd.DataFrame, objectives: Sequence[Objective], title: str) -> Figure:
    """Scatter of every measured candidate's current value (raw units, coloured by round;
    replicates averaged, replaced values left out), front highlighted: the points of
    :func:`~paretolab.data.dataset.pareto_rows`.

    Two objectives give one panel; more give one panel per pair (at most three). Built
    without pyplot, so it is safe off the main thread and needs no explicit close.
    """
    valid = valid_observations(observations)
    names = [o.name for o in objectives]
    raw = raw_values(valid, objectives)
    front = pareto_mask(to_max_space(raw, objectives)).numpy()
    pairs = list(combinations(range(len(names)), 2))[:3] or [(0, 0)]
    fig = Figure(figsize=(5.6 * len(pairs), 4.4), dpi=90)  # fixed layout: 2x faster than "tight"
    fig.subplots_adjust(left=0.14 / len(pairs), right=0.98, bottom=0.13, top=0.88, wspace=0.3)
    axes = fig.subplots(1, len(pairs), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        if len(raw):
            points = ax.scatter(raw[:, i], raw[:, j], c=valid["round"], cmap="viridis", s=18, alpha=0.8)
            fx, fy = raw[front, i], raw[front, j]
            order = fx.argsort()
            # a 2-D front is a staircase worth joining; a projection of a higher one is not
            style = "o-" if len(names) == 2 else "o"
            ax.plot(fx[order], fy[order], style, color="crimson", mfc="none", ms=9, lw=1)
            ax.lines[-1].set_label("Pareto front")
            ax.legend(loc="best", fontsize=8)
            fig.colorbar(points, ax=ax, label="round")
        ax.set_xlabel(f"{names[i]} ({objectives[i].direction})")
        ax.set_ylabel(f"{names[j]} ({objectives[j].direction})")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def molecule_grid(front: pd.DataFrame, objectives: Sequence[Objective], per_row: int = 4) -> Image:
    """RDKit drawing of Pareto molecules (``candidate`` = SMILES), each labelled with its
    objective values; at most ``MAX_GRID_MOLECULES``, the best by the first objective."""
    first = objectives[0]
    rows = front.sort_values(first.name, ascending=first.direction == "min").head(MAX_GRID_MOLECULES)
    legends = [" ".join(f"{o.name} {row[o.name]:.3g}" for o in objectives) for _, row in rows.iterrows()]
    molecules = [Chem.MolFromSmiles(s) for s in rows["candidate"]]
    return Draw.MolsToGridImage(molecules, molsPerRow=per_row, subImgSize=(300, 260), legends=legends)
