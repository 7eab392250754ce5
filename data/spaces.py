"""Search spaces: how a candidate is written, checked, featurized, sampled and tokenized.

A candidate's identity is its canonical string: the store's key, the dedupe key and the
oracle's idempotency key. Generators work on token tensors (``encode``/``decode``), the
proxy on features (``featurize``), people and the store on canonical strings.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import selfies as sf
import torch
from rdkit import Chem
from torch import Tensor

from paretolab.data.molecules import LRUCache, MoleculeFilters, MorganFingerprints, parse_smiles

__all__ = ["Check", "GridSpace", "MoleculeSpace", "SearchSpace", "SequenceSpace", "one_hot_tokens"]

logger = logging.getLogger(__name__)

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

    def valid_tokens(self, tokens: Tensor) -> Tensor:
        """Which rows of a token batch decode to members of the space (bool ``n``)."""
        return torch.ones(len(tokens), dtype=torch.bool)

    def token_names(self) -> list[str]:
        """What each token id stands for; learned generator states are only valid for it."""
        return [str(i) for i in range(self.vocab_size)]

    def canonicalize(self, xs: Sequence[str]) -> list[str | None]:
        """Canonical strings of ``xs``; ``None`` where a candidate is invalid."""
        return [self.check(x).canonical for x in xs]

    def sample(self, n: int, rng: torch.Generator) -> list[str]:
        """``n`` candidates drawn uniformly (per length, then per token)."""
        lengths = torch.randint(self.min_length, self.max_length + 1, (n,), generator=rng)
        tokens = torch.randint(0, self.vocab_size, (n, self.max_length), generator=rng)
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

    def token_names(self) -> list[str]:
        return list(self.alphabet)

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
        return one_hot_tokens(tokens, self.vocab_size)


def one_hot_tokens(tokens: Tensor, vocab_size: int) -> Tensor:
    """One-hot features ``n x (max_length * vocab_size)`` (double) of a ``PAD``-padded token
    batch; a position past the end of a row is all zeros."""
    n, length = tokens.shape
    one_hot = torch.zeros(n, length, vocab_size + 1, dtype=torch.double)
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


_TOKEN = re.compile(r"\[[^\[\]]+\]")


class MoleculeSpace(SearchSpace):
    """Single molecules written as canonical SMILES, generated as SELFIES tokens.

    Generators work on SELFIES token sequences (Krenn et al. 2020, "Self-referencing
    embedded strings", Mach. Learn.: Sci. Technol. 1 045024): every sequence decodes to a
    molecule, so no sample is wasted on an unparsable string. A candidate's identity is
    RDKit's canonical SMILES, so two SELFIES of one molecule are one candidate.

    A molecule is a member when RDKit parses and sanitizes it, it is one fragment, it
    passes ``filters``, and its SELFIES has at most ``max_length`` tokens, all in the
    alphabet. The alphabet is the set of SELFIES tokens of the seed molecules that are
    members, plus ``extra_tokens`` (e.g. ``"[Si]"`` to let generators use silicon).
    ``sample`` draws seed molecules: random SELFIES are mostly odd charged species.
    Features are Morgan fingerprints (``fingerprints``; counts by default).
    """

    def __init__(
        self,
        seeds: Sequence[str],
        max_length: int = 64,
        *,
        extra_tokens: Sequence[str] = (),
        filters: MoleculeFilters | None = None,
        fingerprints: MorganFingerprints | None = None,
        cache_size: int = 200_000,
    ) -> None:
        if max_length < 1 or cache_size < 1:
            raise ValueError(f"need max_length >= 1 and cache_size >= 1, got {max_length}, {cache_size}")
        for token in extra_tokens:
            if not _TOKEN.fullmatch(token):
                raise ValueError(f"extra_tokens: {token!r} is not a SELFIES token like '[Si]'")
            try:
                sf.decoder(token)
            except sf.DecoderError as exc:
                raise ValueError(f"extra_tokens: SELFIES cannot decode {token!r}: {exc}") from None
        self.max_length = max_length
        self.min_length = 1
        self.filters = filters or MoleculeFilters()
        self.fingerprints = fingerprints or MorganFingerprints()
        self.max_smiles_chars = 16 * max_length + 64
        """Longer SMILES are refused before parsing; no member comes close."""
        self._checks: LRUCache = LRUCache(cache_size)
        self._selfies: LRUCache = LRUCache(cache_size)
        self._decoded: LRUCache = LRUCache(cache_size)

        members: dict[str, tuple[str, ...]] = {}
        dropped: Counter[str] = Counter()
        for smiles in seeds:
            canonical, reason = self._structure(smiles)
            if canonical is None:
                dropped[reason.split(":")[0] if reason else "invalid"] += 1
            elif canonical not in members:
                members[canonical] = self._selfies.get(canonical)
        if not members:
            raise ValueError(
                f"none of the {len(seeds)} seed molecules is in the space "
                f"(max_length {max_length}, filters {self.filters}): {dict(dropped.most_common(3))}"
            )
        if dropped:
            logger.info("seed molecules left out of the space: %s", dict(dropped.most_common()))
        tokens = {t for selfies in members.values() for t in selfies}
        self.alphabet: tuple[str, ...] = tuple(sorted(tokens | set(extra_tokens)))
        self.vocab_size = len(self.alphabet)
        self._index = {t: i for i, t in enumerate(self.alphabet)}
        self.seeds: tuple[str, ...] = tuple(members)
        """Seed molecules in the space (canonical SMILES, file order, no duplicates)."""

    def __repr__(self) -> str:
        return (
            f"MoleculeSpace({len(self.seeds)} seeds, {self.vocab_size} SELFIES tokens, "
            f"max_length={self.max_length}, {self.filters}, {self.fingerprints})"
        )

    def _structure(self, x: object) -> tuple[str | None, str | None]:
        """Canonical SMILES of ``x`` if it passes everything but the alphabet; caches its
        SELFIES tokens."""
        if not isinstance(x, str):
            return None, f"not a string: {type(x).__name__}"
        if len(x) > self.max_smiles_chars:
            return (
                None,
                f"SMILES of {len(x)} characters, longer than this space allows ({self.max_smiles_chars})",
            )
        mol, reason = parse_smiles(x)
        if mol is None:
            return None, f"RDKit: {reason}"
        fragments = len(Chem.GetMolFrags(mol))
        if fragments > 1:
            return None, f"{fragments} fragments (a mixture or salt); the space holds single molecules"
        violation = self.filters.violation(mol)
        if violation:
            return None, f"filter: {violation}"
        canonical = Chem.MolToSmiles(mol)
        tokens = self._selfies.get(canonical)
        if tokens is None:
            try:
                encoded = sf.encoder(canonical)
            except sf.EncoderError as exc:
                return None, f"SELFIES cannot encode it: {exc}"
            tokens = tuple(sf.split_selfies(encoded))
            self._selfies.put(canonical, tokens)
        length = len(tokens)
        if length > self.max_length:
            return None, f"{length} SELFIES tokens, more than max_length {self.max_length}"
        return canonical, None

    def check(self, x: str) -> Check:
        cached = self._checks.get(x) if isinstance(x, str) else None
        if cached is not None:
            return cached
        canonical, reason = self._structure(x)
        if canonical is not None:
            tokens = self._selfies.get(canonical)
            if tokens is None:  # evicted meanwhile by another thread's molecules
                tokens = tuple(sf.split_selfies(sf.encoder(canonical)))
            unknown = sorted(set(tokens) - self._index.keys())
            if unknown:
                canonical, reason = None, f"SELFIES tokens not in the alphabet: {' '.join(unknown)}"
        result = Check(canonical, reason)
        if isinstance(x, str):
            self._checks.put(x, result)
        return result

    def token_names(self) -> list[str]:
        return list(self.alphabet)

    def _tokens(self, canonical: str) -> tuple[str, ...]:
        check = self.check(canonical)
        if check.canonical != canonical:
            raise ValueError(f"not a canonical member of the space: {canonical!r} ({check.reason})")
        tokens = self._selfies.get(canonical)
        if tokens is None:  # evicted from the cache since the check
            tokens = tuple(sf.split_selfies(sf.encoder(canonical)))
            self._selfies.put(canonical, tokens)
        return tokens

    def encode(self, xs: Sequence[str]) -> Tensor:
        tokens = torch.full((len(xs), self.max_length), PAD, dtype=torch.long)
        for i, x in enumerate(xs):
            row = [self._index[t] for t in self._tokens(x)]
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return tokens

    def _decode_row(self, row: list[int]) -> str:
        text = "".join(self.alphabet[t] for t in row if t != PAD)
        found = self._decoded.get(text)
        if found is None:
            try:
                smiles = sf.decoder(text)
            except sf.DecoderError as exc:  # not expected from alphabet tokens; keep it as data
                smiles = f"<SELFIES error: {exc}>"
            found = self.check(smiles).canonical or smiles
            self._decoded.put(text, found)
        return found

    def decode(self, tokens: Tensor) -> list[str]:
        """Canonical SMILES of each SELFIES row; the decoded SMILES when it is not a member
        (it fails ``check``, which says why)."""
        if len(tokens) and (((tokens < 0) & (tokens != PAD)) | (tokens >= self.vocab_size)).any():
            raise ValueError(f"token ids must be in [0, {self.vocab_size}) or PAD ({PAD})")
        return [self._decode_row(row) for row in tokens.tolist()]

    def valid_tokens(self, tokens: Tensor) -> Tensor:
        return torch.tensor(
            [self.check(x).canonical is not None for x in self.decode(tokens)], dtype=torch.bool
        )

    def featurize(self, xs: Sequence[str]) -> Tensor:
        return torch.from_numpy(self.fingerprints(list(xs))).to(torch.double)

    def sample(self, n: int, rng: torch.Generator) -> list[str]:
        """``n`` seed molecules drawn without replacement (with, once all are drawn)."""
        rounds = -(-n // len(self.seeds))
        order = torch.cat([torch.randperm(len(self.seeds), generator=rng) for _ in range(rounds)])
        return [self.seeds[i] for i in order[:n].tolist()]
