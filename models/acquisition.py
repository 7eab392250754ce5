"""Batch acquisition over a discrete pool: qLogNEHVI with the campaign's reference point.

qLogNEHVI (Ament et al. 2023, "Unexpected Improvements to Expected Improvement for
Bayesian Optimization", NeurIPS) is BoTorch's recommended multi-objective acquisition;
the batch is picked greedily (sequential conditioning on pending points), as BoTorch's
``optimize_acqf_discrete`` does, with the pool scored in chunks that may run elsewhere.
"""

from __future__ import annotations

from typing import Literal

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.multi_objective.logei import (
    qLogNoisyExpectedHypervolumeImprovement,
)
from botorch.models.model import Model
from botorch.sampling import SobolQMCNormalSampler
from pydantic import Field
from torch import Tensor

from paretolab.data.strict import Strict
from paretolab.models.feasibility import Feasibility, FeasibilityWeighted
from paretolab.models.pool_scoring import ScoreChunks, score_here, score_in_chunks
from paretolab.models.proxies.gp import exact_gp
from paretolab.models.selection import SampledHVISelector

__all__ = ["AcquisitionConfig", "Selector", "acquisition_values", "build_qlognehvi", "select_batch"]

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


MAX_BATCH_SIZE = 512
"""Candidates whose acquisition is evaluated together (bounds the memory of one evaluation)."""


def acquisition_values(acqf: AcquisitionFunction, X: Tensor) -> Tensor:
    """The acquisition of each row of ``X`` ``N x d`` as a batch of one (given the
    function's pending points), in groups of :data:`MAX_BATCH_SIZE`; a chunk's task."""
    with torch.no_grad(), exact_gp():
        return torch.cat([acqf(part.unsqueeze(-2)) for part in X.split(MAX_BATCH_SIZE)])


def select_batch(
    acqf: Selector,
    pool: Tensor,
    q: int,
    *,
    chunk: int | None = None,
    score: ScoreChunks = score_here,
) -> tuple[list[int], list[float]]:
    """Greedy batch of ``q`` distinct rows of ``pool`` ``N x d``: their indices and values.

    Each value is the acquisition of that pick given the ones before it. Every pick scores
    the pool in chunks of ``chunk`` rows through ``score``
    (:mod:`paretolab.models.pool_scoring`). For a BoTorch acquisition this is
    ``optimize_acqf_discrete``'s sequential greedy loop (each pick becomes a pending
    point of the next), with its chunks taken out where a hook can send them elsewhere.
    """
    if isinstance(acqf, SampledHVISelector):
        return acqf.select(pool, q, chunk=chunk, score=score)
    q = min(q, pool.shape[0])
    base_pending = acqf.X_pending
    indices: list[int] = []
    values: list[float] = []
    if q == 0:
        return [], []
    available = torch.ones(pool.shape[0], dtype=torch.bool)
    try:
        for k in range(q):
            scores = score_in_chunks(acquisition_values, pool, (acqf,), chunk=chunk, score=score).cpu()
            left = available.nonzero().flatten()
            best = int(left[torch.argmax(scores[left])])  # the first of equals, as BoTorch's
            indices.append(best)
            values.append(float(scores[best]))
            available[best] = False
            if k + 1 < q:  # the next pick conditions on this one
                picked = pool[indices]
                acqf.set_X_pending(picked if base_pending is None else torch.cat([base_pending, picked]))
    finally:
        if q > 1:
            acqf.set_X_pending(base_pending)
    return indices, values
