"""What a GFlowNet can build: the state DAG of a design space, vectorized over a batch.

A state batch is a long tensor ``n x state_size``; actions are indices into
``range(n_actions)`` whose last one is *stop* (the transition to the sink). Invalid
actions are masked, never sampled. Backward actions undo a forward one; ``parent_count``
gives the uniform backward policy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from paretolab.data.spaces import PAD, GridSpace, SearchSpace

__all__ = ["Environment", "HyperGridEnvironment", "SequenceEnvironment", "environment_for"]


class Environment(ABC):
    """A DAG of partial objects from one initial state to terminal candidates of ``space``."""

    space: SearchSpace
    n_actions: int
    """Forward actions, the last being stop."""
    n_backward_actions: int
    max_steps: int
    """Most actions in a trajectory, stop included."""
    is_tree: bool
    """True when every state has one parent (then ``P_B = 1``)."""

    @property
    def stop(self) -> int:
        return self.n_actions - 1

    @abstractmethod
    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        """``n`` copies of the initial state."""

    @abstractmethod
    def forward_mask(self, states: Tensor) -> Tensor:
        """Valid forward actions ``n x n_actions`` (bool)."""

    @abstractmethod
    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        """Children of ``states`` under non-stop ``actions``."""

    @abstractmethod
    def backward_mask(self, states: Tensor) -> Tensor:
        """Valid backward actions ``n x n_backward_actions`` (bool)."""

    @abstractmethod
    def backward_step(self, states: Tensor, actions: Tensor) -> Tensor:
        """Parents of ``states`` under backward ``actions``."""

    @abstractmethod
    def backward_action(self, actions: Tensor) -> Tensor:
        """The backward action that undoes each (non-stop) forward action."""

    def to_tokens(self, states: Tensor) -> Tensor:
        """Terminal states -> the space's token batch (``space.decode`` takes it); the
        identity where a state is written in the space's tokens."""
        return states

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """The space's token batch -> terminal states."""
        return tokens.clone()

    @abstractmethod
    def depth(self, states: Tensor) -> Tensor:
        """Number of non-stop actions from the initial state to each state."""

    @abstractmethod
    def action_between(self, parents: Tensor, children: Tensor) -> Tensor:
        """The forward action that turns each parent into its child."""

    feature_size: int

    @abstractmethod
    def features(self, states: Tensor) -> Tensor:
        """One-hot policy input ``n x feature_size`` (float)."""

    def parent_count(self, states: Tensor) -> Tensor:
        """Number of parents of each non-initial state (``1 / P_B`` when uniform)."""
        return self.backward_mask(states).sum(-1)


class SequenceEnvironment(Environment):
    """Autoregressive strings: append a token or stop (a tree; Jain et al. 2023, sec. 5.2).

    A state is the prefix's tokens padded with ``PAD``; stop is allowed from
    ``min_length`` tokens on, appending up to ``max_length``.
    """

    is_tree = True
    n_backward_actions = 1

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.length = space.max_length
        self.n_actions = space.vocab_size + 1
        self.max_steps = space.max_length + 1
        self.feature_size = space.max_length * (space.vocab_size + 1)

    def features(self, states: Tensor) -> Tensor:
        one_hot = torch.nn.functional.one_hot(states + 1, self.space.vocab_size + 1)
        return one_hot.flatten(1).float()

    def action_between(self, parents: Tensor, children: Tensor) -> Tensor:
        rows = torch.arange(len(parents), device=parents.device)
        return children[rows, self.depth(parents).clamp_max(self.length - 1)]

    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        return torch.full((n, self.length), PAD, dtype=torch.long, device=device)

    def depth(self, states: Tensor) -> Tensor:
        return (states != PAD).sum(-1)

    def forward_mask(self, states: Tensor) -> Tensor:
        depth = self.depth(states)
        mask = torch.empty(len(states), self.n_actions, dtype=torch.bool, device=states.device)
        mask[:, :-1] = (depth < self.length)[:, None]
        mask[:, -1] = depth >= self.space.min_length
        return mask

    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        out = states.clone()
        depth = self.depth(states)
        rows = torch.arange(len(states), device=states.device)
        out[rows, depth.clamp_max(self.length - 1)] = actions
        return out

    def backward_mask(self, states: Tensor) -> Tensor:
        return (self.depth(states) > 0)[:, None]

    def backward_step(self, states: Tensor, actions: Tensor) -> Tensor:
        out = states.clone()
        rows = torch.arange(len(states), device=states.device)
        out[rows, (self.depth(states) - 1).clamp_min(0)] = PAD
        return out

    def backward_action(self, actions: Tensor) -> Tensor:
        return torch.zeros_like(actions)


class HyperGridEnvironment(Environment):
    """The HyperGrid DAG (Bengio et al. 2021; Jain et al. 2023, sec. 5.1): start at the
    origin, increment one coordinate (up to ``levels - 1``) or stop. A state has as many
    parents as non-zero coordinates."""

    is_tree = False

    def __init__(self, space: GridSpace) -> None:
        self.space = space
        self.dims = space.dims
        self.levels = space.levels
        self.n_actions = space.dims + 1
        self.n_backward_actions = space.dims
        self.max_steps = space.dims * (space.levels - 1) + 1
        self.feature_size = space.dims * space.levels

    def features(self, states: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(states, self.levels).flatten(1).float()

    def action_between(self, parents: Tensor, children: Tensor) -> Tensor:
        return (children - parents).argmax(-1)

    def initial(self, n: int, device: torch.device | None = None) -> Tensor:
        return torch.zeros(n, self.dims, dtype=torch.long, device=device)

    def depth(self, states: Tensor) -> Tensor:
        return states.sum(-1)

    def forward_mask(self, states: Tensor) -> Tensor:
        mask = torch.ones(len(states), self.n_actions, dtype=torch.bool, device=states.device)
        mask[:, :-1] = states < self.levels - 1
        return mask

    def step(self, states: Tensor, actions: Tensor) -> Tensor:
        return states + torch.nn.functional.one_hot(actions.clamp_max(self.dims - 1), self.dims) * (
            actions < self.dims
        ).unsqueeze(-1)

    def backward_mask(self, states: Tensor) -> Tensor:
        return states > 0

    def backward_step(self, states: Tensor, actions: Tensor) -> Tensor:
        return states - torch.nn.functional.one_hot(actions, self.dims)

    def backward_action(self, actions: Tensor) -> Tensor:
        return actions.clamp_max(self.dims - 1)


def environment_for(space: SearchSpace) -> Environment:
    """The GFlowNet environment of a design space."""
    if isinstance(space, GridSpace):
        return HyperGridEnvironment(space)
    if not all(hasattr(space, a) for a in ("vocab_size", "min_length", "max_length")):
        raise TypeError(f"no GFlowNet environment for {type(space).__name__}: it has no token vocabulary")
    return SequenceEnvironment(space)  # strings of tokens: sequences, SELFIES molecules
