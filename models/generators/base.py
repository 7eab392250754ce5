"""The Generator contract: propose candidates; never call the oracle, never pick the batch."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import SearchSpace
from paretolab.models.rewards import ProxyReward

__all__ = ["Generator"]


class Generator(ABC):
    """Proposes candidates of a :class:`SearchSpace`.

    ``update`` refreshes the generator against this round's reward and measured data
    (training, for learned generators); ``propose`` samples candidates with the
    ``rng`` passed in, so a round is reproducible from its seed.
    """

    name: str

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.history: dict[str, list[float]] = {}
        """Per-step training curves of the last ``update`` (empty if it does not train)."""
        self.trained_round: int | None = None
        """The campaign round whose reward the current state was trained on."""
        self.proposal_metrics: dict[str, float] = {}
        """Metrics of the last ``propose`` (e.g. a guided sampler's acceptance rate)."""

    def update(self, reward: ProxyReward, dataset: Dataset, rng: torch.Generator) -> dict[str, float]:
        """Refresh against ``reward`` and ``dataset``; returns training metrics.

        Random draws (training batches) go through ``rng``.
        """
        return {}

    def state_dict(self) -> dict:
        """What must survive a restart for the next round to continue this one (learned
        weights); empty for stateless generators."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got keys {sorted(state)}")

    @abstractmethod
    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        """Up to ``n`` candidates (canonical strings; duplicates allowed); fewer only when
        the generator filters its own samples (guided diffusion keeps improving edits)."""
