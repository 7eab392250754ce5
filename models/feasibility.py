"""Where not to look: a model of which candidates the oracle can measure at all.

Candidates that came back failed (they did not fold, express or dissolve; a simulator found
them infeasible) teach the campaign as much as measured ones. A GP is fitted on the label
``+1`` (measured) / ``-1`` (failed), with the proxy's kernel: least-squares classification
(Rasmussen & Williams 2006, sec. 6.5), which keeps the exact, fast fits of the proxy and
gives a Gaussian latent ``c(x)``. A candidate is feasible where ``c(x) > 0``, so

    P(feasible | x) = Phi(mu(x) / sigma(x)),

the probability-of-feasibility factor of constrained Bayesian optimization (Gardner et
al. 2014; Gelbart et al. 2014). Selection uses it as BoTorch's constrained acquisitions
do: qLogNEHVI weighs each posterior sample by the sample's feasibility (an outcome
constraint ``-c(x) <= 0``), and the sampled-HVI selector drops, in each joint sample, the
candidates whose sampled ``c`` is not positive.
"""

from __future__ import annotations

import torch
from botorch.models import ModelListGP
from botorch.models.model import Model
from torch import Tensor

from paretolab.models.proxies.gp import KernelName, exact_gp, fit_gp_proxy

__all__ = ["fit_feasibility", "probability_feasible", "with_feasibility"]


def fit_feasibility(
    X_measured: Tensor,
    X_failed: Tensor,
    *,
    kernel: KernelName,
    vocab_size: int | None,
    rng: torch.Generator,
    holdout_fraction: float = 0.0,
) -> tuple[Model | None, dict[str, float]]:
    """The feasibility GP on measured ``n x d`` and failed ``f x d`` candidates, or ``None``
    when nothing failed (there is nothing to learn) or nothing was measured. Metrics:
    ``n_failed`` and the held-out quality of the latent (as the proxy's)."""
    if len(X_failed) == 0 or len(X_measured) == 0:
        return None, {"n_failed": float(len(X_failed))}
    X = torch.cat([X_measured, X_failed.to(X_measured)])
    labels = torch.cat([torch.ones(len(X_measured)), -torch.ones(len(X_failed))]).to(X)[:, None]
    model, metrics = fit_gp_proxy(
        X, labels, holdout_fraction=holdout_fraction, rng=rng, kernel=kernel, vocab_size=vocab_size
    )
    metrics = {k: v for k, v in metrics.items() if k != "n_train"}
    return model, metrics | {"n_failed": float(len(X_failed))}


def probability_feasible(model: Model, X: Tensor) -> Tensor:
    """``P(c(x) > 0)`` for candidates ``n x d`` under the feasibility GP (``n``)."""
    with torch.no_grad(), exact_gp():
        posterior = model.posterior(X)
        mean, std = posterior.mean[..., 0], posterior.variance[..., 0].clamp_min(1e-12).sqrt()
    return torch.distributions.Normal(0.0, 1.0).cdf(mean / std)


def with_feasibility(proxy: Model, feasibility: Model) -> ModelListGP:
    """The proxy's outcomes followed by the feasibility latent as one more outcome (for
    acquisitions with an outcome constraint on it)."""
    models = proxy.models if isinstance(proxy, ModelListGP) else [proxy]
    extra = feasibility.models if isinstance(feasibility, ModelListGP) else [feasibility]
    return ModelListGP(*models, *extra)
