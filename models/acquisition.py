"""Batch acquisition over a discrete pool: qLogNEHVI with the campaign's reference point.

qLogNEHVI (Ament et al. 2023, "Unexpected Improvements to Expected Improvement for
Bayesian Optimization", NeurIPS) is BoTorch's recommended multi-objective acquisition;
the batch is picked greedily (sequential conditioning on pending points) by
``optimize_acqf_discrete``.
"""

from __future__ import annotations

from typing import Literal

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.multi_objective.logei import (
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.models.model import Model
from botorch.optim import optimize_acqf_discrete
from botorch.sampling import SobolQMCNormalSampler
from pydantic import Field
from torch import Tensor

from paretolab.data.strict import Strict
from paretolab.models.feasibility import Feasibility, FeasibilityWeighted
from paretolab.models.selection import SampledHVISelector

__all__ = ["AcquisitionConfig", "Selector", "build_qlognehvi", "select_batch"]

Selector = AcquisitionFunction | SampledHVISelector
"""What picks a batch: a BoTorch acquisition function (greedy over the pool) or a selector."""


class AcquisitionConfig(Strict):
    """The acquisition that picks each batch from the pool."""

    kind: Literal["qlognehvi", "sampled_hvi"] = Field(
        "qlognehvi",
        description="qlognehvi: BoTorch's qLogNEHVI; sampled_hvi: greedy EHVI over joint posterior "
        "samples by random hypervolume scalarizations (models/selection.py), seconds for 3+ objectives",
    )
    mc_samples: int = Field(128, ge=8, le=4096, description="quasi-MC samples of the posterior")


def build_qlognehvi(
    model: Model,
    X_baseline: Tensor,
    ref_point: Tensor,
    *,
    mc_samples: int,
    seed: int,
    X_pending: Tensor | None = None,
    feasibility: Feasibility | None = None,
) -> AcquisitionFunction:
    """qLogNEHVI on ``model`` with measured ``X_baseline`` ``n x d`` and a fixed ``ref_point``.

    ``ref_point`` is in maximization space; the baseline is pruned to the points that
    may be on the front, which keeps the cost per candidate low. ``X_pending`` ``p x d``
    are points selected but not yet measured: their expected improvement is conditioned
    on, so the batch complements them (Daulton et al. 2021, qNEHVI, Sec. 4). With a
    ``feasibility`` model (:mod:`paretolab.models.feasibility`) each candidate's log-EHVI
    gains ``log P(feasible)``.
    """
    acquisition = qLogNoisyExpectedHypervolumeImprovement(
        model=model,
        ref_point=ref_point.to(X_baseline).tolist(),
        X_baseline=X_baseline,
        prune_baseline=True,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples]), seed=seed),
        cache_root=True,
        X_pending=X_pending,
    )
    return acquisition if feasibility is None else FeasibilityWeighted(acquisition, feasibility)


def select_batch(
    acqf: Selector, pool: Tensor, q: int, *, max_batch_size: int = 512
) -> tuple[list[int], list[float]]:
    """Greedy batch of ``q`` distinct rows of ``pool`` ``N x d``: their indices and values.

    Each value is the acquisition of that pick given the ones before it.
    """
    if isinstance(acqf, SampledHVISelector):
        return acqf.select(pool, q)
    q = min(q, pool.shape[0])
    if q == 0:
        return [], []
    picked, values = optimize_acqf_discrete(
        acqf, q=q, choices=pool, max_batch_size=max_batch_size, unique=True
    )
    indices: list[int] = []
    for row in picked:
        matches = (pool == row).all(dim=-1).nonzero().flatten().tolist()
        indices.append(next(i for i in matches if i not in indices))
    return indices, values.tolist()
