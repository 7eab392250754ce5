"""GP proxy: one independent BoTorch SingleTaskGP per objective (ModelListGP).

Outcomes are standardized; hyperparameters are fitted by maximum marginal likelihood
(``fit_gpytorch_mll``). Quality is measured on a held-out split before the final fit on
all the data, so the reported RMSE/NLL/Spearman are honest out-of-sample numbers.
"""

from __future__ import annotations

import math

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.mlls import SumMarginalLogLikelihood
from scipy.stats import spearmanr
from torch import Tensor

__all__ = ["MIN_POINTS_FOR_METRICS", "build_gp", "fit_gp_proxy", "heldout_metrics"]

MIN_POINTS_FOR_METRICS = 10
"""Below this many points all of them are used for fitting and no metrics are reported."""


def build_gp(X: Tensor, Y: Tensor) -> ModelListGP:
    """An unfitted ModelListGP on ``X`` ``n x d`` and ``Y`` ``n x m`` (maximized)."""
    return ModelListGP(
        *(SingleTaskGP(X, Y[:, j : j + 1], outcome_transform=Standardize(m=1)) for j in range(Y.shape[1]))
    )


def _fit(X: Tensor, Y: Tensor) -> ModelListGP:
    model = build_gp(X, Y)
    fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


def heldout_metrics(model: ModelListGP, X: Tensor, Y: Tensor) -> dict[str, float]:
    """Mean over objectives of RMSE, Gaussian NLL (with noise) and Spearman on ``X, Y``."""
    with torch.no_grad():
        posterior = model.posterior(X, observation_noise=True)
        mean, var = posterior.mean, posterior.variance.clamp_min(1e-12)
    rmse = ((mean - Y) ** 2).mean(0).sqrt()
    nll = 0.5 * (torch.log(2 * math.pi * var) + (Y - mean) ** 2 / var).mean(0)
    rho = []
    for j in range(Y.shape[1]):
        r = spearmanr(mean[:, j].cpu().numpy(), Y[:, j].cpu().numpy()).statistic
        rho.append(float(r) if r == r else 0.0)  # constant predictions give NaN: no rank skill
    return {
        "rmse": float(rmse.mean()),
        "nll": float(nll.mean()),
        "spearman": sum(rho) / len(rho),
    }


def fit_gp_proxy(
    X: Tensor, Y: Tensor, *, holdout_fraction: float, generator: torch.Generator
) -> tuple[ModelListGP, dict[str, float]]:
    """Fit the GP proxy on all of ``X, Y``; metrics come from a held-out split first."""
    n = X.shape[0]
    metrics: dict[str, float] = {"n_train": float(n)}
    n_hold = round(holdout_fraction * n)
    if n >= MIN_POINTS_FOR_METRICS and n_hold >= 2:
        order = torch.randperm(n, generator=generator).to(X.device)
        hold, train = order[:n_hold], order[n_hold:]
        metrics |= heldout_metrics(_fit(X[train], Y[train]), X[hold], Y[hold])
    return _fit(X, Y), metrics
