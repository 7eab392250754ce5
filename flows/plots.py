"""Pictures of a campaign for people: the measured Pareto front, the surrogate's record, and
the front's molecules. Static (matplotlib, for MLflow's per-step image slider); the
interactive front is :mod:`paretolab.flows.pareto_explorer`. Both draw in one
:class:`PlotWindow`, so a front keeps its axes from round to round."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL.Image import Image
from rdkit import Chem
from rdkit.Chem import Draw

from paretolab.data.dataset import raw_values, valid_observations
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import pareto_mask

__all__ = [
    "MAX_GRID_MOLECULES",
    "PlotWindow",
    "molecule_grid",
    "objective_label",
    "pareto_figure",
    "ref_raw",
    "round_colour",
    "signs",
    "staircase",
    "surrogate_figure",
]

MAX_GRID_MOLECULES = 48
"""Most molecules drawn in one grid image (the best by the first objective)."""

HEADROOM = 0.25
"""Room left beyond the best value seen, as a share of the span from the reference point,
so later rounds' better candidates fit in the same axes."""

_ROUND_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def round_colour(round_: int) -> str:
    """One discrete colour per round (ten, then repeating): a round is a category."""
    return _ROUND_COLOURS[int(round_) % len(_ROUND_COLOURS)]


def objective_label(objective: Objective) -> str:
    """``name [unit] (max)``: an axis title."""
    unit = f" [{objective.unit}]" if objective.unit else ""
    return f"{objective.name}{unit} ({objective.direction})"


@dataclass(frozen=True)
class PlotWindow:
    """Axis ranges in raw units, one ``(low, high)`` per objective, kept across rounds.

    The window spans the reference point to the best value seen plus ``HEADROOM``, so
    measurements worse than the reference point (which add no hypervolume) cannot squash
    the front into a corner; they are drawn on the window's edge. It only grows, and only
    when a round measures a value beyond it.
    """

    ranges: tuple[tuple[float, float], ...]

    @classmethod
    def fit(
        cls,
        raw: np.ndarray,
        ref_max: Sequence[float],
        objectives: Sequence[Objective],
        previous: PlotWindow | None = None,
    ) -> PlotWindow:
        """The window for raw values ``raw`` (``n x m``) and the reference point in max
        space: ``previous`` if everything fits in it, else one wide enough."""
        sign = signs(objectives)
        ref = np.asarray(ref_max, dtype=float)
        best = (raw * sign).max(0) if len(raw) else ref
        best = np.maximum(best, ref)
        if previous is not None:
            prev = np.array(previous.ranges, dtype=float) * sign[:, None]  # max space, maybe swapped
            low, high = prev.min(1), prev.max(1)
            if np.all(best <= high) and np.all(ref >= low):
                return previous
            best = np.maximum(best, high)
            ref = np.minimum(ref, low)
        span = np.where(best - ref > 0, best - ref, np.maximum(np.abs(ref), 1.0))
        low, high = ref - 0.05 * span, best + HEADROOM * span
        ranges = tuple(
            (float(lo), float(hi)) if s > 0 else (float(-hi), float(-lo))
            for lo, hi, s in zip(low, high, sign, strict=True)
        )
        return cls(ranges)

    def clip(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``raw`` moved onto the window's edges, and which rows were moved."""
        low = np.array([r[0] for r in self.ranges])
        high = np.array([r[1] for r in self.ranges])
        clipped = np.clip(raw, low, high)
        return clipped, (clipped != raw).any(1) if len(raw) else np.zeros(0, dtype=bool)

    def to_json(self) -> list[list[float]]:
        """``[[low, high], ...]``, as the run tag keeps it."""
        return [list(r) for r in self.ranges]

    @classmethod
    def from_json(cls, data: Sequence[Sequence[float]]) -> PlotWindow:
        """The window :meth:`to_json` wrote."""
        return cls(tuple((float(lo), float(hi)) for lo, hi in data))


def staircase(
    front_x: np.ndarray, front_y: np.ndarray, ref_x: float, ref_y: float, sx: float = 1.0, sy: float = 1.0
) -> np.ndarray:
    """The outline (``k x 2``) of the region that 2-D Pareto points dominate, bounded by the
    reference point, in the points' raw units; ``sx``, ``sy``: +1 for a maximized axis,
    -1 for a minimized one. Points not better than the reference point on both add nothing."""
    x, y, rx, ry = sx * front_x, sy * front_y, sx * ref_x, sy * ref_y  # max space
    keep = (x > rx) & (y > ry)
    x, y = x[keep], y[keep]
    if not len(x):
        return np.empty((0, 2))
    order = np.lexsort((-y, -x))  # best first along x (ties: best y first)
    x, y = x[order], y[order]
    # the points no other beats on both axes (a projection of a 3-D front has others)
    record = np.concatenate([[-np.inf], np.maximum.accumulate(y)[:-1]])
    x, y = x[y > record], y[y > record]
    points = [(x[0], ry), (x[0], y[0])]
    for i in range(1, len(x)):
        points += [(x[i], y[i - 1]), (x[i], y[i])]
    points += [(rx, y[-1]), (rx, ry)]
    return np.array(points) * np.array([sx, sy])


def signs(objectives: Sequence[Objective]) -> np.ndarray:
    """+1 per maximized objective, -1 per minimized one."""
    return np.array([1.0 if o.direction == "max" else -1.0 for o in objectives])


def ref_raw(ref_max: Sequence[float], objectives: Sequence[Objective]) -> np.ndarray:
    """The reference point (kept in max space) in raw units."""
    return np.asarray(ref_max, dtype=float) * signs(objectives)


def pareto_figure(
    observations: pd.DataFrame,
    objectives: Sequence[Objective],
    title: str,
    *,
    ref_point: Sequence[float] | None = None,
    window: PlotWindow | None = None,
    batch_round: int | None = None,
) -> Figure:
    """Scatter of every measured candidate's current value (raw units, one colour per
    round; replicates averaged, replaced values left out), the front highlighted: the
    points of :func:`~paretolab.data.dataset.pareto_rows`. With ``ref_point`` (max space)
    the reference point and the region the front dominates are drawn; with ``window`` the
    axes are fixed (values outside sit on its edge, as triangles); ``batch_round``'s
    candidates are ringed in black.

    Two objectives give one panel; more give one panel per pair (at most three). Built
    without pyplot, so it is safe off the main thread and needs no explicit close.
    """
    valid = valid_observations(observations)
    raw = raw_values(valid, objectives).numpy()
    front = pareto_mask(to_max_space(raw_values(valid, objectives), objectives)).numpy()
    shown, outside = window.clip(raw) if window is not None else (raw, np.zeros(len(raw), dtype=bool))
    rounds = valid["round"].to_numpy()
    pairs = list(combinations(range(len(objectives)), 2))[:3] or [(0, 0)]
    fig = Figure(figsize=(5.6 * len(pairs), 4.4), dpi=90)  # fixed layout: 2x faster than "tight"
    fig.subplots_adjust(left=0.14 / len(pairs), right=0.98, bottom=0.13, top=0.88, wspace=0.3)
    axes = fig.subplots(1, len(pairs), squeeze=False)
    ref = ref_raw(ref_point, objectives) if ref_point is not None else None
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        if ref is not None and len(raw):
            sign = signs(objectives)
            outline = staircase(raw[front, i], raw[front, j], ref[i], ref[j], sign[i], sign[j])
            if len(outline):
                ax.fill(outline[:, 0], outline[:, 1], color="crimson", alpha=0.08, lw=0)
            ax.plot([ref[i]], [ref[j]], "kx", ms=8, label="reference point")
        for r in np.unique(rounds):
            at = (rounds == r) & ~outside
            ax.scatter(shown[at, i], shown[at, j], color=round_colour(r), s=18, alpha=0.8, label=f"round {r}")
            beyond = (rounds == r) & outside
            if beyond.any():
                ax.scatter(shown[beyond, i], shown[beyond, j], color=round_colour(r), s=22, marker="^")
        if batch_round is not None:
            at = rounds == batch_round
            ax.scatter(shown[at, i], shown[at, j], s=60, facecolors="none", edgecolors="black", lw=1.2)
        if len(raw):
            fx, fy = shown[front, i], shown[front, j]
            ax.plot(fx, fy, "o", color="crimson", mfc="none", ms=9, lw=1, label="Pareto front")
        if window is not None:
            ax.set_xlim(*sorted(window.ranges[i]))
            ax.set_ylim(*sorted(window.ranges[j]))
        if i == 0 and j == 1 and len(raw):
            ax.legend(loc="best", fontsize=7, ncol=2)
        ax.set_xlabel(objective_label(objectives[i]))
        ax.set_ylabel(objective_label(objectives[j]))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def surrogate_figure(
    predictions: pd.DataFrame, measured: pd.DataFrame, objectives: Sequence[Objective], title: str
) -> tuple[Figure, dict[str, float]] | None:
    """Predicted (mean ± 2 std) against measured for the batch a round measured, one panel per
    objective, and per objective the RMSE and the share measured within 2 std of the
    prediction (``surrogate/<name>/rmse``, ``.../coverage_2sd``); ``None`` when the round
    has no measured predictions (the initial design, or nothing valid came back)."""
    valid = measured[measured["valid"].astype(bool)]
    names = [o.name for o in objectives]
    fig = Figure(figsize=(4.2 * len(objectives), 4.0), dpi=90)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.14, top=0.84, wspace=0.35)
    axes = fig.subplots(1, len(objectives), squeeze=False)[0]
    metrics: dict[str, float] = {}
    for ax, objective in zip(axes, objectives, strict=True):
        rows = predictions[predictions["objective"] == objective.name].merge(
            valid[["candidate", objective.name]], on="candidate"
        )
        rows = rows[np.isfinite(rows[objective.name].to_numpy(dtype=float))]
        if rows.empty:
            continue
        y, mean, std = (rows[c].to_numpy(dtype=float) for c in (objective.name, "mean", "std"))
        rmse = float(np.sqrt(np.mean((mean - y) ** 2)))
        coverage = float(np.mean(np.abs(mean - y) <= 2 * std))
        metrics[f"surrogate/{objective.name}/rmse"] = rmse
        metrics[f"surrogate/{objective.name}/coverage_2sd"] = coverage
        ax.errorbar(y, mean, yerr=2 * std, fmt="o", ms=4, color="#1f77b4", ecolor="#9ecae1", lw=1)
        low, high = float(min(y.min(), (mean - 2 * std).min())), float(max(y.max(), (mean + 2 * std).max()))
        ax.plot([low, high], [low, high], "--", color="grey", lw=1)
        ax.set_xlabel(f"measured {objective_label(objective)}")
        ax.set_ylabel("predicted (± 2 sd)")
        ax.set_title(f"RMSE {rmse:.3g}, within 2 sd {coverage:.0%}", fontsize=9)
        ax.grid(alpha=0.3)
    if not metrics:
        return None
    fig.suptitle(f"{title} ({', '.join(names)})")
    return fig, metrics


def molecule_grid(front: pd.DataFrame, objectives: Sequence[Objective], per_row: int = 4) -> Image:
    """RDKit drawing of Pareto molecules (``candidate`` = SMILES), each labelled with its
    objective values; at most ``MAX_GRID_MOLECULES``, the best by the first objective."""
    first = objectives[0]
    rows = front.sort_values(first.name, ascending=first.direction == "min").head(MAX_GRID_MOLECULES)
    legends = [" ".join(f"{o.name} {row[o.name]:.3g}" for o in objectives) for _, row in rows.iterrows()]
    molecules = [Chem.MolFromSmiles(s) for s in rows["candidate"]]
    return Draw.MolsToGridImage(molecules, molsPerRow=per_row, subImgSize=(300, 260), legends=legends)
