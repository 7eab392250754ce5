"""The reference-point policy of a campaign: where hypervolume is measured from when the
config and the oracle give no point. Science, not bookkeeping: the engine fixes the point
once per campaign (``paretolab.flows.engine.reference_point``) with this rule."""

from __future__ import annotations

import torch
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from torch import Tensor

from paretolab.data.pareto import pareto_mask

__all__ = ["infer_ref_point"]


def infer_ref_point(Y: Tensor) -> Tensor:
    """Reference point ``m`` inferred from the Pareto front of ``Y`` with BoTorch's rule.

    Called once per campaign on the initial design; the result is stored so hypervolumes
    compare across rounds and runs.
    """
    Y = torch.as_tensor(Y, dtype=torch.double)
    if len(Y) == 0:
        raise ValueError("cannot infer a reference point without any finite measurement")
    return infer_reference_point(Y[pareto_mask(Y)])
