"""The denoiser and its value head: one bidirectional transformer encoder whose hidden
states feed both a token head (clean-token logits at every position, the reverse process)
and an ensemble of value heads (the objectives), as in LaMBO-2 (Gruver et al. 2023,
arXiv 2305.20009, section 4: a shared encoder with generative and discriminative heads),
so that guidance is differentiable with respect to the hidden states."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from paretolab.models.generators.diffusion.corruption import TokenCodes

__all__ = ["Denoiser"]


class Denoiser(nn.Module):
    """Bidirectional transformer over ``codes.size`` input tokens at ``max_length``
    positions; ``ensemble`` value heads each predict ``num_objectives`` standardized
    objectives from the hidden states averaged over a row's non-pad positions."""

    def __init__(
        self,
        codes: TokenCodes,
        max_length: int,
        num_objectives: int,
        *,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
        ensemble: int = 4,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
        self.codes = codes
        self.embed = nn.Embedding(codes.size, hidden)
        self.position = nn.Embedding(max_length, hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.token_head = nn.Linear(hidden, codes.vocab_size)  # never predicts pad or mask
        self.value_heads = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, num_objectives))
            for _ in range(ensemble)
        )

    def embeddings(self, tokens: Tensor) -> Tensor:
        """Token embeddings ``n x L x hidden`` (positions added later)."""
        return self.embed(tokens)

    def hidden_states(self, tokens: Tensor, embeddings: Tensor | None = None) -> Tensor:
        """Hidden states ``n x L x hidden`` of rows ``n x L``; ``embeddings`` replaces the
        token embeddings (saliency is their gradient)."""
        e = self.embed(tokens) if embeddings is None else embeddings
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.encoder(e + self.position(positions), src_key_padding_mask=tokens == self.codes.pad)
        return self.norm(h)

    def token_logits(self, hidden: Tensor) -> Tensor:
        """Clean-token logits ``n x L x V``."""
        return self.token_head(hidden)

    def values(self, hidden: Tensor, tokens: Tensor) -> Tensor:
        """Each head's standardized objectives ``ensemble x n x m``."""
        present = (tokens != self.codes.pad).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * present).sum(1) / present.sum(1).clamp_min(1.0)
        return torch.stack([head(pooled) for head in self.value_heads])
