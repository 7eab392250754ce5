"""Fast exact fitting of GPs whose kernel has no hyperparameters but a scale.

With ``k = s * k0`` (``k0`` fixed, e.g. MinMax on fingerprints), a constant mean ``c`` and
Gaussian noise ``v``, one eigendecomposition ``K0 = Q diag(l) Q^T`` of the training kernel
matrix gives the exact log marginal likelihood (Rasmussen & Williams 2006, eq. 2.30) for
any ``(c, s, v)`` in O(n):

    log p(y) = -1/2 sum_i r_i^2 / (s l_i + v) - 1/2 sum_i log(s l_i + v) - n/2 log(2 pi),
    r = Q^T (y - c 1).

With known per-point noise ``D`` (replicates; a fixed-noise likelihood) the same holds after
whitening: ``s K0 + D = D^(1/2) (s A + I) D^(1/2)`` with ``A = D^(-1/2) K0 D^(-1/2) =
Q diag(l) Q^T``, so ``log p(y) = -1/2 sum_i r_i^2 / (s l_i + 1) - 1/2 sum_i log(s l_i + 1)
- 1/2 log det D - n/2 log(2 pi)`` with ``r = Q^T D^(-1/2) (y - c 1)`` (one eigendecomposition
per objective: each has its own noise).

GPyTorch's Cholesky path costs O(n^3) per optimizer step and more in its backward pass
(2,000 molecules: about 20 s per objective on one thread). Here the O(n^3) work is done
once and shared by every objective fitted on the same inputs. The optimizer, bounds,
priors and retries are BoTorch's (``fit_gpytorch_mll`` with this closure), and the fitted
model is an ordinary SingleTaskGP.
"""

from __future__ import annotations

import math

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.optim.closures import ForwardBackwardClosure
from gpytorch.kernels import ScaleKernel
from gpytorch.likelihoods import FixedNoiseGaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

__all__ = ["SpectralNegativeMLL", "fit_scaled_fixed_kernel"]


class SpectralNegativeMLL:
    """``-(log p(y) + log priors) / n`` of a SingleTaskGP with a ScaleKernel over a fixed
    kernel, a ConstantMean and a Gaussian likelihood: the same value as GPyTorch's
    ExactMarginalLogLikelihood, from the eigendecomposition of the fixed kernel matrix."""

    def __init__(
        self, gp: SingleTaskGP, eigenvalues: Tensor, eigenvectors: Tensor, whitening: Tensor | None = None
    ) -> None:
        """``eigenvalues``/``eigenvectors`` of ``K0``, or of ``A = W K0 W`` when the known
        noise's ``whitening`` ``W = D^(-1/2)`` (``n``) is given."""
        if not isinstance(gp.covar_module, ScaleKernel) or not isinstance(gp.mean_module, ConstantMean):
            raise TypeError("needs a ScaleKernel covariance and a ConstantMean")
        self.gp = gp
        y = gp.train_targets
        w = torch.ones_like(y) if whitening is None else whitening
        self.whitened = whitening is not None
        self.log_det_noise = -2 * torch.log(w).sum() if self.whitened else None
        self.eigenvalues = eigenvalues.clamp_min(0)
        self.y_rotated = eigenvectors.T @ (w * y)
        self.ones_rotated = eigenvectors.T @ w

    def __call__(self) -> Tensor:
        gp = self.gp
        n = self.eigenvalues.shape[0]
        if self.whitened:
            variance = gp.covar_module.outputscale * self.eigenvalues + 1.0
        else:
            variance = gp.covar_module.outputscale * self.eigenvalues + gp.likelihood.noise.squeeze(-1)
        residual = self.y_rotated - gp.mean_module.constant * self.ones_rotated
        log_p = -0.5 * ((residual**2 / variance).sum() + variance.log().sum() + n * math.log(2 * math.pi))
        if self.log_det_noise is not None:
            log_p = log_p - 0.5 * self.log_det_noise
        for _, module, prior, closure, _ in gp.named_priors():
            log_p = log_p + prior.log_prob(closure(module)).sum()
        return -log_p / n


def fit_scaled_fixed_kernel(model: ModelListGP) -> None:
    """Fit every GP of ``model`` by exact maximum marginal likelihood (MAP with priors),
    one eigendecomposition per distinct training input (per objective with known noise)."""
    kernels: list[tuple[Tensor, Tensor]] = []
    spectra: list[tuple[Tensor, Tensor, Tensor]] = []
    for gp in model.models:
        X = gp.train_inputs[0]
        base = next((k for x, k in kernels if x.shape == X.shape and torch.equal(x, X)), None)
        if base is None:
            with torch.no_grad():
                base = gp.covar_module.base_kernel(X).to_dense()
            kernels.append((X, base))
        mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
        parameters = {name: p for name, p in mll.named_parameters() if p.requires_grad}
        if isinstance(gp.likelihood, FixedNoiseGaussianLikelihood):  # known noise: whiten
            whitening = gp.likelihood.noise.detach().squeeze(-1).rsqrt()
            eigenvalues, eigenvectors = torch.linalg.eigh(whitening[:, None] * base * whitening[None, :])
            negative_mll = SpectralNegativeMLL(gp, eigenvalues, eigenvectors, whitening)
        else:
            found = next((s for s in spectra if s[0].shape == X.shape and torch.equal(s[0], X)), None)
            if found is None:
                found = (X, *torch.linalg.eigh(base))
                spectra.append(found)
            negative_mll = SpectralNegativeMLL(gp, found[1], found[2])
        fit_gpytorch_mll(mll, closure=ForwardBackwardClosure(negative_mll, parameters))
