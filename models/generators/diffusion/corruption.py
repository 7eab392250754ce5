"""The forward (corruption) process of guided discrete diffusion: absorbing "mask" noise.

Each position of a token row is replaced by a ``MASK`` token independently with
probability ``gamma(t)`` at noise level ``t`` in ``[0, 1]`` and otherwise kept, so the
marginal is ``q(x_t | x_0) = (1 - gamma(t)) one_hot(x_0) + gamma(t) one_hot(MASK)``
(the absorbing-state D3PM of Austin et al. 2021, "Structured Denoising Diffusion Models
in Discrete State-Spaces", NeurIPS, arXiv 2107.03006, section 3.1, eq. 4; the noise that
LaMBO-2, Gruver et al. 2023, arXiv 2305.20009, trains its denoiser with). Positions past a
row's end (``PAD``) and positions a caller freezes are never masked.

Token ids inside the diffusion package: ``0 .. V-1`` the space's tokens, ``V`` = pad,
``V + 1`` = mask (:class:`TokenCodes`); the space's ``PAD = -1`` is translated at the edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from paretolab.data.spaces import PAD

__all__ = ["AbsorbingCorruption", "TokenCodes"]

Schedule = Literal["linear", "cosine"]


@dataclass(frozen=True)
class TokenCodes:
    """Token ids of a space with ``vocab_size`` tokens, plus pad and mask."""

    vocab_size: int

    @property
    def pad(self) -> int:
        return self.vocab_size

    @property
    def mask(self) -> int:
        return self.vocab_size + 1

    @property
    def size(self) -> int:
        """Input vocabulary of the denoiser (tokens, pad, mask)."""
        return self.vocab_size + 2

    def from_space(self, tokens: Tensor) -> Tensor:
        """A space's ``PAD``-padded token batch in these codes."""
        return tokens.masked_fill(tokens == PAD, self.pad)

    def to_space(self, tokens: Tensor) -> Tensor:
        """Back to the space's codes; a mask left in a row is an error."""
        if (tokens == self.mask).any():
            raise ValueError("cannot decode a row that still holds masked positions")
        return tokens.masked_fill(tokens == self.pad, PAD)


class AbsorbingCorruption:
    """Absorbing-state noise with a ``linear`` (``gamma(t) = t``) or ``cosine``
    (``gamma(t) = 1 - cos(pi t / 2)``) schedule of the masked share."""

    def __init__(self, codes: TokenCodes, schedule: Schedule = "linear") -> None:
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown noise schedule {schedule!r}; choose linear or cosine")
        self.codes = codes
        self.schedule = schedule

    def mask_probability(self, t: Tensor) -> Tensor:
        """``gamma(t)``: the chance that a position is masked at noise level ``t``."""
        t = t.clamp(0.0, 1.0)
        return t if self.schedule == "linear" else 1.0 - torch.cos(0.5 * math.pi * t)

    def marginal(self, x0: Tensor, t: Tensor) -> Tensor:
        """``q(x_t | x_0)``, ``n x L x codes.size`` probabilities, for clean rows ``x0``
        ``n x L`` at noise levels ``t`` ``n`` (pad positions stay pad)."""
        gamma = self.mask_probability(t).to(torch.float64)[:, None, None]
        clean = torch.nn.functional.one_hot(x0, self.codes.size).to(torch.float64)
        masked = torch.zeros_like(clean)
        masked[..., self.codes.mask] = 1.0
        padded = (x0 == self.codes.pad)[..., None]
        return torch.where(padded, clean, (1.0 - gamma) * clean + gamma * masked)

    def corrupt(self, x0: Tensor, t: Tensor, rng: torch.Generator, editable: Tensor | None = None) -> Tensor:
        """A draw of ``x_t`` for rows ``x0`` ``n x L`` at levels ``t`` ``n``; positions that
        are pad, or not ``editable`` (``n x L`` bool), are kept."""
        u = torch.rand(x0.shape, generator=rng).to(x0.device)
        hit = u < self.mask_probability(t).to(x0.device)[:, None]
        hit &= x0 != self.codes.pad
        if editable is not None:
            hit &= editable
        return x0.masked_fill(hit, self.codes.mask)

    def unmask_probability(self, t: float, s: float) -> float:
        """Chance that a position masked at level ``t`` is revealed by level ``s < t`` in
        the reverse process: ``(gamma(t) - gamma(s)) / gamma(t)`` (Austin et al. 2021,
        appendix A.2; Sahoo et al. 2024, MDLM, eq. 7)."""
        gt = float(self.mask_probability(torch.tensor(t)))
        gs = float(self.mask_probability(torch.tensor(s)))
        return 1.0 if gt <= 0 else (gt - gs) / gt
