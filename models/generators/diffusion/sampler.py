"""Sampling from the denoiser: the unguided reverse process, and LaMBO-2's guided edits.

Guided edits (Gruver et al. 2023, "Protein Design with Guided Discrete Diffusion",
arXiv 2305.20009, section 4.2 and algorithm 1), for each seed row:

1. choose the positions to edit by the saliency of the guidance objective (the gradient
   with respect to each position's token embedding, read as the best swap's first-order
   gain), among positions that may change;
2. mask them and compute the denoiser's hidden states ``h``;
3. take ``steps`` gradient steps on a perturbation ``delta`` of the masked positions'
   hidden states, minimizing ``lambda * KL(p(. | h + delta) || p(. | h)) - (1 - lambda) *
   guidance(h + delta)`` (eq. 5): stay close to what the denoiser finds plausible while
   climbing the value heads;
4. decode the masked positions from ``p(. | h + delta)``;
5. keep the edit when the guidance objective of the decoded row beats the seed's.

Only masked positions change, so a proposal is at most ``max_edits`` substitutions from its
seed and frozen positions never change. Every random draw goes through the passed ``rng``
(drawn on the CPU, then moved), so CPU and CUDA runs draw alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from paretolab.models.generators.diffusion.corruption import AbsorbingCorruption
from paretolab.models.generators.diffusion.denoiser import Denoiser
from paretolab.models.generators.diffusion.guidance import Guidance

__all__ = ["EditResult", "GuidedSampler", "gumbel_argmax"]


def gumbel_argmax(logits: Tensor, rng: torch.Generator) -> Tensor:
    """One categorical draw per row of ``logits`` ``... x V`` (Gumbel-max trick)."""
    u = torch.rand(logits.shape, generator=rng, dtype=torch.float64).to(logits.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-12, 1.0 - 1e-12)))
    return (logits.double() + gumbel).argmax(-1)


@dataclass
class EditResult:
    """Proposals ``n x L`` (a seed's row where no edit was accepted), which rows were
    accepted, and how many edits were tried in all."""

    rows: Tensor
    accepted: Tensor
    tried: int

    @property
    def acceptance_rate(self) -> float:
        return float(self.accepted.sum()) / self.tried if self.tried else 0.0


class GuidedSampler:
    """Reverse-process samples and guided edits of a :class:`Denoiser`."""

    def __init__(
        self,
        denoiser: Denoiser,
        corruption: AbsorbingCorruption,
        *,
        steps: int = 20,
        step_size: float = 1.0,
        kl_weight: float = 0.1,
    ) -> None:
        if steps < 0 or step_size <= 0 or not 0.0 <= kl_weight <= 1.0:
            raise ValueError(
                f"need steps >= 0, step_size > 0, 0 <= kl_weight <= 1; got {steps}, {step_size}, {kl_weight}"
            )
        self.denoiser = denoiser
        self.corruption = corruption
        self.codes = corruption.codes
        self.steps = steps
        self.step_size = step_size
        self.kl_weight = kl_weight

    # -- the reverse process ---------------------------------------------------------------
    @torch.no_grad()
    def sample(self, lengths: Tensor, max_length: int, rng: torch.Generator, steps: int = 32) -> Tensor:
        """Unguided samples ``n x max_length`` of the given lengths, from all-masked rows
        through ``steps`` reverse steps of the absorbing process (each masked position is
        revealed between levels ``t`` and ``s`` with probability
        :meth:`AbsorbingCorruption.unmask_probability`)."""
        device = next(self.denoiser.parameters()).device
        positions = torch.arange(max_length).expand(len(lengths), -1)
        rows = torch.where(positions < lengths[:, None], self.codes.mask, self.codes.pad).to(device)
        for i in range(steps, 0, -1):
            reveal_p = self.corruption.unmask_probability(i / steps, (i - 1) / steps)
            u = torch.rand(rows.shape, generator=rng).to(device)
            reveal = (rows == self.codes.mask) & (u < reveal_p)
            logits = self.denoiser.token_logits(self.denoiser.hidden_states(rows))
            rows = torch.where(reveal, gumbel_argmax(logits, rng), rows)
        return rows

    # -- guided edits ----------------------------------------------------------------------
    def saliency(self, rows: Tensor, guidance: Guidance) -> Tensor:
        """``n x L``: how much the best single-token swap at each position is expected to
        raise the guidance objective, to first order in the token embeddings,
        ``max_v (e_v - e_x) . grad`` (the gradient-informed swap score of Grathwohl et al.
        2021, "Oops I Took A Gradient", eq. 4). Unlike the gradient's norm, it does not
        point at the positions that already serve the objective best."""
        embeddings = self.denoiser.embeddings(rows).detach().requires_grad_(True)
        hidden = self.denoiser.hidden_states(rows, embeddings)
        objective = guidance(self.denoiser.values(hidden, rows)).sum()
        (grad,) = torch.autograd.grad(objective, embeddings)
        tokens = self.denoiser.embed.weight[: self.codes.vocab_size].detach()
        swaps = grad @ tokens.T - (grad * embeddings.detach()).sum(-1, keepdim=True)
        return swaps.max(-1).values

    @staticmethod
    def choose_positions(scores: Tensor, editable: Tensor, edits: int, rng: torch.Generator) -> Tensor:
        """``n x L`` bool: ``edits`` positions per row (fewer where fewer may change), drawn
        without replacement with probability proportional to ``exp(score / spread)``
        (Gumbel top-k; ``spread`` is the row's standard deviation of the editable scores,
        so the draw does not depend on their scale; equal scores draw uniformly)."""
        u = torch.rand(scores.shape, generator=rng, dtype=torch.float64).to(scores.device)
        scores = scores.double().masked_fill(~editable, 0.0)
        count = editable.sum(-1, keepdim=True).clamp_min(1)
        centred = (scores - scores.sum(-1, keepdim=True) / count).masked_fill(~editable, 0.0)
        spread = (centred.pow(2).sum(-1, keepdim=True) / count).sqrt().clamp_min(1e-12)
        keys = centred / spread - torch.log(-torch.log(u.clamp(1e-12, 1 - 1e-12)))
        keys = keys.masked_fill(~editable, float("-inf"))
        top = keys.topk(min(edits, scores.shape[1]), dim=-1)
        chosen = torch.zeros_like(editable)
        chosen.scatter_(1, top.indices, torch.isfinite(top.values))
        return chosen

    def edit(
        self, rows: Tensor, positions: Tensor, guidance: Guidance, rng: torch.Generator, guided: bool = True
    ) -> Tensor:
        """Rows with ``positions`` masked and decoded again, with (``guided``) or without
        the hidden-state perturbation of eq. 5."""
        d = self.denoiser
        masked = rows.masked_fill(positions, self.codes.mask)
        with torch.no_grad():
            h0 = d.hidden_states(masked)
            logp0 = torch.log_softmax(d.token_logits(h0), -1)
        hidden = h0
        if guided and self.steps and positions.any():
            select = positions.unsqueeze(-1).to(h0.dtype)
            delta = torch.zeros_like(h0, requires_grad=True)
            optimizer = torch.optim.Adam([delta], lr=self.step_size)
            count = positions.sum(-1).clamp_min(1)
            for _ in range(self.steps):
                h = h0 + delta * select
                logp = torch.log_softmax(d.token_logits(h), -1)
                kl = ((logp.exp() * (logp - logp0)).sum(-1) * positions).sum(-1) / count
                objective = guidance(d.values(h, masked))
                loss = (self.kl_weight * kl - (1.0 - self.kl_weight) * objective).sum()
                optimizer.zero_grad()
                (grad,) = torch.autograd.grad(loss, delta)
                delta.grad = grad
                optimizer.step()
            hidden = (h0 + delta * select).detach()
        with torch.no_grad():
            decoded = gumbel_argmax(d.token_logits(hidden), rng)
        return torch.where(positions, decoded, rows)

    @torch.no_grad()
    def objective(self, rows: Tensor, guidance: Guidance) -> Tensor:
        """Guidance objective ``n`` of clean rows."""
        return guidance(self.denoiser.values(self.denoiser.hidden_states(rows), rows))

    def improve(
        self,
        seeds: Tensor,
        guidance: Guidance,
        rng: torch.Generator,
        *,
        max_edits: int,
        editable: Tensor,
        attempts: int = 3,
        guided: bool = True,
    ) -> EditResult:
        """LaMBO-2's edit-and-accept loop: up to ``attempts`` edits of each seed row
        (``n x L``, in :class:`TokenCodes`), each of ``max_edits`` positions among the
        ``editable`` ones (``n x L`` bool; pad positions never change), until one improves
        the guidance objective. ``guided=False`` is the unguided baseline: positions drawn
        uniformly, no perturbation, every changed row accepted."""
        editable = editable & (seeds != self.codes.pad)
        base = self.objective(seeds, guidance)
        rows, accepted, tried = seeds.clone(), torch.zeros(len(seeds), dtype=torch.bool), 0
        for _ in range(attempts):
            todo = (~accepted).nonzero().squeeze(-1)
            if not len(todo):
                break
            here = todo.to(seeds.device)
            sub = seeds[here]
            rule = guidance.repeat(todo)
            scores = self.saliency(sub, rule) if guided else torch.zeros(sub.shape, device=sub.device)
            positions = self.choose_positions(scores, editable[here], max_edits, rng)
            edited = self.edit(sub, positions, rule, rng, guided)
            better = (edited != sub).any(-1)
            if guided:
                better &= self.objective(edited, rule) > base[here]
            rows[here[better]] = edited[better]
            better = better.cpu()
            accepted[todo[better]] = True
            tried += len(todo)
        return EditResult(rows, accepted, tried)
