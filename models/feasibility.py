"""Where not to look: a model of which candidates the oracle can measure at all.

Candidates that came back failed (they did not fold, express or dissolve; a simulator found
them infeasible) teach the campaign as much as measured ones. Two models, chosen by the
space's features (:func:`fit_feasibility`):

- :class:`WordFeasibility`, for sequences (words: the letter pairs) and molecules (words:
  the fingerprint's substructures). A candidate fails when it holds a bad word, the
  noisy-OR of its words (Pearl 1988, ch. 4.3.2). A word in a measured candidate is good; of
  the others each is bad with one probability ``rho``, so
  ``P(feasible | x) = (1 - rho)^u(x)`` with ``u(x)`` the words of ``x`` no measured
  candidate holds. ``rho`` is fitted by maximum likelihood on the campaign's own
  candidates, each scored against the words of the others. Local incompatibilities (a
  banned pair of residues, an unstable group) are what this captures and what a smooth
  kernel misses: on the Ehrlich task a GP on the measured/failed labels ranked held-out
  candidates no better than chance (AUC 0.50) where this model reached 0.99.
- :class:`LatentFeasibility`, elsewhere (grids): a GP with the proxy's kernel on the label
  ``+1`` measured / ``-1`` failed (least-squares classification, Rasmussen & Williams
  2006, sec. 6.5), feasible where its latent ``c(x) > 0``: ``P = Phi(mu / sigma)``.

Both give ``P(feasible | x)``, the probability-of-feasibility factor of constrained Bayesian
optimization (Gardner et al. 2014, "Bayesian optimization with inequality constraints",
ICML), and joint draws of which candidates are feasible for sample-based selection.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models.model import Model
from botorch.sampling.get_sampler import get_sampler
from torch import Tensor

from paretolab.data.spaces import MoleculeSpace, SearchSpace, SequenceSpace
from paretolab.models.proxies.gp import KernelName, exact_gp, fit_gp_proxy
from paretolab.models.proxies.kernels import kmer_counts

__all__ = [
    "Feasibility",
    "FeasibilityWeighted",
    "LatentFeasibility",
    "WordFeasibility",
    "fit_feasibility",
    "words_of",
]


class Feasibility(ABC):
    """``P(feasible | x)`` of featurized candidates, and joint draws of feasibility."""

    @abstractmethod
    def probability(self, X: Tensor) -> Tensor:
        """``P(feasible)`` of candidates ``n x d``: ``n``."""

    @abstractmethod
    def sample(self, X: Tensor, n_samples: int, seed: int) -> Tensor:
        """Joint draws ``n_samples x n`` (bool) of which candidates are feasible."""


class LatentFeasibility(Feasibility):
    """Feasible where the latent of a GP on the labels ``+1`` / ``-1`` is positive."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def probability(self, X: Tensor) -> Tensor:
        with torch.no_grad(), exact_gp():
            posterior = self.model.posterior(X)
            mean, std = posterior.mean[..., 0], posterior.variance[..., 0].clamp_min(1e-12).sqrt()
        return torch.distributions.Normal(0.0, 1.0).cdf(mean / std)

    def sample(self, X: Tensor, n_samples: int, seed: int) -> Tensor:
        with torch.no_grad(), exact_gp():
            posterior = self.model.posterior(X)
            sampler = get_sampler(posterior, torch.Size([n_samples]), seed=seed)  # Sobol, i.i.d. past it
            return sampler(posterior)[..., 0] > 0


class WordFeasibility(Feasibility):
    """Noisy-OR over words: ``P(feasible | x) = (1 - rho)^u(x)``, ``u(x)`` the words of
    ``x`` that no measured candidate holds (see the module docstring).

    ``words``: features ``n x d`` -> word presence ``n x w`` (bool); ``W_measured``,
    ``W_failed``: the words of measured and failed candidates.
    """

    def __init__(self, words: WordsOf, W_measured: Tensor, W_failed: Tensor) -> None:
        self.words = words
        self.known_good = W_measured.any(0)
        self.rho = _fit_rho(W_measured, W_failed)

    def unknown_words(self, X: Tensor) -> Tensor:
        """``u(x)``: words of each candidate that no measured candidate holds (``n``)."""
        return (self.words(X) & ~self.known_good.to(X.device)).sum(-1)

    def probability(self, X: Tensor) -> Tensor:
        return (1.0 - self.rho) ** self.unknown_words(X).to(X.dtype)

    def sample(self, X: Tensor, n_samples: int, seed: int) -> Tensor:
        """Each draw decides which unknown words are bad (each with ``rho``); a candidate is
        feasible in it when none of its words is: candidates sharing a word fail together."""
        rng = torch.Generator().manual_seed(seed)
        unknown = (self.words(X) & ~self.known_good.to(X.device)).cpu().double()  # n x w
        bad = (torch.rand(n_samples, unknown.shape[-1], generator=rng) < self.rho).double()  # S x w
        return (bad @ unknown.T == 0).to(X.device)


class WordsOf:
    """The words of featurized candidates: letter pairs of one-hot sequences (``vocab_size``
    given) or the non-zero bits of fingerprints."""

    def __init__(self, vocab_size: int | None = None) -> None:
        self.vocab_size = vocab_size

    def __call__(self, X: Tensor) -> Tensor:
        if self.vocab_size is None:
            return X > 0
        return kmer_counts(X, self.vocab_size, 2)[:, self.vocab_size :] > 0


def words_of(space: SearchSpace) -> WordsOf | None:
    """The words of a space's features: letter pairs of sequences, fingerprint bits of
    molecules; ``None`` for grids (no words: the latent GP)."""
    if isinstance(space, SequenceSpace):
        return WordsOf(space.vocab_size)
    return WordsOf() if isinstance(space, MoleculeSpace) else None


def _fit_rho(W_measured: Tensor, W_failed: Tensor) -> float:
    """Share of bad words by maximum pseudo-likelihood (candidates scored independently, on
    the CPU: a one-dimensional search). A measured candidate's unknown words are those
    no *other* measured candidate holds (all good: ``(1 - rho)^u``); a failed one's, those
    no measured candidate holds (at least one bad: ``1 - (1 - rho)^u``). Failures with no
    unknown word are left out: no word explains them."""
    holders = W_measured.sum(0)
    u_measured = (W_measured & (holders == 1)).sum(-1).double().cpu()
    u_failed = (W_failed & (holders == 0)).sum(-1).double().cpu()
    u_failed = u_failed[u_failed > 0]
    if len(u_failed) == 0:
        return 0.0
    rho = torch.linspace(1e-4, 1 - 1e-4, 2000, dtype=torch.double)[:, None]
    keep = torch.log1p(-rho)  # log(1 - rho)
    log_lik = (u_measured.sum() * keep).squeeze(-1) + torch.log(-torch.expm1(u_failed * keep)).sum(-1)
    return float(rho[int(log_lik.argmax())])


def fit_feasibility(
    X_measured: Tensor,
    X_failed: Tensor,
    *,
    words: WordsOf | None,
    kernel: KernelName,
    vocab_size: int | None,
    rng: torch.Generator,
    holdout_fraction: float = 0.0,
    max_points: int | None = None,
) -> tuple[Feasibility | None, dict[str, float]]:
    """The feasibility model of measured ``n x d`` and failed ``f x d`` candidates, or
    ``None`` when nothing failed (nothing to learn) or nothing was measured: the word model
    where the space has ``words`` (:func:`words_of`), else a latent GP with the proxy's
    ``kernel``, past ``max_points`` candidates on a subset that keeps failed ones first
    (up to half of it; they are the rarer label)."""
    metrics = {"n_failed": float(len(X_failed))}
    if len(X_failed) == 0 or len(X_measured) == 0:
        return None, metrics
    X_failed = X_failed.to(X_measured)
    if words is not None:
        model = WordFeasibility(words, words(X_measured), words(X_failed))
        return model, metrics | {"share_of_bad_words": model.rho}
    X = torch.cat([X_measured, X_failed])
    labels = torch.cat([torch.ones(len(X_measured)), -torch.ones(len(X_failed))]).to(X)[:, None]
    gp, quality = fit_gp_proxy(
        X,
        labels,
        holdout_fraction=holdout_fraction,
        rng=rng,
        kernel=kernel,
        vocab_size=vocab_size,
        max_points=max_points,
        importance=-labels[:, 0],  # failed first
    )
    quality = {k: v for k, v in quality.items() if k not in ("n_train", "n_fitted")}
    return LatentFeasibility(gp), metrics | quality


class FeasibilityWeighted(AcquisitionFunction):
    """A log-acquisition plus ``log P(feasible)`` of each point of the batch: the
    probability-of-feasibility weighting (Gardner et al. 2014) of a log-EHVI."""

    def __init__(self, acquisition: AcquisitionFunction, feasibility: Feasibility) -> None:
        super().__init__(model=acquisition.model)
        self.acquisition = acquisition
        self.feasibility = feasibility

    def forward(self, X: Tensor) -> Tensor:
        p = self.feasibility.probability(X.reshape(-1, X.shape[-1])).reshape(X.shape[:-1])
        return self.acquisition(X) + torch.log(p.clamp_min(math.ulp(1.0))).sum(-1)

    @property
    def X_pending(self) -> Tensor | None:
        return self.acquisition.X_pending

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.acquisition.set_X_pending(X_pending)
