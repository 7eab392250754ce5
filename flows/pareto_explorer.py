"""The interactive Pareto front of a round: one self-contained plotly HTML page.

Hovering a point shows the candidate, its values with units, its round and the generator
that proposed it. The axes are the campaign's :class:`~paretolab.flows.plots.PlotWindow`,
so they stay put from round to round; the reference point and the region the front
dominates are drawn; each round has its own colour; the round's batch is ringed. Three or
more objectives give one panel per pair of objectives and a parallel-coordinates view.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from itertools import combinations
from math import ceil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from paretolab.data.dataset import raw_values, valid_observations
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import pareto_mask
from paretolab.flows.plots import PlotWindow, objective_label, ref_raw, round_colour, signs, staircase

__all__ = ["MAX_HOVER_CHARACTERS", "pareto_explorer_html"]

MAX_HOVER_CHARACTERS = 80
"""Longest candidate shown whole in a hover label (longer ones end in an ellipsis)."""


def _hover(rows: pd.DataFrame, objectives: Sequence[Objective], outside: np.ndarray) -> list[str]:
    texts = []
    for (_, row), beyond in zip(rows.iterrows(), outside, strict=True):
        candidate = str(row["candidate"])
        if len(candidate) > MAX_HOVER_CHARACTERS:
            candidate = candidate[: MAX_HOVER_CHARACTERS - 1] + "…"
        lines = [f"<b>{html.escape(candidate)}</b>"]
        lines += [f"{o.name}: {row[o.name]:.5g}{' ' + o.unit if o.unit else ''}" for o in objectives]
        lines.append(f"round {int(row['round'])}, proposed by {row['generator']}")
        if beyond:
            lines.append("(beyond the axes: drawn on their edge)")
        texts.append("<br>".join(lines))
    return texts


def _pairs_figure(
    rows: pd.DataFrame,
    shown: np.ndarray,
    raw: np.ndarray,
    front: np.ndarray,
    hover: list[str],
    objectives: Sequence[Objective],
    ref: np.ndarray | None,
    window: PlotWindow,
    batch_round: int,
    title: str,
) -> go.Figure:
    pairs = list(combinations(range(len(objectives)), 2))
    cols = min(len(pairs), 3)
    grid_rows = ceil(len(pairs) / cols)
    fig = make_subplots(rows=grid_rows, cols=cols, horizontal_spacing=0.08, vertical_spacing=0.12)
    sign = signs(objectives)
    rounds = rows["round"].to_numpy()
    for k, (i, j) in enumerate(pairs):
        place = {"row": k // cols + 1, "col": k % cols + 1}
        first = k == 0
        if ref is not None:
            outline = staircase(raw[front, i], raw[front, j], ref[i], ref[j], sign[i], sign[j])
            if len(outline):
                fig.add_trace(
                    go.Scatter(
                        x=outline[:, 0],
                        y=outline[:, 1],
                        fill="toself",
                        mode="lines",
                        line={"color": "crimson", "width": 1},
                        fillcolor="rgba(220,20,60,0.08)",
                        name="dominated region",
                        legendgroup="dominated",
                        showlegend=first,
                        hoverinfo="skip",
                    ),
                    **place,
                )
            fig.add_trace(
                go.Scatter(
                    x=[ref[i]],
                    y=[ref[j]],
                    mode="markers",
                    marker={"symbol": "x", "size": 11, "color": "black"},
                    name="reference point",
                    legendgroup="reference",
                    showlegend=first,
                    hovertext=[
                        "reference point<br>"
                        + "<br>".join(f"{o.name}: {v:.5g}" for o, v in zip(objectives, ref, strict=True))
                    ],
                    hoverinfo="text",
                ),
                **place,
            )
        for r in np.unique(rounds):
            at = np.flatnonzero(rounds == r)
            fig.add_trace(
                go.Scatter(
                    x=shown[at, i],
                    y=shown[at, j],
                    mode="markers",
                    marker={
                        "color": round_colour(r),
                        "size": 8,
                        "symbol": ["triangle-up" if b else "circle" for b in (shown[at] != raw[at]).any(1)],
                        "line": {"color": "black", "width": 1.5 if r == batch_round else 0},
                    },
                    name=f"round {r}" + (" (this batch)" if r == batch_round else ""),
                    legendgroup=f"round {r}",
                    showlegend=first,
                    hovertext=[hover[a] for a in at],
                    hoverinfo="text",
                ),
                **place,
            )
        fig.add_trace(
            go.Scatter(
                x=shown[front, i],
                y=shown[front, j],
                mode="markers",
                marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": "crimson", "width": 2}},
                name="Pareto front",
                legendgroup="front",
                showlegend=first,
                hoverinfo="skip",
            ),
            **place,
        )
        fig.update_xaxes(
            title_text=objective_label(objectives[i]),
            range=sorted(window.ranges[i]),
            autorange=False,
            **place,
        )
        fig.update_yaxes(
            title_text=objective_label(objectives[j]),
            range=sorted(window.ranges[j]),
            autorange=False,
            **place,
        )
    fig.update_layout(
        title=title,
        height=430 * grid_rows,
        hovermode="closest",
        template="plotly_white",
    )
    return fig


def _parallel_figure(
    rows: pd.DataFrame, shown: np.ndarray, objectives: Sequence[Objective], window: PlotWindow
) -> go.Figure:
    rounds = rows["round"].to_numpy()
    last = int(rounds.max()) if len(rounds) else 0
    # a discrete colour scale: round r is one flat band of the scale
    scale = []
    for r in range(last + 1):
        scale += [[r / (last + 1), round_colour(r)], [(r + 1) / (last + 1), round_colour(r)]]
    figure = go.Figure(
        go.Parcoords(
            line={"color": rounds + 0.5, "colorscale": scale, "cmin": 0, "cmax": last + 1},
            dimensions=[
                {"label": objective_label(o), "values": shown[:, k], "range": sorted(window.ranges[k])}
                for k, o in enumerate(objectives)
            ],
        )
    )
    figure.update_layout(
        title="Every measured candidate across the objectives (colour: round; drag an axis to filter)",
        height=420,
        template="plotly_white",
    )
    return figure


def pareto_explorer_html(
    observations: pd.DataFrame,
    batches: pd.DataFrame,
    objectives: Sequence[Objective],
    *,
    ref_point: Sequence[float] | None,
    window: PlotWindow,
    batch_round: int,
    title: str,
) -> str:
    """A self-contained HTML page (plotly.js inlined: it renders offline, e.g. inside the
    MLflow UI) of the measured candidates in ``observations``; ``batches`` says which
    generator proposed each; ``ref_point`` is in max space; ``batch_round``'s batch is
    ringed."""
    valid = valid_observations(observations)
    proposer = batches.drop_duplicates("candidate", keep="last").set_index("candidate")["generator"]
    valid = valid.assign(generator=valid["candidate"].map(proposer).fillna("told").to_numpy())
    raw = raw_values(valid, objectives).numpy()
    front = pareto_mask(to_max_space(raw_values(valid, objectives), objectives)).numpy().astype(bool)
    shown, outside = window.clip(raw)
    hover = _hover(valid, objectives, outside)
    ref = ref_raw(ref_point, objectives) if ref_point is not None else None
    figures = []
    if len(objectives) >= 2:
        figures.append(
            _pairs_figure(valid, shown, raw, front, hover, objectives, ref, window, batch_round, title)
        )
    if len(objectives) >= 3 or len(objectives) == 1:
        figures.append(_parallel_figure(valid, shown, objectives, window))
    parts = [
        figure.to_html(
            full_html=False,
            include_plotlyjs=(k == 0),
            default_width="100%",
            config={"displaylogo": False, "responsive": True},
        )
        for k, figure in enumerate(figures)
    ]
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif'>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
