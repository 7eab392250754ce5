"""Config -> objects. The only place that reads a CampaignConfig's component settings."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from data.objectives import Objective, to_max_space
from data.spaces import GridSpace, SearchSpace, SequenceSpace
from flows.config import (
    CampaignConfig,
    ConfigError,
    GeneratorConfig,
    GeneticGeneratorConfig,
    GridSpaceConfig,
    MOGFNGeneratorConfig,
    RandomGeneratorConfig,
    SequenceSpaceConfig,
)
from flows.runtime import pick_device
from models.generators.base import Generator
from models.generators.genetic import GeneticGenerator
from models.generators.gflownet import MOGFNGenerator, MOGFNSettings
from models.generators.random import RandomGenerator
from models.rewards import scalarization
from oracles.base import Oracle
from oracles.registry import UnknownOracleError, oracle_class

__all__ = ["CampaignSetup", "build_generator", "build_setup", "build_space"]


@dataclass
class CampaignSetup:
    """The objects a campaign runs with, built once from its config."""

    config: CampaignConfig
    space: SearchSpace
    oracle: Oracle
    generators: list[Generator]
    config_ref_point: torch.Tensor | None
    """Reference point in maximization space from the config or the oracle; None = infer."""

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.oracle.objectives


def build_space(config: GridSpaceConfig | SequenceSpaceConfig) -> SearchSpace:
    """The SearchSpace a space config describes."""
    if isinstance(config, GridSpaceConfig):
        return GridSpace(config.dims, config.levels)
    return SequenceSpace(config.alphabet, config.min_length, config.max_length)


def build_generator(
    config: GeneratorConfig,
    space: SearchSpace,
    *,
    num_objectives: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Generator:
    """The Generator a generator config describes."""
    if isinstance(config, MOGFNGeneratorConfig):
        beta = config.beta if isinstance(config.beta, float | int) else tuple(config.beta)
        settings = MOGFNSettings(
            beta=beta,
            alpha=config.alpha,
            thermometer_bins=config.thermometer_bins,
            scalarization=scalarization(config.scalarization),
            epsilon=config.epsilon,
            batch_size=config.batch_size,
            lr=config.lr,
            logz_lr=config.logz_lr,
            hidden=config.hidden,
            layers=config.layers,
            policy=config.policy,
            learn_backward=config.learn_backward,
            replay_fraction=config.replay_fraction,
            replay_capacity=config.replay_capacity,
        )
        try:
            return MOGFNGenerator(
                space,
                num_objectives,
                settings,
                steps_per_round=config.steps_per_round,
                kappa=config.kappa,
                replay_measured=config.replay_measured,
                seed=seed,
                device=device,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"generators: mogfn: {exc}") from None
    if isinstance(config, RandomGeneratorConfig):
        return RandomGenerator(space)
    if isinstance(config, GeneticGeneratorConfig):
        return GeneticGenerator(
            space, mutation_rate=config.mutation_rate, crossover_rate=config.crossover_rate
        )
    raise ConfigError(f"generators: unsupported generator config {config!r}")


def _build_oracle(config: CampaignConfig, space: SearchSpace) -> Oracle:
    try:
        cls = oracle_class(config.oracle.name)
    except UnknownOracleError as exc:
        raise ConfigError(f"oracle.name: {exc}") from None
    try:
        inspect.signature(cls).bind(space, **config.oracle.params)
    except TypeError as exc:
        raise ConfigError(f"oracle.params: {exc}") from None
    try:
        return cls(space, **config.oracle.params)
    except Exception as exc:  # a user's oracle may fail in any way; say which and why
        raise ConfigError(f"oracle: {config.oracle.name}: {type(exc).__name__}: {exc}") from None


def build_setup(config: CampaignConfig, source: str = "campaign config") -> CampaignSetup:
    """Build and cross-check every component; ConfigError names ``source`` and the field."""
    try:
        return _build_setup(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _build_setup(config: CampaignConfig) -> CampaignSetup:
    space = build_space(config.space)
    oracle = _build_oracle(config, space)
    m = oracle.num_objectives
    raw_ref = config.ref_point if config.ref_point is not None else oracle.ref_point
    if config.ref_point is not None and len(config.ref_point) != m:
        raise ConfigError(
            f"ref_point: has {len(config.ref_point)} values but oracle "
            f"{config.oracle.name!r} has {m} objectives ({', '.join(o.name for o in oracle.objectives)})"
        )
    if config.ref_point is None and raw_ref is not None and len(raw_ref) != m:
        raise ConfigError(
            f"oracle: {config.oracle.name}: ref_point has {len(raw_ref)} values for {m} objectives"
        )
    if config.runtime.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device: 'cuda' but no CUDA device is available (use 'auto')")
    ref = None
    if raw_ref is not None:
        ref = to_max_space(torch.tensor(raw_ref, dtype=torch.double), oracle.objectives)
    device = pick_device(config.runtime.device)
    generators = [
        build_generator(g, space, num_objectives=m, seed=config.seed, device=device)
        for g in config.generators
    ]
    names = [g.name for g in generators]
    if len(set(names)) != len(names):
        raise ConfigError(f"generators: each kind may appear once, got {names}")
    return CampaignSetup(config, space, oracle, generators, ref)
