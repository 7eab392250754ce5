"""Guided discrete diffusion (LaMBO-2, Gruver et al. 2023, "Protein Design with Guided
Discrete Diffusion", NeurIPS, arXiv 2305.20009), split along the maths: corruption
process (:mod:`.corruption`), denoiser with value heads (:mod:`.denoiser`), guidance
objectives (:mod:`.guidance`), reverse process and guided edits (:mod:`.sampler`), and
the campaign glue (:mod:`.generator`)."""

from paretolab.models.generators.diffusion.config import DiffusionGeneratorConfig, DiffusionSettings
from paretolab.models.generators.diffusion.corruption import AbsorbingCorruption, TokenCodes
from paretolab.models.generators.diffusion.denoiser import Denoiser
from paretolab.models.generators.diffusion.generator import DiffusionGenerator
from paretolab.models.generators.diffusion.guidance import Guidance, HypervolumeGuidance, ScalarizedGuidance
from paretolab.models.generators.diffusion.sampler import EditResult, GuidedSampler

__all__ = [
    "AbsorbingCorruption",
    "Denoiser",
    "DiffusionGenerator",
    "DiffusionGeneratorConfig",
    "DiffusionSettings",
    "EditResult",
    "Guidance",
    "GuidedSampler",
    "HypervolumeGuidance",
    "ScalarizedGuidance",
    "TokenCodes",
]
