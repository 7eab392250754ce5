"""Pictures of a campaign for people: the measured Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from data.objectives import Objective, to_max_space  # noqa: E402
from data.pareto import pareto_mask  # noqa: E402

__all__ = ["pareto_figure"]


def pareto_figure(observations: pd.DataFrame, objectives: Sequence[Objective], title: str) -> Figure:
    """Scatter of every valid measurement (raw units, coloured by round), front highlighted.

    Two objectives give one panel; more give one panel per pair (at most three).
    """
    valid = observations[observations["valid"]]
    names = [o.name for o in objectives]
    raw = torch.tensor(valid[names].to_numpy(dtype=float), dtype=torch.double).reshape(-1, len(names))
    front = pareto_mask(to_max_space(raw, objectives)).numpy() if len(raw) else []
    pairs = list(combinations(range(len(names)), 2))[:3] or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        if len(raw):
            points = ax.scatter(raw[:, i], raw[:, j], c=valid["round"], cmap="viridis", s=18, alpha=0.8)
            fx, fy = raw[front, i], raw[front, j]
            order = fx.argsort()
            ax.plot(fx[order], fy[order], "o-", color="crimson", mfc="none", ms=9, lw=1, label="Pareto front")
            ax.legend(loc="best", fontsize=8)
            fig.colorbar(points, ax=ax, label="round")
        ax.set_xlabel(f"{names[i]} ({objectives[i].direction})")
        ax.set_ylabel(f"{names[j]} ({objectives[j].direction})")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    """Free a figure's memory."""
    plt.close(fig)
