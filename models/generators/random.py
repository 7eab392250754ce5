"""Uniform random search: the baseline every other generator must beat."""

from __future__ import annotations

import torch

from paretolab.models.generators.base import Generator

__all__ = ["RandomGenerator"]


class RandomGenerator(Generator):
    """Candidates drawn uniformly from the space."""

    name = "random"

    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        return self.space.sample(n, rng)
