"""The MinMax (Tanimoto) kernel for molecular fingerprints, as a GPyTorch kernel.

``k(x, y) = sum_i min(x_i, y_i) / sum_i max(x_i, y_i)`` on non-negative count vectors
(Ralaivola et al. 2005, "Graph kernels for chemical informatics", Neural Networks 18(8),
MinMax kernel); on bit vectors it is the Tanimoto (Jaccard) similarity, the standard
kernel for GP Bayesian optimization of molecules (Griffiths et al. 2023, GAUCHE,
NeurIPS). It has no hyperparameters, so wrap it in a ScaleKernel.
"""

from __future__ import annotations

import threading

import torch
from gpytorch.kernels import Kernel
from torch import Tensor

__all__ = ["MinMaxKernel", "minmax_similarity"]


def _threshold_bits(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
    """Binary ``[x >= t]`` columns for every count level ``t`` present in either input.

    For non-negative integers ``min(a, b) = sum_t [a >= t][b >= t]``, so one matrix product
    of these bits gives every ``sum_i min`` at once (exact in float32 below 2**24). Each
    level keeps only the columns that still reach it, so high levels cost little.
    """
    bits1, bits2 = [x1.new_zeros(x1.shape[0], 0)], [x2.new_zeros(x2.shape[0], 0)]
    a, b, level = x1, x2, 1
    while a.shape[-1]:
        reached1, reached2 = a >= level, b >= level
        columns = (reached1.any(0) | reached2.any(0)).nonzero().squeeze(-1)
        a, b = a[:, columns], b[:, columns]
        bits1.append(reached1[:, columns])
        bits2.append(reached2[:, columns])
        level += 1
    return torch.cat(bits1, -1).to(torch.float32), torch.cat(bits2, -1).to(torch.float32)


def _collapse_batch(x: Tensor) -> Tensor:
    """``x`` ``b x n x d`` as ``1 x n x d`` when every batch entry is the same (else ``x``).

    GPyTorch copies the training inputs into every candidate of an acquisition batch;
    computing on one copy does the work once, and the result broadcasts back.
    """
    if x.dim() > 2 and x.shape[:-2].numel() > 1:
        flat = x.reshape(-1, *x.shape[-2:])
        if torch.equal(flat, flat[:1].expand_as(flat)):
            return x[(0,) * (x.dim() - 2)].reshape(*(1,) * (x.dim() - 2), *x.shape[-2:])
    return x


def _unique_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Distinct rows ``u x d`` of ``x`` ``... x d`` and each row's index among them
    (shaped ``...``). Rows are keyed by a fixed projection and the keys verified against the
    rows, so a collision can only cost speed, never correctness."""
    rows = x.reshape(-1, x.shape[-1])
    weights = torch.randn(rows.shape[-1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weights = weights.to(x.device)
    _, inverse = torch.unique(rows.to(torch.float64) @ weights, return_inverse=True)
    positions = torch.arange(len(rows), device=x.device)
    first = positions.new_full((int(inverse.max()) + 1,), len(rows)).scatter_reduce(
        0, inverse, positions, "amin"
    )
    unique = rows[first]
    if not torch.equal(unique[inverse], rows):
        unique, inverse = rows, positions
    return unique, inverse.reshape(x.shape[:-1])


MAX_COUNT = 2**16
"""Largest count the kernel takes (a fingerprint count is far below it)."""


def _check_counts(x: Tensor) -> None:
    if (
        not bool(torch.isfinite(x).all())
        or (x < 0).any()
        or (x > MAX_COUNT).any()
        or not torch.equal(x, x.floor())
    ):
        raise ValueError(f"the MinMax kernel needs integer counts in [0, {MAX_COUNT}] (fingerprints)")


def _ratio(low: Tensor, high: Tensor) -> Tensor:
    """``sum min / sum max``; 1 where both vectors are all zero (identical)."""
    return torch.where(high > 0, low / high.clamp_min(1), torch.ones_like(high))


def minmax_similarity(x1: Tensor, x2: Tensor, diag: bool = False) -> Tensor:
    """MinMax similarity ``... x n x m`` of count vectors ``... x n x d`` and ``... x m x d``
    (``... x n`` with ``diag``). Two all-zero vectors count as identical (similarity 1).

    Computed once per distinct row: an acquisition batch repeats the same training and
    baseline molecules in every entry.
    """
    for x in (x1, x2):
        if x.numel() == 0 and not diag:
            return x1.new_zeros(
                *torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2]), x1.shape[-2], x2.shape[-2]
            )
    if diag:
        _check_counts(x1)
        _check_counts(x2)
        return _ratio(torch.minimum(x1, x2).sum(-1), torch.maximum(x1, x2).sum(-1))
    batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    rows1, index1 = _unique_rows(_collapse_batch(x1))
    rows2, index2 = _unique_rows(_collapse_batch(x2))
    for rows in (rows1, rows2):
        _check_counts(rows)
    bits1, bits2 = _threshold_bits(rows1, rows2)
    shared = (bits1 @ bits2.T).to(x1.dtype)
    union = rows1.sum(-1).unsqueeze(-1) + rows2.sum(-1).unsqueeze(-2) - shared
    similarity = _ratio(shared, union)
    pairs = similarity[index1.unsqueeze(-1), index2.unsqueeze(-2)]
    return pairs.expand(*batch, x1.shape[-2], x2.shape[-2])


class _SimilarityCache:
    """The last few similarity matrices of unbatched inputs, keyed by those inputs.

    Fitting a GP evaluates the kernel on the same training inputs at every optimizer step
    and for every objective; a kernel without hyperparameters need not recompute it. A key
    is the inputs' storage, version counter, shape and stride, and the entry holds the
    inputs, so their memory cannot be reused while it lives and any in-place change bumps
    the version. Callers get a copy of the cached matrix.
    """

    def __init__(self, entries: int = 2, min_size: int = 250_000) -> None:
        self.entries, self.min_size = entries, min_size
        self._items: list[tuple[tuple, Tensor, Tensor, Tensor]] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(x: Tensor) -> tuple:
        return (x.data_ptr(), x._version, tuple(x.shape), x.stride(), x.dtype, str(x.device))

    def __call__(self, x1: Tensor, x2: Tensor) -> Tensor:
        if x1.dim() != 2 or x2.dim() != 2 or x1.shape[0] * x2.shape[0] < self.min_size:
            return minmax_similarity(x1, x2)
        key = (self._key(x1), self._key(x2))
        with self._lock:
            for i, (k, _, _, value) in enumerate(self._items):
                if k == key:
                    self._items.append(self._items.pop(i))
                    return value.clone()
        value = minmax_similarity(x1, x2)
        with self._lock:
            self._items = [*self._items, (key, x1, x2, value)][-self.entries :]
        return value.clone()


_cache = _SimilarityCache()


class MinMaxKernel(Kernel):
    """MinMax similarity of count fingerprints (Tanimoto on bit fingerprints).

    Inputs must be non-negative integers (Morgan counts or bits); anything else raises.
    """

    has_lengthscale = False

    def forward(
        self, x1: Tensor, x2: Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params: object
    ) -> Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("MinMaxKernel does not support last_dim_is_batch")
        if diag:
            return minmax_similarity(x1, x2, diag=True)
        return _cache(x1, x2)
