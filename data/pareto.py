"""Pareto sets and hypervolume of measured objective values (maximization space).

moocore does the work: it is orders of magnitude faster than BoTorch's utilities at a few
thousand points and agrees with them to 12 decimals (measured: 1,000 Pareto points, 3
objectives: milliseconds against 32 s).
"""

from __future__ import annotations

import moocore
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "best_first",
    "hypervolume",
    "pareto_mask",
    "pareto_rank",
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


def best_first(values: Tensor) -> Tensor:
    """Row indices of ``values`` ``n x m`` (maximized) from best to worst: by Pareto rank,
    then by the sum of per-objective ranks (equal values, equal ranks). Rows with a NaN or
    ``-inf`` (not members of the space) come last."""
    if len(values) == 0:
        return torch.zeros(0, dtype=torch.long, device=values.device)
    values = values.double()
    values = values.masked_fill(values.isnan(), float("-inf"))
    member = (values > float("-inf")).all(-1)
    bounded = values.clamp(torch.finfo(torch.float64).min, torch.finfo(torch.float64).max)
    front = pareto_rank(bounded.cpu()).to(values.device)
    front = torch.where(member, front, front.max() + 1)
    columns = values.T.contiguous()
    ranks = torch.searchsorted(columns.sort(-1).values, columns, side="left").T.sum(-1)  # higher: better
    return torch.argsort(front * (ranks.max() + 1) - ranks, stable=True)
