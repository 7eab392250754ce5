"""The diffusion generator's settings, declared once (the campaign config embeds
:class:`DiffusionGeneratorConfig` as it is)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paretolab.data.strict import Strict

__all__ = ["DiffusionGeneratorConfig", "DiffusionSettings"]


class DiffusionSettings(Strict):
    """Denoiser, value heads, guidance and edit constraints."""

    hidden: int = Field(64, ge=8, description="width of the denoiser")
    layers: int = Field(2, ge=1, description="transformer layers")
    heads: int = Field(4, ge=1, description="attention heads (hidden must be a multiple)")
    ensemble: int = Field(4, ge=1, description="value heads (their spread is the guidance's uncertainty)")
    schedule: Literal["linear", "cosine"] = Field("linear", description="masked share over noise levels")
    lr: float = Field(1e-3, gt=0, description="learning rate of denoiser and value heads")
    batch_size: int = Field(64, ge=1, description="rows per training step")
    value_weight: float = Field(1.0, ge=0, description="weight of the value loss beside the denoising loss")
    mutants_per_candidate: int = Field(
        4, ge=0, description="random edits of each known candidate the value heads also learn the proxy on"
    )
    guidance: Literal["scalarized", "ehvi"] = Field(
        "scalarized",
        description="scalarized: preference-weighted value (a Dirichlet preference per seed); "
        "ehvi: expected hypervolume improvement over the measured front across the value heads",
    )
    alpha: float = Field(1.0, gt=0, description="Dirichlet concentration of the preferences")
    guidance_steps: int = Field(20, ge=0, description="gradient steps on the hidden-state perturbation")
    step_size: float = Field(1.0, gt=0, description="learning rate (Adam) of those steps")
    kl_weight: float = Field(
        0.1,
        ge=0,
        le=1,
        description="lambda: weight of staying near the denoiser vs the guidance",
    )
    max_edits: int = Field(4, ge=1, description="most positions a proposal changes from its seed")
    frozen_positions: list[int] = Field(
        default_factory=list, description="0-based token positions that must never change"
    )
    attempts: int = Field(3, ge=1, description="edits tried per seed until one improves the guidance")
    num_seeds: int = Field(32, ge=1, description="measured candidates edits start from (best ranks first)")


class DiffusionGeneratorConfig(DiffusionSettings):
    """Guided discrete diffusion (LaMBO-2, Gruver et al. 2023): a masked denoiser with value
    heads, trained each round on the measured candidates (and the space's seeds) with the
    proxy distilled into the heads; proposals are guided edits of the best measured ones."""

    kind: Literal["diffusion"]
    pool_size: int = Field(256, ge=1, description="candidates proposed per round")
    steps_per_round: int = Field(
        100, ge=0, description="training steps per round (the cap when train_seconds is set)"
    )
    warm_start_steps: int = Field(
        200, ge=0, description="extra training steps before the first round (an untrained denoiser)"
    )
    train_seconds: float | None = Field(
        None,
        gt=0,
        description="optional time budget of a round's training (a seed then no longer fixes it)",
    )
    kappa: float = Field(0.0, ge=0, description="optimism: the value heads learn proxy mean + kappa * std")
