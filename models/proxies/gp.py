"""GP proxy: one independent BoTorch SingleTaskGP per objective (ModelListGP).

Outcomes are standardized; hyperparameters are fitted by maximum marginal likelihood
(``fit_gpytorch_mll``). Quality is measured on a held-out split before the final fit on
all the data (past ``proxy.max_points``, on a bounded subset of it: :mod:`.subset`), so
the reported RMSE/NLL/Spearman are honest out-of-sample numbers.

Kernels: ``rbf`` is BoTorch's default (RBF with a dimension-scaled lengthscale prior) for
continuous or one-hot features; ``minmax`` is the MinMax/Tanimoto kernel for fingerprints
(:mod:`models.proxies.kernels`), fitted exactly through one eigendecomposition
(:mod:`models.proxies.spectral`); ``kmer`` is the same kernel on the k-mer counts of
one-hot sequences (words of 1 to ``KMER_LENGTH`` letters), fitted the same way. GPs use
exact Cholesky solves up to ``MAX_EXACT_POINTS`` (GPyTorch's default switches to
stochastic CG above 800 points, which is neither exact nor reproducible).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import gpytorch
import torch
from botorch import settings as botorch_settings
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.kernels import ScaleKernel
from gpytorch.mlls import SumMarginalLogLikelihood
from pydantic import Field, field_validator
from scipy.stats import spearmanr
from torch import Tensor

from paretolab.data.pareto import best_first
from paretolab.data.strict import Strict
from paretolab.models.proxies.kernels import MinMaxKernel
from paretolab.models.proxies.spectral import fit_scaled_fixed_kernel
from paretolab.models.proxies.subset import bounded_subset

__all__ = [
    "ProxyConfig",
    "AUTO_MAX_POINTS",
    "MAX_EXACT_POINTS",
    "KMER_LENGTH",
    "MIN_NOISE_SHARE",
    "MIN_POINTS_FOR_METRICS",
    "KernelName",
    "build_gp",
    "exact_gp",
    "fit_gp_proxy",
    "heldout_metrics",
    "fitted_rows",
    "training_inputs",
]


class ProxyConfig(Strict):
    """The proxy model fitted each round."""

    kind: Literal["gp"] = "gp"
    kernel: Literal["auto", "rbf", "minmax", "kmer"] = Field(
        "auto",
        description=(
            "auto: minmax (Tanimoto) on fingerprints for molecules, kmer (MinMax on k-mer counts) "
            "for sequences, BoTorch's RBF for grids"
        ),
    )
    holdout_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share held out for metrics")
    max_points: int | Literal["auto"] = Field(
        "auto",
        description=(
            "past this many measured candidates the GP is fitted on a subset of this size: the "
            "best half by Pareto rank and a uniform sample of the rest (models/proxies/subset.py); "
            "the latent feasibility GP (measured and failed candidates) keeps failed ones first; "
            "auto: 500 for the rbf kernel, 2,000 for minmax and kmer (AUTO_MAX_POINTS)"
        ),
    )
    feasibility: Literal["auto", "off"] = Field(
        "auto",
        description=(
            "auto: once a measured candidate failed, a feasibility model (models/feasibility.py) "
            "weighs selection and the generators' reward by the chance of feasibility; off: never"
        ),
    )

    @field_validator("max_points")
    @classmethod
    def _at_least_two(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 2:
            raise ValueError(f"must be 'auto' or at least 2 (points to fit a GP on), got {value}")
        return value

    def max_points_for(self, kernel: KernelName) -> int:
        """The subset size past which the proxy with ``kernel`` is fitted on a subset."""
        return AUTO_MAX_POINTS[kernel] if self.max_points == "auto" else self.max_points

    @field_validator("feasibility", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """YAML reads an unquoted ``off`` as false: take it as meant."""
        return "off" if value is False else value


KernelName = Literal["rbf", "minmax", "kmer"]

KMER_LENGTH = 3
"""Longest word the ``kmer`` kernel counts (chosen by ``benchmarks/sequence_proxy.py``)."""

AUTO_MAX_POINTS: dict[str, int] = {"rbf": 500, "minmax": 2_000, "kmer": 2_000}
"""``proxy.max_points: auto`` by kernel: the most points fitted at once. Measured on one
thread (``benchmarks/proxy_scale.py``): the RBF fit (L-BFGS over Cholesky solves) took 24 s
at 1,000 points with its held-out fit and 145 s at 2,000; the MinMax/k-mer fit (one
eigendecomposition) 1.6 s at 1,000, 4.3 s at 2,000 and 34 s at 4,000."""

MAX_EXACT_POINTS = 20_000
"""Up to this many training points GPs are solved exactly (Cholesky)."""


_GP_SETTINGS = threading.RLock()
"""One GP evaluation at a time in a process: GPyTorch's and BoTorch's settings (exact solves
here; fast predictive variances inside BoTorch's ``posterior``) are process-wide switches
that each evaluation turns on and off, so two threads evaluating at once would change each
other's (generators updating side by side, several tasks on one Dask worker)."""


@contextmanager
def exact_gp() -> Iterator[None]:
    """Context in which GPyTorch solves with Cholesky up to ``MAX_EXACT_POINTS``; it holds a
    process-wide lock, so GP evaluations in other threads wait (see ``_GP_SETTINGS``)."""
    with _GP_SETTINGS, gpytorch.settings.max_cholesky_size(MAX_EXACT_POINTS):
        yield


MIN_POINTS_FOR_METRICS = 10
"""Below this many points all of them are used for fitting and no metrics are reported."""


MIN_NOISE_SHARE = 1e-4
"""Smallest noise variance a replicate estimate may give, as a share of the outcome's
variance (BoTorch's floor of a learned noise in standardized units)."""


def _single(
    X: Tensor, y: Tensor, kernel: KernelName, vocab_size: int | None, yvar: Tensor | None = None
) -> SingleTaskGP:
    if yvar is not None:  # noise the replicates show: fixed, never below BoTorch's floor
        yvar = yvar.clamp_min(MIN_NOISE_SHARE * float(y.var()) if len(y) > 1 else 1e-12)
    if kernel == "rbf":
        return SingleTaskGP(X, y, train_Yvar=yvar, outcome_transform=Standardize(m=1))
    if kernel == "kmer" and vocab_size is None:
        raise ValueError("the kmer kernel needs the alphabet size (vocab_size) of the one-hot features")
    base = MinMaxKernel(kmers=(vocab_size, KMER_LENGTH) if kernel == "kmer" else None)
    # counts are not in the unit cube, and need not be: the kernel is scale-free
    with botorch_settings.validate_input_scaling(False):
        return SingleTaskGP(
            X, y, train_Yvar=yvar, covar_module=ScaleKernel(base), outcome_transform=Standardize(m=1)
        )


def build_gp(
    X: Tensor,
    Y: Tensor,
    kernel: KernelName = "rbf",
    vocab_size: int | None = None,
    Yvar: Tensor | None = None,
) -> ModelListGP:
    """An unfitted ModelListGP on ``X`` ``n x d`` and ``Y`` ``n x m`` (maximized);
    ``vocab_size`` is the alphabet of one-hot sequence features (``kmer`` only); ``Yvar``
    ``n x m``: known noise variances (from replicates), else the noise is learned."""
    return ModelListGP(
        *(
            _single(X, Y[:, j : j + 1], kernel, vocab_size, None if Yvar is None else Yvar[:, j : j + 1])
            for j in range(Y.shape[1])
        )
    )


def _fit(
    X: Tensor, Y: Tensor, kernel: KernelName, vocab_size: int | None, Yvar: Tensor | None = None
) -> ModelListGP:
    model = build_gp(X, Y, kernel, vocab_size, Yvar)
    with exact_gp():
        if kernel in ("minmax", "kmer"):  # learned or known noise alike
            fit_scaled_fixed_kernel(model)
        else:
            fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


def heldout_metrics(model: ModelListGP, X: Tensor, Y: Tensor) -> dict[str, float]:
    """Mean over objectives of RMSE, Gaussian NLL (with noise) and Spearman on ``X, Y``."""
    with torch.no_grad(), exact_gp():
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
    X: Tensor,
    Y: Tensor,
    *,
    holdout_fraction: float,
    rng: torch.Generator,
    kernel: KernelName = "rbf",
    vocab_size: int | None = None,
    Yvar: Tensor | None = None,
    max_points: int | None = None,
    importance: Tensor | None = None,
) -> tuple[ModelListGP, dict[str, float]]:
    """Fit the GP proxy on ``X, Y`` (all of it up to ``max_points`` rows); metrics come
    from a held-out split first.
    ``vocab_size``: the alphabet of one-hot sequence features (the ``kmer`` kernel);
    ``Yvar``: known noise variances of ``Y`` (replicates), else the noise is learned.

    Past ``max_points`` rows the GP is fitted on a bounded subset (:mod:`.subset`): half the
    rows ``importance`` ranks highest (default: the best by Pareto rank, :func:`best_first`),
    half a uniform sample of the rest. The held-out split is then drawn from all rows
    (at most ``max_points`` of them), so its metrics judge the subset model on the whole
    measured space; ``n_fitted`` reports the subset's size, and :func:`fitted_rows` which
    rows it holds."""
    n = X.shape[0]
    if max_points is None or n <= max_points:
        return _fit_all(X, Y, holdout_fraction, rng, kernel, vocab_size, Yvar)

    def ranked(rows: Tensor) -> Tensor:  # importance of these rows, judged among themselves
        if importance is not None:
            return importance.cpu()[rows]
        return -torch.argsort(best_first(Y[rows.to(Y.device)])).double().cpu()  # best-first position

    metrics: dict[str, float] = {"n_train": float(n)}
    n_hold = min(round(holdout_fraction * n), max_points)
    if n_hold >= 2:
        order = torch.randperm(n, generator=rng)
        hold, rest = order[:n_hold], order[n_hold:]
        train = rest[bounded_subset(ranked(rest), max_points, rng)].to(X.device)
        hold = hold.to(X.device)
        part = _fit(X[train], Y[train], kernel, vocab_size, None if Yvar is None else Yvar[train])
        metrics |= heldout_metrics(part, X[hold], Y[hold])
    keep = bounded_subset(ranked(torch.arange(n)), max_points, rng).to(X.device)
    model = _fit(X[keep], Y[keep], kernel, vocab_size, None if Yvar is None else Yvar[keep])
    model.fitted_rows = keep.cpu()
    return model, metrics | {"n_fitted": float(len(keep))}


def _fit_all(
    X: Tensor,
    Y: Tensor,
    holdout_fraction: float,
    rng: torch.Generator,
    kernel: KernelName,
    vocab_size: int | None,
    Yvar: Tensor | None,
) -> tuple[ModelListGP, dict[str, float]]:
    n = X.shape[0]
    metrics: dict[str, float] = {"n_train": float(n)}
    n_hold = round(holdout_fraction * n)
    if n >= MIN_POINTS_FOR_METRICS and n_hold >= 2:
        order = torch.randperm(n, generator=rng).to(X.device)
        hold, train = order[:n_hold], order[n_hold:]
        part = _fit(X[train], Y[train], kernel, vocab_size, None if Yvar is None else Yvar[train])
        metrics |= heldout_metrics(part, X[hold], Y[hold])
    return _fit(X, Y, kernel, vocab_size, Yvar), metrics


def fitted_rows(model: ModelListGP) -> Tensor | None:
    """Indices of the rows of its data a proxy from :func:`fit_gp_proxy` was fitted on, or
    ``None`` when it was fitted on all of them."""
    return getattr(model, "fitted_rows", None)


def training_inputs(model: ModelListGP) -> Tensor:
    """The inputs ``n x d`` the proxy was fitted on (all measured candidates, or the bounded
    subset): the baseline an acquisition compares against."""
    return model.models[0].train_inputs[0]
