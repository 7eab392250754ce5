"""What a GFlowNet optimizes: loss objects over scored trajectories."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["TrajectoryBalance", "TrajectoryScores"]


@dataclass
class TrajectoryScores:
    """Per-trajectory terms of a batch: ``log Z(c)``, ``sum log P_F``, ``sum log P_B`` and
    the terminal log-reward (already conditioned: ``beta * log s(r, w)``)."""

    log_z: Tensor
    log_pf: Tensor
    log_pb: Tensor
    log_reward: Tensor


class TrajectoryBalance:
    """Trajectory balance (Malkin et al. 2022, "Trajectory balance: improved credit
    assignment in GFlowNets", eq. 14), conditional as in MOGFN-PC (Jain et al. 2023,
    eq. 6): ``(log Z(c) + sum log P_F - log R(x | c) - sum log P_B)^2``, averaged.

    It is zero exactly when every trajectory's forward probability matches
    ``R(x | c) / Z(c)`` times its backward probability.
    """

    name = "trajectory_balance"

    def residuals(self, scores: TrajectoryScores) -> Tensor:
        return scores.log_z + scores.log_pf - scores.log_reward - scores.log_pb

    def __call__(self, scores: TrajectoryScores) -> Tensor:
        return self.residuals(scores).pow(2).mean()
