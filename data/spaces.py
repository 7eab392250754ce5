"""Search spaces: how a candidate is written, checked, featurized, sampled and tokenized.

A candidate's identity is its canonical string: the store's key, the dedupe key and the
oracle's idempotency key. Generators work on token tensors (``encode``/``decode``), the
proxy on features (``featurize``), people and the store on canonical strings.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Check", "GridSpace", "SearchSpace", "SequenceSpace"]

PAD = -1
"""Token id of an empty position in an encoded batch (positions past a sequence's end)."""


@dataclass(frozen=True)
class Check:
    """Outcome of checking one candidate: its canonical string, or why it is invalid."""

    canonical: str | None
    reason: str | None = None


class SearchSpace(ABC):
    """A discrete design space.

    Tokens: a candidate is a row of at most ``max_length`` token ids in
    ``range(vocab_size)``, padded with ``PAD``; ``min_length`` bounds the unpadded length.
    """

    vocab_size: int
    min_length: int
    max_length: int

    @abstractmethod
    def check(self, x: str) -> Check:
        """Canonical form of ``x``, or the reason it is not a member of the space."""

    @abstractmethod
    def featurize(self, xs: Sequence[str]) -> Tensor:
        """Features of canonical candidates for the proxy, ``n x d`` (double)."""

    @abstractmethod
    def decode(self, tokens: Tensor) -> list[str]:
        """Canonical strings of an ``n x max_length`` token batch (``PAD`` = empty)."""

    @abstractmethod
    def encode(self, xs: Sequence[str]) -> Tensor:
        """Token batch ``n x max_length`` (long, ``PAD``-padded) of canonical candidates."""

    def featurize_tokens(self, tokens: Tensor) -> Tensor:
        """Features of an encoded batch; same as ``featurize(decode(tokens))``."""
        return self.featurize(self.decode(tokens))

    def canonicalize(self, xs: Sequence[str]) -> list[str | None]:
        """Canonical strings of ``xs``; ``None`` where a candidate is invalid."""
        return [self.check(x).canonical for x in xs]

    def sample(self, n: int, generator: torch.Generator) -> list[str]:
        """``n`` candidates drawn uniformly (per length, then per token)."""
        lengths = torch.randint(self.min_length, self.max_length + 1, (n,), generator=generator)
        tokens = torch.randint(0, self.vocab_size, (n, self.max_length), generator=generator)
        positions = torch.arange(self.max_length).expand(n, -1)
        tokens[positions >= lengths[:, None]] = PAD
        return self.decode(tokens)


class SequenceSpace(SearchSpace):
    """Strings over a character alphabet with a length in ``[min_length, max_length]``.

    Features are the one-hot encoding of each position (``max_length * |alphabet|``),
    all zeros past the end of a shorter sequence.
    """

    def __init__(self, alphabet: str, min_length: int, max_length: int) -> None:
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError(f"alphabet must be non-empty distinct characters: {alphabet!r}")
        if any(c.isspace() for c in alphabet):
            raise ValueError("alphabet must not contain whitespace")
        if not 1 <= min_length <= max_length:
            raise ValueError(f"need 1 <= min_length <= max_length, got {min_length}, {max_length}")
        self.alphabet = alphabet
        self.min_length = min_length
        self.max_length = max_length
        self.vocab_size = len(alphabet)
        self._index = {c: i for i, c in enumerate(alphabet)}

    def __repr__(self) -> str:
        return (
            f"SequenceSpace(alphabet={self.alphabet!r}, min_length={self.min_length}, "
            f"max_length={self.max_length})"
        )

    def check(self, x: str) -> Check:
        if not isinstance(x, str):
            return Check(None, f"not a string: {type(x).__name__}")
        if not self.min_length <= len(x) <= self.max_length:
            return Check(
                None,
                f"length {len(x)} outside [{self.min_length}, {self.max_length}]",
            )
        bad = sorted(set(x) - self._index.keys())
        if bad:
            return Check(None, f"characters not in the alphabet: {''.join(bad)!r}")
        return Check(x)

    def encode(self, xs: Sequence[str]) -> Tensor:
        tokens = torch.full((len(xs), self.max_length), PAD, dtype=torch.long)
        for i, x in enumerate(xs):
            tokens[i, : len(x)] = torch.tensor([self._index[c] for c in x])
        return tokens

    def decode(self, tokens: Tensor) -> list[str]:
        return ["".join(self.alphabet[t] for t in row if t != PAD) for row in tokens.tolist()]

    def featurize(self, xs: Sequence[str]) -> Tensor:
        return self.featurize_tokens(self.encode(xs))

    def featurize_tokens(self, tokens: Tensor) -> Tensor:
        n = len(tokens)
        one_hot = torch.zeros(n, self.max_length, self.vocab_size + 1, dtype=torch.double)
        one_hot.scatter_(2, (tokens + 1).unsqueeze(-1), 1.0)
        return one_hot[:, :, 1:].reshape(n, -1)


class GridSpace(SearchSpace):
    """Points of a ``dims``-dimensional grid with ``levels`` levels per coordinate.

    A candidate is written ``"i,j,..."`` (integer levels, no spaces). Features are the
    coordinates scaled to the unit cube: compact and smooth, which suits a GP.
    """

    _separator = re.compile(r"\s*,\s*")
    _level = re.compile(r"[0-9]+")

    def __init__(self, dims: int, levels: int) -> None:
        if dims < 1 or levels < 2:
            raise ValueError(f"need dims >= 1 and levels >= 2, got {dims}, {levels}")
        self.dims = dims
        self.levels = levels
        self.min_length = self.max_length = dims
        self.vocab_size = levels

    def __repr__(self) -> str:
        return f"GridSpace(dims={self.dims}, levels={self.levels})"

    def check(self, x: str) -> Check:
        if not isinstance(x, str):
            return Check(None, f"not a string: {type(x).__name__}")
        parts = self._separator.split(x.strip())
        if len(parts) != self.dims:
            return Check(None, f"expected {self.dims} comma-separated levels, got {len(parts)}")
        if not all(self._level.fullmatch(p) for p in parts):
            return Check(None, f"levels must be non-negative integers: {x!r}")
        values = [int(p) for p in parts]
        if max(values) >= self.levels:
            return Check(None, f"level {max(values)} outside [0, {self.levels - 1}]")
        return Check(",".join(map(str, values)))

    def encode(self, xs: Sequence[str]) -> Tensor:
        if not xs:
            return torch.empty(0, self.dims, dtype=torch.long)
        return torch.tensor([[int(v) for v in x.split(",")] for x in xs], dtype=torch.long)

    def decode(self, tokens: Tensor) -> list[str]:
        return [",".join(map(str, row)) for row in tokens.tolist()]

    def featurize(self, xs: Sequence[str]) -> Tensor:
        return self.unit_coordinates(self.encode(xs))

    def featurize_tokens(self, tokens: Tensor) -> Tensor:
        return self.unit_coordinates(tokens)

    def unit_coordinates(self, tokens: Tensor) -> Tensor:
        """Grid levels ``n x dims`` mapped to ``[0, 1]^dims`` (double)."""
        return tokens.to(torch.double) / (self.levels - 1)
