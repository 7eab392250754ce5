"""The benchmark-only metrics of the MOGFN paper (benchmarks/paper_metrics.py)."""

import sys
from pathlib import Path

import pytest
import torch

from paretolab.models.generators.gflownet import simplex_grid

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from paper_metrics import front_recovery, r2_indicator, top_k_diversity, top_k_reward


def test_r2_indicator_prefers_points_near_the_utopian_point():
    weights = simplex_grid(2, 10)
    utopian = torch.ones(2)
    assert r2_indicator(torch.tensor([[1.0, 1.0]]), weights, utopian) == 0.0
    near = r2_indicator(torch.tensor([[0.9, 0.9]]), weights, utopian)
    far = r2_indicator(torch.tensor([[0.5, 0.5]]), weights, utopian)
    assert 0 < near < far
    # max_i w_i |1 - y_i| with y = (0.5, 0.5) is 0.5 * max_i w_i; its mean over the grid:
    assert far == pytest.approx(float(0.5 * weights.max(-1).values.mean()))


def test_top_k_reward_diversity_and_front_recovery():
    Y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.1, 0.1]])
    prefs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert top_k_reward(Y, prefs, k=1) == pytest.approx(1.0)
    assert top_k_reward(Y, prefs, k=2) == pytest.approx(0.75)
    # top-2 per preference: (AAAA, AAAC) at distance 1 and (CCCC, AAAC) at distance 3
    assert top_k_diversity(["AAAA", "CCCC", "AAAC", "AACC"], Y, prefs, k=2) == pytest.approx(2.0)
    assert front_recovery(Y[:2], Y[:3]) == pytest.approx(2 / 3)
    assert front_recovery(Y[:0], Y[:3]) == 0.0
