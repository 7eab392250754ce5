"""The GFlowNet generators' settings, declared once: what the trainer reads
(:class:`GFlowNetSettings`, :class:`MOGFNSettings`) and what a campaign adds (pool size,
training budget per round, warm start, optimism, replay of measured candidates). The campaign config
embeds :class:`MOGFNGeneratorConfig` and :class:`OPGFNGeneratorConfig` as they are."""

from __future__ import annotations

import warnings
from typing import Any, Literal

from pydantic import Field, model_validator

from paretolab.data.strict import Strict

__all__ = [
    "LOCAL_ANCHORS",
    "LOCAL_SHARE",
    "LOCAL_STEPS",
    "WARM_START_STEPS",
    "GFlowNetSettings",
    "MOGFNGeneratorConfig",
    "MOGFNSettings",
    "OPGFNGeneratorConfig",
]

WARM_START_STEPS = 50
"""Offline steps on the known candidates before a GFlowNet's first on-policy step: once
per campaign, 0.5 s on a 32 x 32 grid, 2-5 s on molecules (512 seeds scored); measured
gains and costs in README.md, "Generators"."""

LOCAL_SHARE = 0.0
"""Default share of a pool a GFlowNet samples near the best measured candidates: none, so
campaigns created before local samples resume exactly as they ran. At campaign budgets an
acquisition picks candidates the proxy knows, near what was measured, and a GFlowNet that
only samples from the initial state rarely supplies them: the shipped sequence and molecule
campaigns set 1.0 (README.md, "Local samples")."""
LOCAL_STEPS = 8
"""Default most actions undone before a local completion (tokens, on sequences)."""
LOCAL_ANCHORS = 32
"""Default number of best measured candidates local samples start near."""


class GFlowNetSettings(Strict):
    """What every GFlowNet variant's training shares: network, optimizer, exploration and
    replay."""

    trajectories_per_step: int = Field(64, ge=1, description="trajectories sampled per training step")
    epsilon: float = Field(0.01, ge=0, lt=1, description="chance of a uniformly random action in training")
    lr: float = Field(1e-3, gt=0, description="policy learning rate")
    logz_lr: float = Field(1e-2, gt=0, description="learning rate of log Z")
    policy: Literal["auto", "mlp", "transformer"] = Field(
        "auto", description="auto: causal transformer for sequences, MLP for grids"
    )
    hidden: int = Field(64, ge=4, description="width of the policy")
    layers: int = Field(3, ge=1, description="MLP layers (a transformer gets one fewer)")
    learn_backward: bool = Field(False, description="learn P_B on grids (else uniform over parents)")
    replay_fraction: float = Field(0.0, ge=0, lt=1, description="share of each step's trajectories replayed")
    replay_capacity: int = Field(1000, ge=0, description="best sampled states kept (0: measured only)")
    grad_clip: float = Field(10.0, gt=0, allow_inf_nan=True, description="gradient norm clip (inf: none)")
    weight_decay: float = Field(0.0, ge=0, description="Adam's L2 penalty (the OP-GFN reference code: 1e-4)")

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        """``batch_size`` is what ``trajectories_per_step`` was called before 0.2: configs
        written then still load (with a warning), and mean the same campaign."""
        if isinstance(data, dict) and "batch_size" in data:
            if "trajectories_per_step" in data:
                raise ValueError("give trajectories_per_step only (batch_size is its old name)")
            data = {("trajectories_per_step" if k == "batch_size" else k): v for k, v in data.items()}
            warnings.warn(
                "GFlowNet setting batch_size is now called trajectories_per_step; please rename it",
                FutureWarning,
                stacklevel=2,
            )
        return data


class MOGFNSettings(GFlowNetSettings):
    """MOGFN-PC's own hyper-parameters (defaults follow the paper's code where it has one)."""

    beta: float | tuple[float, float] = Field(
        16.0, description="reward exponent: a number, or [low, high] sampled per trajectory"
    )
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration of the preferences")
    thermometer_bins: int = Field(50, ge=2, description="bins of the preference/beta encoding")
    scalarization: Literal["weighted_sum", "tchebycheff"] = "weighted_sum"
    min_log_reward: float | None = Field(
        None,
        description=(
            "optional floor of beta * log s (recursionpharma/gflownet clips at -75); off by default: "
            "with a large beta a floor flattens every low reward to the same value"
        ),
    )

    @model_validator(mode="after")
    def _check_beta(self) -> MOGFNSettings:
        low, high = (self.beta, self.beta) if isinstance(self.beta, float | int) else self.beta
        if not 0 < low <= high:
            raise ValueError(f"beta must be positive, with low <= high; got {self.beta}")
        return self


class _InCampaign(Strict):
    """What a GFlowNet generator needs in a campaign on top of its training settings."""

    pool_size: int = Field(256, ge=1, description="candidates proposed per round")
    steps_per_round: int = Field(
        200, ge=0, description="training steps per round (the cap when train_seconds is set)"
    )
    train_seconds: float | None = Field(
        None,
        gt=0,
        description=(
            "optional time budget of a round's training (warm start included), checked after each "
            "step: training stops at steps_per_round or train_seconds, whichever comes first. "
            "The steps done then depend on the machine's speed and load, so a seed no longer "
            "fixes the run"
        ),
    )
    warm_start_steps: int = Field(
        WARM_START_STEPS,
        ge=0,
        description=(
            "offline steps before the first round's training, on backward trajectories of the "
            "measured candidates and the seed set (0: none)"
        ),
    )
    kappa: float = Field(0.0, ge=0, description="optimism: reward uses proxy mean + kappa * std")
    replay_measured: bool = Field(True, description="measured candidates join the replay buffer")
    local_share: float = Field(
        LOCAL_SHARE,
        ge=0,
        le=1,
        description=(
            "share of each pool sampled near the best measured candidates: the policy completes "
            "one of them after undoing up to local_steps of its last actions (0: every candidate "
            "from the initial state)"
        ),
    )
    local_steps: int = Field(LOCAL_STEPS, ge=1, description="most actions undone before a local completion")
    local_anchors: int = Field(
        LOCAL_ANCHORS,
        ge=1,
        description="best measured candidates (Pareto rank, then ranks) local samples start near",
    )


class MOGFNGeneratorConfig(MOGFNSettings, _InCampaign):
    """Preference-conditional multi-objective GFlowNet (MOGFN-PC, Jain et al. 2023),
    trained each round against the proxy and warm-started from the previous round."""

    kind: Literal["mogfn"]


class OPGFNGeneratorConfig(GFlowNetSettings, _InCampaign):
    """Order-preserving GFlowNet (OP-GFN, Chen & Mauch 2024): learns a reward consistent
    with Pareto dominance on the proxy's predictions and the measurements; no preference,
    scalarization or reward exponent. Measured candidates enter the batches' order through
    replay, so it replays a quarter of each step's trajectories by default."""

    kind: Literal["opgfn"]
    replay_fraction: float = Field(
        0.25, gt=0, lt=1, description="share of each step replayed (measured and best sampled candidates)"
    )

    @model_validator(mode="after")
    def _uniform_backward(self) -> OPGFNGeneratorConfig:
        if self.learn_backward:
            raise ValueError("OP-GFN trains with a uniform backward policy; learn_backward must be false")
        return self
