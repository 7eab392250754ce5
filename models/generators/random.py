"""Uniform random search: the baseline every other generator must beat."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from paretolab.data.strict import Strict
from paretolab.models.generators.base import Generator

__all__ = ["RandomGenerator", "RandomGeneratorConfig"]


class RandomGeneratorConfig(Strict):
    """Uniform random candidates."""

    kind: Literal["random"]
    pool_size: int = Field(256, ge=1, description="candidates proposed per round")


class RandomGenerator(Generator):
    """Candidates drawn uniformly from the space."""

    name = "random"

    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        return self.space.sample(n, rng)
