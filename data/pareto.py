"""Pareto sets and hypervolume of measured objective values (maximization space).

moocore does the work: it is orders of magnitude faster than BoTorch's utilities at a few
thousand points and agrees with them to 12 decimals (../shared/STACK.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
import torch
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from torch import Tensor

__all__ = [
    "front_recovery",
    "hypervolume",
    "infer_ref_point",
    "pareto_mask",
    "pareto_rank",
    "r2_indicator",
    "top_k_diversity",
    "top_k_reward",
]


def _finite(Y: Tensor) -> np.ndarray:
    Y = torch.as_tensor(Y, dtype=torch.double)
    if Y.ndim != 2:
        raise ValueError(f"expected an n x m array of objective values, got shape {tuple(Y.shape)}")
    return Y.detach().cpu().numpy()


def pareto_mask(Y: Tensor) -> Tensor:
    """Boolean mask ``n`` of the non-dominated rows of ``Y`` (``n x m``, maximized)."""
    values = _finite(Y)
    if len(values) == 0:
        return torch.zeros(0, dtype=torch.bool)
    return torch.from_numpy(moocore.is_nondominated(values, maximise=True))


def pareto_rank(Y: Tensor) -> Tensor:
    """Non-dominated sorting rank of each row (0 = on the front), ``n`` long."""
    values = _finite(Y)
    if len(values) == 0:
        return torch.zeros(0, dtype=torch.long)
    # moocore ranks minimization problems; negating maximizes.
    return torch.from_numpy(moocore.pareto_rank(-values)).to(torch.long)


def hypervolume(Y: Tensor, ref_point: Tensor) -> float:
    """Hypervolume dominated by the rows of ``Y`` above ``ref_point`` (maximized)."""
    values = _finite(Y)
    ref = torch.as_tensor(ref_point, dtype=torch.double).cpu().numpy()
    if values.shape[1:] != ref.shape:
        raise ValueError(f"reference point has {ref.shape[0]} values, Y has {values.shape[1]} objectives")
    above = values[(values > ref).all(axis=1)]
    if len(above) == 0:
        return 0.0
    return float(moocore.hypervolume(above, ref=ref, maximise=True))


def infer_ref_point(Y: Tensor) -> Tensor:
    """Reference point ``m`` inferred from the Pareto front of ``Y`` with BoTorch's rule.

    Called once per campaign on the initial design; the result is stored so hypervolumes
    compare across rounds and runs.
    """
    Y = torch.as_tensor(Y, dtype=torch.double)
    if len(Y) == 0:
        raise ValueError("cannot infer a reference point without any finite measurement")
    return infer_reference_point(Y[pareto_mask(Y)])


def r2_indicator(Y: Tensor, weights: Tensor, utopian: Tensor) -> float:
    """R2 indicator (lower is better): ``mean_w min_y max_i w_i |u_i - y_i|`` over a fixed
    weight set ``k x m`` and utopian point ``u`` (Brockhoff et al. 2012; the metric of
    Jain et al. 2023, sec. 5)."""
    values = torch.as_tensor(_finite(Y))
    if len(values) == 0:
        return float("inf")
    weights = torch.as_tensor(weights, dtype=torch.double)
    gap = (torch.as_tensor(utopian, dtype=torch.double) - values).abs()  # n x m
    return float((weights[:, None, :] * gap[None]).max(-1).values.min(-1).values.mean())


def _top_k(Y: Tensor, preferences: Tensor, k: int) -> tuple[Tensor, Tensor]:
    scores = torch.as_tensor(preferences, dtype=torch.double) @ torch.as_tensor(_finite(Y)).T  # p x n
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
