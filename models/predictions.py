"""The proxy's predictions for picked candidates, as the ledger records them: what the
model expected of each candidate, in the objective's own units, to compare with what the
oracle measures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from botorch.models.model import Model

from paretolab.data.objectives import Objective, to_max_space
from paretolab.models.proxies.gp import exact_gp

__all__ = ["prediction_table"]


def prediction_table(
    model: Model, X: torch.Tensor, candidates: Sequence[str], objectives: Sequence[Objective], round_: int
) -> pd.DataFrame:
    """The posterior mean and standard deviation of ``model`` at ``X`` (``n x d``, the
    features of ``candidates``), in raw units: one row per candidate and objective, with
    columns ``round, candidate, objective, mean, std``."""
    m = len(objectives)
    if not len(candidates):
        return pd.DataFrame(columns=["round", "candidate", "objective", "mean", "std"])
    with torch.no_grad(), exact_gp():
        posterior = model.posterior(X)
        mean = to_max_space(posterior.mean.double(), objectives).cpu()  # back to raw units
        std = posterior.variance.double().clamp_min(0).sqrt().cpu()
    return pd.DataFrame(
        {
            "round": round_,
            "candidate": np.repeat(list(candidates), m),
            "objective": [o.name for o in objectives] * len(candidates),
            "mean": mean.reshape(-1).numpy(),
            "std": std.reshape(-1).numpy(),
        }
    )
