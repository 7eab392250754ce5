"""Genetic search around the measured Pareto set.

Parents are chosen by binary tournament on non-dominated rank, as in NSGA-II (Deb et al.
2002, IEEE TEC 6(2)); children come from uniform crossover and per-token mutation in the
space's token representation, so one implementation serves grids and sequences.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from paretolab.data.dataset import Dataset
from paretolab.data.pareto import pareto_rank
from paretolab.data.spaces import PAD, SearchSpace
from paretolab.data.strict import Strict
from paretolab.models.generators.base import Generator
from paretolab.models.rewards import ProxyReward

__all__ = ["GeneticGenerator", "GeneticGeneratorConfig"]


class GeneticGeneratorConfig(Strict):
    """Mutation and crossover of the measured candidates, biased to the Pareto front."""

    kind: Literal["genetic"]
    pool_size: int = Field(256, ge=1, description="candidates proposed per round")
    mutation_rate: float | None = Field(None, ge=0.0, le=1.0, description="per token; default 1/length")
    crossover_rate: float = Field(0.9, ge=0.0, le=1.0)


class GeneticGenerator(Generator):
    """Mutation + crossover of measured candidates, biased towards the Pareto front.

    ``mutation_rate`` is the per-token probability (default ``1 / max_length``); every
    child gets at least one mutation so it differs from its first parent.
    """

    name = "genetic"

    def __init__(
        self,
        space: SearchSpace,
        *,
        mutation_rate: float | None = None,
        crossover_rate: float = 0.9,
    ) -> None:
        super().__init__(space)
        if not 0.0 <= crossover_rate <= 1.0:
            raise ValueError(f"crossover_rate must be in [0, 1], got {crossover_rate}")
        self.mutation_rate = mutation_rate if mutation_rate is not None else 1.0 / space.max_length
        if not 0.0 <= self.mutation_rate <= 1.0:
            raise ValueError(f"mutation_rate must be in [0, 1], got {self.mutation_rate}")
        self.crossover_rate = crossover_rate
        self._parents = torch.empty(0, space.max_length, dtype=torch.long)
        self._rank = torch.empty(0, dtype=torch.long)

    def update(self, reward: ProxyReward, dataset: Dataset, rng: torch.Generator) -> dict[str, float]:
        self._parents = self.space.encode(dataset.candidates)
        self._rank = pareto_rank(dataset.Y.cpu()) if len(dataset) else torch.empty(0, dtype=torch.long)
        return {"n_parents": float(len(dataset)), "front_size": float((self._rank == 0).sum())}

    def _tournament(self, n: int, rng: torch.Generator) -> torch.Tensor:
        pairs = torch.randint(0, len(self._parents), (n, 2), generator=rng)
        ranks = self._rank[pairs]
        return torch.where(ranks[:, 0] <= ranks[:, 1], pairs[:, 0], pairs[:, 1])

    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        if len(self._parents) == 0:
            return self.space.sample(n, rng)
        first = self._parents[self._tournament(n, rng)]
        second = self._parents[self._tournament(n, rng)]
        length = first.shape[1]
        crossover = torch.rand(n, generator=rng) < self.crossover_rate
        swap = (torch.rand(n, length, generator=rng) < 0.5) & crossover[:, None]
        child = torch.where(swap & (first != PAD) & (second != PAD), second, first)

        present = child != PAD
        mutate = (torch.rand(n, length, generator=rng) < self.mutation_rate) & present
        forced = (torch.rand(n, length, generator=rng) * present).argmax(dim=1)
        none = ~mutate.any(dim=1)
        mutate[none, forced[none]] = True
        if self.space.vocab_size > 1:
            shift = torch.randint(1, self.space.vocab_size, (n, length), generator=rng)
            child = torch.where(mutate, (child + shift) % self.space.vocab_size, child)
        return self.space.decode(child)
