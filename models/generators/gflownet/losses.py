"""What a GFlowNet optimizes: loss objects over scored trajectories and a target."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from botorch.utils.multi_objective.pareto import is_non_dominated
from torch import Tensor

__all__ = [
    "Loss",
    "OrderPreserving",
    "TrajectoryBalance",
    "TrajectoryScores",
    "order_target",
    "ordered_values",
    "pair_target",
]


@dataclass
class TrajectoryScores:
    """Per-trajectory terms of a batch: ``log Z(c)``, ``sum log P_F`` and ``sum log P_B``."""

    log_z: Tensor
    log_pf: Tensor
    log_pb: Tensor

    @property
    def learned_log_reward(self) -> Tensor:
        """``log R^(x) = log Z + sum log P_F - sum log P_B``: the reward the GFlowNet
        samples in proportion to when it satisfies trajectory balance."""
        return self.log_z + self.log_pf - self.log_pb


class Loss(ABC):
    """A GFlowNet objective over scored trajectories and a per-trajectory target (what
    the training signal made of the batch's objective values)."""

    name: str

    @abstractmethod
    def __call__(
        self, scores: TrajectoryScores, target: Tensor, rng: torch.Generator | None = None
    ) -> Tensor:
        """The loss of a batch; ``rng`` draws anything random (e.g. pairings)."""


class TrajectoryBalance(Loss):
    """Trajectory balance (Malkin et al. 2022, "Trajectory balance: improved credit
    assignment in GFlowNets", eq. 14), conditional as in MOGFN-PC (Jain et al. 2023,
    eq. 6): ``(log Z(c) + sum log P_F - log R(x | c) - sum log P_B)^2``, averaged.

    The target is the log-reward ``log R(x | c)`` of each trajectory. The loss is zero
    exactly when every trajectory's forward probability matches ``R(x | c) / Z(c)`` times
    its backward probability.
    """

    name = "trajectory_balance"

    def residuals(self, scores: TrajectoryScores, log_reward: Tensor) -> Tensor:
        return scores.learned_log_reward - log_reward

    def __call__(
        self, scores: TrajectoryScores, log_reward: Tensor, rng: torch.Generator | None = None
    ) -> Tensor:
        return self.residuals(scores, log_reward).pow(2).mean()


def ordered_values(values: Tensor) -> tuple[Tensor, Tensor]:
    """Values ``n x m`` as the order sees them (double, NaN as ``-inf``) and which rows are
    members of the space (no ``-inf``); a non-member is below every member."""
    values = values.double()
    values = values.masked_fill(values.isnan(), float("-inf"))
    return values, (values > float("-inf")).all(-1)


def order_target(values: Tensor) -> Tensor:
    """The order's target distribution on a group of candidates ``n x m`` (maximized):
    uniform over its maximal elements under Pareto dominance (the argmax set for one
    objective; duplicates all count), zero elsewhere (Chen & Mauch 2024, "Order-Preserving
    GFlowNets", ICLR, arXiv 2310.00386, section 3, the local labels of a sampled batch).

    Rows with a NaN or ``-inf`` value (not members) are never maximal. A group without a
    member has no target (all zeros). Only comparisons between values are used, so
    the target is unchanged by any strictly increasing transform of each objective.
    """
    if values.ndim != 2:
        raise ValueError(f"expected values n x m, got shape {tuple(values.shape)}")
    values, valid = ordered_values(values)
    maximal = torch.zeros_like(valid)
    if valid.any():
        maximal[valid] = is_non_dominated(values[valid], deduplicate=False)
    return maximal.double() / maximal.sum().clamp_min(1)


class OrderPreserving(Loss):
    """The order-preserving loss of OP-GFN with trajectory balance (OP-TB; Chen & Mauch
    2024, section 3; the reference code's ``ordering_loss``).

    The learned reward is parametrized through trajectory balance, ``log R^(x) = log Z +
    sum log P_F - sum log P_B`` (their eq. 3), so a GFlowNet at zero TB loss samples in
    proportion to ``R^``, and the loss is the cross-entropy between the order's target
    distribution on a group (uniform over its maximal elements, :func:`order_target`)
    and the softmax of ``log R^`` over the group, i.e. ``KL(target || softmax(log R^))``
    up to a constant. The true values enter only through the order; ``log Z`` cancels in
    the softmax.

    Groups follow the reference code: for a partial order (``m > 1``) the whole batch;
    for a total order (``m = 1``) pairs ``(i, pi(i))`` with a 2-way cross-entropy and a
    target of 1/2 on ties (``pairs=True``), ``pi`` a random permutation of the batch
    drawn with ``rng``. Each pair's loss is clamped at 100, as in the reference
    molecule code.
    """

    name = "order_preserving"
    MAX_PAIR_LOSS = 100.0

    def __init__(self, pairs: bool = False) -> None:
        self.pairs = pairs

    def __call__(
        self, scores: TrajectoryScores, values: Tensor, rng: torch.Generator | None = None
    ) -> Tensor:
        if values.ndim != 2 or len(values) != len(scores.log_pf):
            raise ValueError(
                f"expected values n x m for {len(scores.log_pf)} trajectories, got {tuple(values.shape)}"
            )
        learned = scores.learned_log_reward
        if not self.pairs:
            target = order_target(values).to(learned)
            return -(target * torch.log_softmax(learned, 0)).sum()
        n = len(learned)
        if n < 2:
            return learned.sum() * 0.0
        if rng is None:
            raise ValueError("pairs of a total order are drawn at random: pass an rng")
        partner = torch.randperm(n, generator=rng).to(learned.device)
        target = pair_target(values, values[partner]).to(learned)
        logits = torch.stack([learned, learned[partner]], 1)
        per_pair = -(target * torch.log_softmax(logits, 1)).sum(1)
        has_target = target.sum(1) > 0
        return per_pair.clamp_max(self.MAX_PAIR_LOSS)[has_target].sum() / has_target.sum().clamp_min(1)


def pair_target(a: Tensor, b: Tensor) -> Tensor:
    """:func:`order_target` of every pair ``(a_i, b_i)`` at once, ``n x 2``: ``(1, 0)``
    when ``a_i`` dominates, ``(0, 1)`` when ``b_i`` does, ``(1/2, 1/2)`` when neither does
    (ties, incomparable), and zeros when neither is a member."""
    (a, valid_a), (b, valid_b) = ordered_values(a), ordered_values(b)
    a_wins = ((a >= b).all(-1) & (a > b).any(-1) & valid_a) | (valid_a & ~valid_b)
    b_wins = ((b >= a).all(-1) & (b > a).any(-1) & valid_b) | (valid_b & ~valid_a)
    maximal = torch.stack([~b_wins & valid_a, ~a_wins & valid_b], 1).double()
    return maximal / maximal.sum(1, keepdim=True).clamp_min(1)
