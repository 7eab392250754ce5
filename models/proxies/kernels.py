"""The MinMax (Tanimoto) kernel for molecular fingerprints, as a GPyTorch kernel.

``k(x, y) = sum_i min(x_i, y_i) / sum_i max(x_i, y_i)`` on non-negative count vectors
(Ralaivola et al. 2005, "Graph kernels for chemical informatics", Neural Networks 18(8),
MinMax kernel); on bit vectors it is the Tanimoto (Jaccard) similarity, the standard
kernel for GP Bayesian optimization of molecules (Griffiths et al. 2023, GAUCHE,
NeurIPS). It has no hyperparameters, so wrap it in a ScaleKernel.

On sequences the same kernel runs on k-mer counts (:func:`kmer_counts`, the spectrum
representation of Leslie et al. 2002, "The spectrum kernel", PSB): two sequences are
similar when they share short words wherever they occur, which one-hot positions miss.
The counts are computed inside the kernel from the one-hot features every other part of
the campaign uses, once per distinct row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from gpytorch.kernels import Kernel
from torch import Tensor

__all__ = ["MinMaxKernel", "kmer_counts", "minmax_similarity"]


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


def kmer_counts(one_hot: Tensor, vocab_size: int, k: int) -> Tensor:
    """Occurrences of every word of 1 to ``k`` letters, ``n x (V + V^2 + ... + V^k)``, in
    one-hot sequences ``n x (L * V)`` (a position with no letter ends the sequence).

    Word ``w_1..w_j`` is column ``offset_j + sum_i w_i V^(j - i)``, so a sequence's counts
    do not depend on its length or on where a word occurs.
    """
    n, width = one_hot.shape
    if width % vocab_size:
        raise ValueError(f"one-hot features of width {width} are not positions x {vocab_size} letters")
    positions = one_hot.reshape(n, width // vocab_size, vocab_size)
    present = positions.sum(-1) > 0  # n x L
    letters = positions.argmax(-1)  # n x L
    blocks, word, whole = [], torch.zeros_like(letters), torch.ones_like(present)
    for j in range(1, k + 1):
        # words of length j end at positions j - 1 .. L - 1
        word = word[:, :-1] * vocab_size + letters[:, j - 1 :] if j > 1 else letters
        whole = whole[:, :-1] & present[:, j - 1 :] if j > 1 else present
        counts = one_hot.new_zeros(n, vocab_size**j)
        counts.scatter_add_(1, word, whole.to(one_hot.dtype))
        blocks.append(counts)
    return torch.cat(blocks, -1)


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


Counts = Callable[[Tensor], Tensor]
"""Rows ``n x d`` -> count vectors ``n x d'`` the similarity is computed on."""


def minmax_similarity(x1: Tensor, x2: Tensor, diag: bool = False, counts: Counts | None = None) -> Tensor:
    """MinMax similarity ``... x n x m`` of count vectors ``... x n x d`` and ``... x m x d``
    (``... x n`` with ``diag``), or of ``counts(x)`` when given. Two all-zero vectors count
    as identical (similarity 1).

    Computed once per distinct row: an acquisition batch repeats the same training and
    baseline molecules in every entry.
    """
    for x in (x1, x2):
        if x.numel() == 0 and not diag:
            return x1.new_zeros(
                *torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2]), x1.shape[-2], x2.shape[-2]
            )
    if diag:
        if counts is not None:
            shape = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
            x1 = counts(x1.expand(*shape, x1.shape[-1]).reshape(-1, x1.shape[-1]))
            x2 = counts(x2.expand(*shape, x2.shape[-1]).reshape(-1, x2.shape[-1]))
            return minmax_similarity(x1, x2, diag=True).reshape(shape)
        _check_counts(x1)
        _check_counts(x2)
        return _ratio(torch.minimum(x1, x2).sum(-1), torch.maximum(x1, x2).sum(-1))
    batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    rows1, index1 = _unique_rows(_collapse_batch(x1))
    rows2, index2 = _unique_rows(_collapse_batch(x2))
    for rows in (rows1, rows2):
        _check_counts(rows)  # counts computed from checked rows need no check of their own
    if counts is not None:
        rows1, rows2 = counts(rows1), counts(rows2)
    bits1, bits2 = _threshold_bits(rows1, rows2)
    shared = (bits1 @ bits2.T).to(x1.dtype)
    union = rows1.sum(-1).unsqueeze(-1) + rows2.sum(-1).unsqueeze(-2) - shared
    similarity = _ratio(shared, union)
    pairs = similarity[index1.unsqueeze(-1), index2.unsqueeze(-2)]
    return pairs.expand(*batch, x1.shape[-2], x2.shape[-2])


class _SimilarityCache:
    """The last few similarity matrices of unbatched inputs, keyed by the inputs' content.

    Fitting a GP evaluates the kernel on the same training inputs at every optimizer step
    and for every objective, and a posterior of a list of GPs evaluates it on the same
    training + test inputs once per objective (each in a new tensor); a kernel without
    hyperparameters need not recompute it. A key is the inputs' shape, dtype, device and a
    fixed projection of their values; a hit is then checked against copies of the inputs
    the entry keeps, so it is never wrong, only a miss when in doubt. Callers get a copy of
    the cached matrix.
    """

    def __init__(self, entries: int = 3, min_size: int = 250_000) -> None:
        self.entries, self.min_size = entries, min_size
        self._items: list[tuple[tuple, Tensor, Tensor, Tensor]] = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(x: Tensor) -> tuple:
        weights = torch.linspace(1.0, 2.0, x.shape[-1], dtype=torch.float64, device=x.device)
        return (tuple(x.shape), x.dtype, str(x.device), float((x.to(torch.float64) @ weights).sum()))

    def __call__(self, x1: Tensor, x2: Tensor, counts: Counts | None = None) -> Tensor:
        if x1.dim() != 2 or x2.dim() != 2 or x1.shape[0] * x2.shape[0] < self.min_size:
            return minmax_similarity(x1, x2, counts=counts)
        key = (self._key(x1), self._key(x2), counts)
        with self._lock:
            for i, (k, kept1, kept2, value) in enumerate(self._items):
                if k == key and torch.equal(kept1, x1) and torch.equal(kept2, x2):
                    self._items.append(self._items.pop(i))
                    return value.clone()
        value = minmax_similarity(x1, x2, counts=counts)
        with self._lock:
            kept1 = x1.detach().clone()
            kept2 = kept1 if x2 is x1 else x2.detach().clone()
            self._items = [*self._items, (key, kept1, kept2, value)][-self.entries :]
        return value.clone()


_cache = _SimilarityCache()


class MinMaxKernel(Kernel):
    """MinMax similarity of count fingerprints (Tanimoto on bit fingerprints), or of the
    k-mer counts of one-hot sequences when ``kmers = (vocab_size, k)`` is given.

    Inputs must be non-negative integers (Morgan counts or bits, one-hot letters); anything
    else raises.
    """

    has_lengthscale = False

    def __init__(self, kmers: tuple[int, int] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.kmers = kmers
        self._counts = _KmerCounts(*kmers) if kmers is not None else None

    def forward(
        self, x1: Tensor, x2: Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params: object
    ) -> Tensor:
        if last_dim_is_batch:
            raise NotImplementedError("MinMaxKernel does not support last_dim_is_batch")
        if diag:
            return minmax_similarity(x1, x2, diag=True, counts=self._counts)
        return _cache(x1, x2, self._counts)


class _KmerCounts:
    """:func:`kmer_counts` for one alphabet size and ``k``; equal when those are (a cache key)."""

    def __init__(self, vocab_size: int, k: int) -> None:
        self.vocab_size, self.k = vocab_size, k

    def __call__(self, one_hot: Tensor) -> Tensor:
        return kmer_counts(one_hot, self.vocab_size, self.k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _KmerCounts) and (other.vocab_size, other.k) == (self.vocab_size, self.k)

    def __hash__(self) -> int:
        return hash((self.vocab_size, self.k))
