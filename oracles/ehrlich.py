"""Multi-objective Ehrlich functions: closed-form biological-sequence tasks with infeasible
regions (Stanton et al. 2024, "Closed-Form Test Functions for Biophysical Sequence Design",
arXiv:2407.00236, sec. 3).

A sparse transition matrix bans some ordered pairs of letters; a sequence holding a banned
pair anywhere is *infeasible* (it does not fold or express), so most random edits of a
feasible sequence fail, as in a lab. Each objective is one spaced motif ``(a, s)``:

    h_q(x) = max_l  floor(q * (1/k) sum_j [x_(l + s_j) = a_j]) / q      (eq. 2 of the paper)

the best quantized share of the motif present anywhere. The paper multiplies the motifs'
``h_q`` into one objective; here each motif is its own objective (maximized, in [0, 1]).
Infeasible sequences are failures (NaN with a reason naming the banned pair), not zeros,
so the campaign records why they failed.

Construction (all draws from ``seed``): every letter may follow itself and its successor on
a random cycle through the alphabet (the chain is ergodic: every letter reaches every
other); of the other pairs a share ``banned_fraction`` is banned. One feasible sequence is
drawn from the chain and each motif is read off it at random spacings inside its own
stretch of that sequence, so one feasible sequence scores 1 on every objective.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from paretolab.data.spaces import SearchSpace, SequenceSpace
from paretolab.oracles.base import Objective, Oracle, OracleResult

__all__ = ["EhrlichOracle"]


class EhrlichOracle(Oracle):
    """``num_motifs`` Ehrlich motif objectives on a fixed-length :class:`SequenceSpace`."""

    objectives_help = "motif_<i> for i < num_motifs (max, in [0, 1]); infeasible sequences fail"

    def __init__(
        self,
        space: SearchSpace,
        num_motifs: int = 2,
        motif_length: int = 4,
        quantization: int | None = None,
        banned_fraction: float = 0.25,
        seed: int = 0,
    ) -> None:
        if not isinstance(space, SequenceSpace) or space.min_length != space.max_length:
            raise ValueError(f"EhrlichOracle needs a fixed-length sequence space, got {space!r}")
        length, v = space.max_length, space.vocab_size
        quantization = motif_length if quantization is None else quantization
        if num_motifs < 1 or motif_length < 1 or num_motifs * motif_length > length:
            raise ValueError(
                f"need num_motifs * motif_length <= length; got {num_motifs} x {motif_length} > {length}"
            )
        if not 1 <= quantization <= motif_length:
            raise ValueError(f"quantization must be in [1, motif_length], got {quantization}")
        if not 0.0 <= banned_fraction < 1.0:
            raise ValueError(f"banned_fraction must be in [0, 1), got {banned_fraction}")
        super().__init__(space)
        rng = torch.Generator().manual_seed(seed)
        self.quantization = quantization
        # 1. the allowed transitions: self-loops and a random cycle always, others at random
        cycle = torch.randperm(v, generator=rng)
        allowed = torch.rand(v, v, generator=rng) >= banned_fraction
        allowed[torch.arange(v), torch.arange(v)] = True
        allowed[cycle, cycle.roll(-1)] = True
        self.allowed = allowed
        # 2. one feasible sequence; each motif is read off its own stretch of it
        optimum = self.sample_feasible(1, rng)[0]
        tokens = space.encode([optimum])[0]
        stretch = length // num_motifs
        motifs, spacings = [], []
        for i in range(num_motifs):
            offsets = torch.randperm(stretch - 1, generator=rng)[: motif_length - 1].sort().values + 1
            spacing = torch.cat([torch.zeros(1, dtype=torch.long), offsets])
            motifs.append(tokens[i * stretch + spacing])
            spacings.append(spacing)
        self.motifs = torch.stack(motifs)  # c x k letters
        self.spacings = torch.stack(spacings)  # c x k offsets, first 0
        self.optimum = optimum
        self.objectives = tuple(Objective(f"motif_{i}", "max") for i in range(num_motifs))
        self.ref_point = tuple(0.0 for _ in range(num_motifs))

    def sample_feasible(self, n: int, rng: torch.Generator) -> list[str]:
        """``n`` feasible sequences drawn from the chain (uniform start, uniform over the
        allowed next letters): the task's natural seed distribution."""
        space = self.space
        rows = self.allowed.float()
        tokens = torch.empty(n, space.max_length, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, space.vocab_size, (n,), generator=rng)
        for t in range(1, space.max_length):
            tokens[:, t] = torch.multinomial(rows[tokens[:, t - 1]], 1, generator=rng).squeeze(-1)
        return space.decode(tokens)

    def seed_candidates(self, n: int, rng: torch.Generator) -> list[str]:
        """The initial design comes from the feasible chain (a uniform draw is almost never
        feasible)."""
        return self.sample_feasible(n, rng)

    def banned_pairs(self, xs: Sequence[str]) -> list[str | None]:
        """Why each sequence is infeasible (its first banned pair), or ``None``."""
        tokens = self.space.encode(list(xs))
        ok = self.allowed[tokens[:, :-1], tokens[:, 1:]]
        reasons: list[str | None] = []
        for x, row in zip(xs, ok.tolist(), strict=True):
            bad = next((t for t, fine in enumerate(row) if not fine), None)
            reasons.append(None if bad is None else f"infeasible: {x[bad]!r} may not precede {x[bad + 1]!r}")
        return reasons

    def motif_presence(self, tokens: Tensor) -> Tensor:
        """``h_q`` ``n x c`` of token rows ``n x L`` (feasibility not checked)."""
        length = tokens.shape[1]
        starts = torch.arange(length)
        index = starts[None, :, None] + self.spacings[:, None, :]  # c x L x k
        fits = index[..., -1] < length  # c x L: the motif fits from this start
        letters = tokens[:, index.clamp_max(length - 1)]  # n x c x L x k
        share = (letters == self.motifs[None, :, None, :]).float().mean(-1)
        share = share.masked_fill(~fits, 0.0).amax(-1)
        q = self.quantization
        return torch.floor(share * q + 1e-6) / q

    def _evaluate(self, xs: list[str]) -> OracleResult:
        reasons = self.banned_pairs(xs)
        values = self.motif_presence(self.space.encode(xs)).double()
        values[torch.tensor([r is not None for r in reasons], dtype=torch.bool)] = float("nan")
        return OracleResult(values, reasons)
