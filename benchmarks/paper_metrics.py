"""Metrics of the MOGFN paper's evaluation (Jain et al. 2023, sec. 5), used by the
benchmarks only: R2, top-k reward and diversity, and recovery of an enumerated front."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from torch import Tensor

__all__ = ["front_recovery", "r2_indicator", "top_k_diversity", "top_k_reward"]


def _finite(Y: Tensor) -> Tensor:
    Y = torch.as_tensor(Y, dtype=torch.double)
    if Y.ndim != 2:
        raise ValueError(f"expected an n x m array of objective values, got shape {tuple(Y.shape)}")
    return Y.detach().cpu()


def r2_indicator(Y: Tensor, weights: Tensor, utopian: Tensor) -> float:
    """R2 indicator (lower is better): ``mean_w min_y max_i w_i |u_i - y_i|`` over a fixed
    weight set ``k x m`` and utopian point ``u`` (Brockhoff et al. 2012; the metric of
    Jain et al. 2023, sec. 5)."""
    values = _finite(Y)
    if len(values) == 0:
        return float("inf")
    weights = torch.as_tensor(weights, dtype=torch.double)
    gap = (torch.as_tensor(utopian, dtype=torch.double) - values).abs()  # n x m
    return float((weights[:, None, :] * gap[None]).max(-1).values.min(-1).values.mean())


def _top_k(Y: Tensor, preferences: Tensor, k: int) -> tuple[Tensor, Tensor]:
    scores = torch.as_tensor(preferences, dtype=torch.double) @ _finite(Y).T  # p x n
    top = scores.topk(min(k, scores.shape[1]), dim=1)
    return top.values, top.indices


def top_k_reward(Y: Tensor, preferences: Tensor, k: int = 10) -> float:
    """Mean weighted-sum reward of the ``k`` best candidates for each preference, averaged
    over preferences ``p x m`` (Jain et al. 2023, sec. 5.2)."""
    if len(Y) == 0:
        return float("nan")
    values, _ = _top_k(Y, preferences, k)
    return float(values.mean())


def top_k_diversity(candidates: Sequence[str], Y: Tensor, preferences: Tensor, k: int = 10) -> float:
    """Mean pairwise edit distance among the ``k`` best candidates for each preference,
    averaged over preferences (Jain et al. 2023, sec. 5.2)."""
    if len(candidates) < 2:
        return 0.0
    _, indices = _top_k(Y, preferences, k)
    totals = []
    for row in indices.tolist():
        chosen = [candidates[i] for i in row]
        distances = cdist(chosen, chosen, scorer=Levenshtein.distance)
        n = len(chosen)
        totals.append(distances.sum() / (n * (n - 1)))
    return float(np.mean(totals))


def front_recovery(found: Tensor, true_front: Tensor, atol: float = 1e-9) -> float:
    """Fraction of the points of an enumerated true Pareto front ``t x m`` that appear
    among ``found`` objective vectors ``n x m``."""
    true_front = torch.as_tensor(true_front, dtype=torch.double)
    found = torch.as_tensor(found, dtype=torch.double)
    if len(true_front) == 0:
        raise ValueError("the true Pareto front is empty")
    if len(found) == 0:
        return 0.0
    hit = (torch.cdist(true_front, found) <= atol).any(-1)
    return float(hit.double().mean())
