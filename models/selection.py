"""Fast greedy batch selection: expected hypervolume improvement (EHVI) over joint posterior
samples, with the hypervolume written as an expectation of random scalarizations.

Zhang & Golovin 2020, "Random Hypervolume Scalarizations for Provable Multi-Objective Black
Box Optimization" (ICML), Lemma 5: for a set ``Y`` above the reference point ``r`` in ``m``
maximized objectives,

    HV(Y) = c_m E_{θ ~ uniform on the positive unit sphere} [ max_{y in Y} s_θ(y)^m ],
    s_θ(y) = min_k ((y_k - r_k) / θ_k)_+,    c_m = π^{m/2} / (2^m Γ(m/2 + 1)).

So the improvement of adding ``y`` to a set whose running maxima are ``M_θ`` is
``c_m E_θ[(s_θ(y)^m - M_θ^m)_+]``, and adding a pick only raises ``M_θ``: every greedy pick
is one vectorized pass over the pool, with no box decomposition (the cost that makes
qLogNEHVI slow for three or more objectives: BoTorch rebuilds a partitioning per sample and
pick). The expectation over ``S`` joint posterior samples of the pool makes the picks of a
batch complement each other (two near-duplicates rise and fall together in every sample);
pending points are sampled jointly with the pool and count as measured in each sample, as
in qNEHVI (Daulton et al. 2021, Sec. 4). The measured front enters with its observed
values (qNEHVI integrates over their noise instead).
"""

from __future__ import annotations

import math

import torch
from botorch.models.model import Model
from botorch.sampling.get_sampler import get_sampler
from torch import Tensor

from paretolab.data.pareto import pareto_mask
from paretolab.models.feasibility import Feasibility
from paretolab.models.pool_scoring import ScoreChunks, score_here, score_in_chunks
from paretolab.models.proxies.gp import exact_gp

__all__ = [
    "JOINT_POOL",
    "SampledHVISelector",
    "expected_gains",
    "hypervolume_scalarizations",
    "positive_directions",
]

DIRECTIONS = 512
"""Scalarization directions (quasi-random); the estimator's relative error at this many is
about 1-3 % on 2-4 objectives (tests/models/test_selection.py measures it)."""

_CHUNK_ELEMENTS = 2**24
"""Most ``samples x candidates x directions`` values computed at once (64 MB in float32)."""

JOINT_POOL = 2_000
"""Most pool candidates sampled jointly. Joint samples cost O(N^3): a pool of 10,000 with 3
objectives took 160 s. A larger pool is screened first by each candidate's expected
improvement alone (independent samples from its marginal posterior, times its chance of
feasibility: O(N)); the ``JOINT_POOL`` best by that estimate are then sampled jointly for
the greedy batch. The screen is a noisy ranking that ignores how candidates and pending
points correlate: what it leaves out is what ranked below the top ``JOINT_POOL`` alone."""

SCREEN_SAMPLES, SCREEN_DIRECTIONS = 32, 128
"""Samples and directions of the screening pass: a ranking good enough to keep the best
``JOINT_POOL``, at a 16th of the full estimator's cost (the pass is linear in the pool)."""

_LAZY_BLOCK = 32
"""Candidates whose stale gains are recomputed together in the lazy greedy loop."""


def positive_directions(n: int, m: int, seed: int) -> Tensor:
    """``n x m`` directions uniform on the positive part of the unit sphere (scrambled Sobol
    normals, folded and normalized), the same for the same seed."""
    sobol = torch.quasirandom.SobolEngine(m, scramble=True, seed=seed).draw(n, dtype=torch.double)
    normal = torch.distributions.Normal(0.0, 1.0).icdf(sobol.clamp(1e-9, 1 - 1e-9)).abs()
    return normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def hypervolume_scalarizations(Y: Tensor, ref_point: Tensor, directions: Tensor) -> Tensor:
    """``s_θ(y)^m`` for values ``... x n x m`` and directions ``W x m``: ``... x n x W``
    (one objective at a time: no ``n x W x m`` intermediate)."""
    m = Y.shape[-1]
    above = (Y - ref_point).clamp_min(0.0)
    inverse = 1.0 / directions
    scalarized = above[..., 0:1] * inverse[:, 0]
    for k in range(1, m):
        scalarized = torch.minimum(scalarized, above[..., k : k + 1] * inverse[:, k])
    return scalarized.pow(m)


def _constant(m: int) -> float:
    """``c_m``: the volume of the positive part of the unit ball."""
    return math.pi ** (m / 2) / (2**m * math.gamma(m / 2 + 1))


class SampledHVISelector:
    """Greedy batch selection by sampled EHVI (see the module docstring).

    ``Y_measured`` ``n x m``: measured values in maximization space; ``ref_point`` ``m``;
    ``X_pending`` ``p x d``: candidates selected and not measured yet; ``feasibility``
    (:mod:`paretolab.models.feasibility`): in each joint sample, a candidate (or pending
    point) drawn infeasible adds nothing.
    """

    def __init__(
        self,
        model: Model,
        Y_measured: Tensor,
        ref_point: Tensor,
        *,
        n_samples: int,
        seed: int,
        X_pending: Tensor | None = None,
        n_directions: int = DIRECTIONS,
        feasibility: Feasibility | None = None,
        joint_pool: int = JOINT_POOL,
    ) -> None:
        self.model = model
        Y = Y_measured.double()
        self.front = Y[pareto_mask(Y.cpu()).to(Y.device)] if len(Y) else Y
        self.ref_point = ref_point.double().to(Y.device)
        self.n_samples = n_samples
        self.seed = seed
        self.X_pending = X_pending
        self.n_directions = n_directions
        self.feasibility = feasibility
        self.joint_pool = joint_pool

    def _samples(self, pool: Tensor) -> tuple[Tensor, Tensor]:
        """Joint posterior samples ``S x N x m`` of the pool and ``S x p x m`` of the pending."""
        pending = self.X_pending if self.X_pending is not None else pool[:0]
        X = torch.cat([pending.to(pool), pool])
        with torch.no_grad(), exact_gp():
            posterior = self.model.posterior(X)
            # quasi-random (Sobol) normals up to their 21,201 dimensions, i.i.d. beyond
            # (a pool of 10,000 with 3 objectives): BoTorch's own choice
            sampler = get_sampler(posterior, torch.Size([self.n_samples]), seed=self.seed)
            samples = sampler(posterior).double()
        if self.feasibility is not None:  # drawn apart from the objectives (other base samples)
            failed = ~self.feasibility.sample(X, self.n_samples, self.seed + 1)  # S x (p + N)
            below = self.ref_point.to(samples) - 1.0  # below the reference point: adds nothing
            samples = torch.where(failed.to(samples.device)[..., None], below, samples)
        return samples[:, len(pending) :], samples[:, : len(pending)]

    def values(self, pool: Tensor) -> Tensor:
        """Expected hypervolume improvement of each row of ``pool`` ``N x d`` alone (given
        the measured front and the pending points): the value of a batch's first pick."""
        Y_pool, Y_pending = self._samples(pool)
        unit_pool, best, directions, volume = self._start(Y_pool, Y_pending)
        return expected_gains(best, directions, unit_pool) * volume

    def _start(
        self, Y_pool: Tensor, Y_pending: Tensor, n_directions: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor, float]:
        """Pool samples in unit scale, running maxima after the front and pending points,
        the directions, and the volume one unit of gain stands for."""
        m, ref = Y_pool.shape[-1], self.ref_point.to(Y_pool)
        # 1. scale each objective by its span above the reference point: the hypervolume
        #    scales by a constant, the argmax does not move, the estimator's variance drops
        known = torch.cat([Y_pool.reshape(-1, m), Y_pending.reshape(-1, m), self.front.to(Y_pool)])
        scale = (known.amax(0) - ref).clamp_min(1e-12)
        to_unit = lambda Y: (Y - ref) / scale  # noqa: E731
        zero = torch.zeros(m, dtype=Y_pool.dtype, device=Y_pool.device)
        directions = positive_directions(n_directions or self.n_directions, m, self.seed).to(Y_pool)
        # 2. running maxima M_θ^m per sample: the measured front, then the pending points
        best = hypervolume_scalarizations(to_unit(self.front.to(Y_pool)), zero, directions)
        best = best.amax(0) if len(best) else torch.zeros(len(directions)).to(Y_pool)
        best = best.expand(Y_pool.shape[0], -1).clone()
        if Y_pending.shape[1]:
            pending = hypervolume_scalarizations(to_unit(Y_pending), zero, directions).amax(1)
            best = torch.maximum(best, pending)
        unit_pool = to_unit(Y_pool)  # double: an improvement can be 1e-6 of the volume
        return unit_pool, best, directions, _constant(m) * scale.prod().item()

    def select(
        self, pool: Tensor, q: int, *, chunk: int | None = None, score: ScoreChunks = score_here
    ) -> tuple[list[int], list[float]]:
        """Greedy batch of ``q`` distinct rows of ``pool`` ``N x d``: their indices, and the
        expected hypervolume improvement of each pick given the ones before it. The samples
        are drawn here, jointly (so the picks complement each other; a pool larger than
        ``joint_pool`` is screened first, see ``JOINT_POOL``); the first pass over the pool,
        its costliest part, runs in chunks of ``chunk`` candidates through ``score``
        (:mod:`paretolab.models.pool_scoring`)."""
        q = min(q, pool.shape[0])
        if q == 0:
            return [], []
        screened = None
        if pool.shape[0] > max(self.joint_pool, q):
            screened = self._screen(pool, max(self.joint_pool, q), chunk, score)
            pool = pool[screened]
        chosen, values = self._greedy(pool, q, chunk, score)
        return ([int(screened[i]) for i in chosen] if screened is not None else chosen), values

    def _screen(self, pool: Tensor, keep: int, chunk: int | None, score: ScoreChunks) -> Tensor:
        """Indices of the ``keep`` candidates of ``pool`` with the highest expected
        improvement alone (independent samples of each one's marginal posterior)."""
        means, stds = [], []
        with torch.no_grad(), exact_gp():
            for part in pool.split(self.joint_pool):  # bounded memory: part x fitted points
                posterior = self.model.posterior(part)
                means.append(posterior.mean.double())
                stds.append(posterior.variance.double().clamp_min(0.0).sqrt())
        mean, std = torch.cat(means), torch.cat(stds)
        n = min(self.n_samples, SCREEN_SAMPLES)
        if self.X_pending is not None and len(self.X_pending):
            Y_pending = self._samples(pool[:0])[1][:n]
        else:
            Y_pending = mean.new_zeros(n, 0, mean.shape[-1])
        normal = torch.Generator().manual_seed(self.seed)
        draws = torch.randn((n, *mean.shape), generator=normal, dtype=torch.double).to(mean.device)
        unit_pool, best, directions, _ = self._start(mean + std * draws, Y_pending, SCREEN_DIRECTIONS)
        gains = score_in_chunks(
            expected_gains, unit_pool, (best, directions), chunk=chunk, score=score, dim=1
        )
        if self.feasibility is not None:  # independent of the objectives: E[gain] P(feasible)
            gains = gains * self.feasibility.probability(pool).to(gains)
        return torch.argsort(gains, descending=True, stable=True)[:keep].sort().values

    def _greedy(
        self, pool: Tensor, q: int, chunk: int | None, score: ScoreChunks
    ) -> tuple[list[int], list[float]]:
        Y_pool, Y_pending = self._samples(pool)
        unit_pool, best, directions, volume = self._start(Y_pool, Y_pending)
        zero = torch.zeros(Y_pool.shape[-1], dtype=Y_pool.dtype, device=Y_pool.device)
        # 3. lazy greedy (Minoux 1978): hypervolume improvement is submodular, so a gain
        #    computed before a pick bounds the gain after it; only candidates whose bound
        #    beats the best recomputed gain are computed again
        bound = score_in_chunks(
            expected_gains, unit_pool, (best, directions), chunk=chunk, score=score, dim=1
        )
        chosen: list[int] = []
        values: list[float] = []
        for _ in range(q):
            bound[chosen] = -math.inf
            fresh = (
                torch.zeros_like(bound, dtype=torch.bool)
                if chosen
                else torch.ones_like(bound, dtype=torch.bool)
            )
            while True:
                order = torch.argsort(bound, descending=True, stable=True)
                top = order[0]
                if fresh[top] or bound[top] == -math.inf:  # a pick, or nothing left to pick
                    break
                stale = order[:_LAZY_BLOCK][~fresh[order[:_LAZY_BLOCK]]]
                stale = stale[bound[stale] > -math.inf]
                bound[stale] = expected_gains(best, directions, unit_pool[:, stale])
                fresh[stale] = True
            if bound[top] == -math.inf:  # every candidate is picked
                break
            pick = int(top)
            chosen.append(pick)
            values.append(float(bound[pick]) * volume)
            picked = hypervolume_scalarizations(unit_pool[:, pick : pick + 1], zero, directions)[:, 0]
            best = torch.maximum(best, picked)
        return chosen, values


def expected_gains(best: Tensor, directions: Tensor, unit_pool: Tensor) -> Tensor:
    """``E_samples E_θ[(s_θ(y)^m - M_θ^m)_+]`` for each candidate of ``unit_pool``
    ``S x N x m`` (unit scale) given running maxima ``best`` ``S x W``, in pieces of
    bounded memory; a pool chunk's task."""
    S, N, m = unit_pool.shape
    piece = max(1, _CHUNK_ELEMENTS // (S * len(directions)))
    zero = torch.zeros(m, dtype=unit_pool.dtype, device=unit_pool.device)
    gains = []
    for start in range(0, N, piece):
        part = hypervolume_scalarizations(unit_pool[:, start : start + piece], zero, directions)
        gains.append((part - best[:, None, :]).clamp_min(0.0).mean(dim=(0, 2)))
    return torch.cat(gains) if gains else unit_pool.new_zeros(0)
