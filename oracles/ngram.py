"""The n-gram (regex) sequence task of the MOGFN paper (Jain et al. 2023, sec. 5.2,
after Stanton et al. 2022): each objective counts the (overlapping) occurrences of a motif
in a protein-like sequence, divided by ``max_score`` (8 in the paper's code for the motifs
AV, VC, CA).

Reference point: one occurrence below none, ``-1 / max_score`` per objective. A count is
never negative, so every sequence dominates it and adds hypervolume from the first
measurement on; with the point at 0, a sequence lacking any one motif adds nothing, and
short campaigns (which rarely find a sequence with all three motifs) ended with
hypervolume 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import Tensor

from paretolab.data.spaces import SearchSpace, SequenceSpace
from paretolab.oracles.base import Objective, Oracle

__all__ = ["NGramOracle", "motif_counts"]


def motif_counts(xs: Sequence[str], motifs: Sequence[str]) -> Tensor:
    """Overlapping occurrences ``n x m`` of each motif in each sequence."""
    patterns = [re.compile(f"(?={re.escape(m)})") for m in motifs]
    return torch.tensor([[len(p.findall(x)) for p in patterns] for x in xs], dtype=torch.double)


class NGramOracle(Oracle):
    """Motif counts / ``max_score`` (maximized) on a :class:`SequenceSpace`; defaults:
    ``AV``, ``VC``, ``CA`` and 8, the reference task's ``max_score_per_dim``."""

    objectives_help = "count_<motif> per entry of params.motifs (max)"

    def __init__(
        self, space: SearchSpace, motifs: Sequence[str] = ("AV", "VC", "CA"), max_score: float = 8.0
    ) -> None:
        if not isinstance(space, SequenceSpace):
            raise ValueError(f"NGramOracle needs a sequence space, got {space!r}")
        missing = sorted({c for m in motifs for c in m} - set(space.alphabet))
        if missing or not motifs or any(not m for m in motifs):
            raise ValueError(f"motifs must be non-empty strings over the alphabet; not in it: {missing}")
        if max_score <= 0:
            raise ValueError(f"max_score must be positive, got {max_score}")
        super().__init__(space)
        self.motifs = tuple(motifs)
        self.max_score = float(max_score)
        self.objectives = tuple(Objective(f"count_{m}", "max") for m in motifs)
        self.ref_point = tuple(-1.0 / self.max_score for _ in motifs)

    def _evaluate(self, xs: list[str]) -> Tensor:
        return motif_counts(xs, self.motifs) / self.max_score
