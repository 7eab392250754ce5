"""The campaign's pictures: a plot window that keeps its axes from round to round, the
dominated region's outline, the surrogate's record and the interactive Pareto page."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from paretolab.data.objectives import Objective
from paretolab.flows.pareto_explorer import pareto_explorer_html
from paretolab.flows.plots import PlotWindow, pareto_figure, staircase, surrogate_figure

TWO = (Objective("yield", "max", unit="%"), Objective("cost", "min", unit="USD"))
THREE = (*TWO, Objective("purity", "max"))


def _observations(values: np.ndarray, rounds: list[int], objectives=TWO) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "round": rounds,
            "candidate": [f"C{i}<x>" for i in range(len(values))],
            "request_id": "r",
            "valid": True,
            "reason": pd.NA,
            "measured_at": "t",
        }
    )
    for k, objective in enumerate(objectives):
        frame[objective.name] = values[:, k]
    return frame


def test_the_window_keeps_its_axes_until_a_value_falls_outside():
    ref = [0.0, -10.0]  # max space: yield >= 0, cost <= 10
    first = PlotWindow.fit(np.array([[5.0, 8.0], [2.0, 4.0]]), ref, TWO)
    (y_low, y_high), (c_low, c_high) = first.ranges
    assert y_low < 0 < 5 < y_high and c_low < 4 < 10 < c_high  # reference point and best inside
    # later rounds inside the headroom, or worse than the reference point: the same axes
    assert PlotWindow.fit(np.array([[5.5, 3.5], [-50.0, 400.0]]), ref, TWO, first) is first
    # a better value beyond the window widens it, keeping what it showed
    wider = PlotWindow.fit(np.array([[20.0, 1.0]]), ref, TWO, first)
    assert wider.ranges[0][1] > 20 and wider.ranges[0][0] <= y_low and wider.ranges[1][0] < 1
    assert PlotWindow.from_json(json.loads(json.dumps(wider.to_json()))) == wider
    clipped, outside = first.clip(np.array([[-50.0, 400.0], [1.0, 5.0]]))
    assert outside.tolist() == [True, False]
    assert clipped[0].tolist() == [y_low, c_high] and clipped[1].tolist() == [1.0, 5.0]


def test_the_dominated_region_is_outlined_from_the_reference_point():
    # maximize x, minimize y; reference point (0, 10)
    outline = staircase(np.array([1.0, 3.0, 2.0]), np.array([2.0, 6.0, 9.0]), 0.0, 10.0, 1.0, -1.0)
    # (2, 9) is dominated by (3, 6) and adds no corner
    assert outline.tolist() == [[3, 10], [3, 6], [1, 6], [1, 2], [0, 2], [0, 10]]
    assert staircase(np.array([-1.0]), np.array([2.0]), 0.0, 10.0, 1.0, -1.0).shape == (0, 2)


def test_the_surrogate_record_reports_error_and_coverage():
    measured = _observations(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, np.nan]]), [1, 1, 1])
    measured.loc[2, "valid"] = False
    predictions = pd.DataFrame(
        {
            "round": 1,
            "candidate": ["C0<x>", "C0<x>", "C1<x>", "C1<x>", "C2<x>", "C2<x>"],
            "objective": ["yield", "cost"] * 3,
            "mean": [1.5, 2.0, 3.0, 7.0, 0.0, 0.0],
            "std": [0.5, 1.0, 0.1, 1.0, 1.0, 1.0],
        }
    )
    _, metrics = surrogate_figure(predictions, measured, TWO, "r1")
    assert metrics["surrogate/yield/rmse"] == pytest.approx(np.sqrt(0.25 / 2))
    assert metrics["surrogate/yield/coverage_2sd"] == 1.0
    assert metrics["surrogate/cost/rmse"] == pytest.approx(np.sqrt(9 / 2))
    assert metrics["surrogate/cost/coverage_2sd"] == 0.5  # |7 - 4| > 2 sd
    assert surrogate_figure(predictions.iloc[:0], measured, TWO, "r0") is None


def test_the_interactive_page_is_self_contained_with_hover_labels_and_every_view():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 10, size=(12, 3))
    observations = _observations(values, [0] * 6 + [1] * 6, THREE)
    batches = pd.DataFrame({"candidate": observations["candidate"][6:], "generator": "mogfn"})
    window = PlotWindow.fit(values, [0.0, -10.0, 0.0], THREE)
    page = pareto_explorer_html(
        observations, batches, THREE, ref_point=[0.0, -10.0, 0.0], window=window, batch_round=1, title="t<1>"
    )
    assert '<script src="http' not in page and "Plotly.newPlot" in page  # renders offline
    assert "<title>t&lt;1&gt;</title>" in page
    assert "C7&lt;x&gt;" in page and "proposed by mogfn" in page and "proposed by told" in page
    assert "USD" in page and "round 1 (this batch)" in page and "reference point" in page
    assert page.count("Plotly.newPlot(") == 2 and '"dimensions"' in page  # and parallel coordinates
    ranges = [json.loads(r) for r in re.findall(r'"range":(\[[-0-9.e, ]+\])', page)]
    assert sorted(window.ranges[0]) in ranges and sorted(window.ranges[1]) in ranges
    fig = pareto_figure(observations, THREE, "t", ref_point=[0.0, -10.0, 0.0], window=window, batch_round=1)
    assert len(fig.axes) == 3 and fig.axes[0].get_xlim() == tuple(sorted(window.ranges[0]))
