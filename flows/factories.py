"""Config -> objects. The only place that reads a CampaignConfig's component settings."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

import torch

from paretolab.data.molecules import MoleculeFilters, MorganFingerprints, nci_seed_path, read_seed_file
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.spaces import GridSpace, MoleculeSpace, SearchSpace, SequenceSpace
from paretolab.flows.config import (
    CampaignConfig,
    ConfigError,
    DiffusionGeneratorConfig,
    GeneratorConfig,
    GeneticGeneratorConfig,
    GridSpaceConfig,
    MOGFNGeneratorConfig,
    MoleculeSpaceConfig,
    OPGFNGeneratorConfig,
    RandomGeneratorConfig,
    SequenceSpaceConfig,
)
from paretolab.flows.runtime import pick_device
from paretolab.models.generators.base import Generator
from paretolab.models.generators.diffusion import DiffusionGenerator
from paretolab.models.generators.genetic import GeneticGenerator
from paretolab.models.generators.gflownet import MOGFNGenerator, OPGFNGenerator
from paretolab.models.generators.random import RandomGenerator
from paretolab.models.proxies.gp import KernelName
from paretolab.oracles.base import Oracle
from paretolab.oracles.registry import UnknownOracleError, oracle_class

__all__ = ["CampaignSetup", "build_generator", "build_setup", "build_space", "proxy_kernel"]


@dataclass
class CampaignSetup:
    """The objects a campaign runs with, built once from its config."""

    config: CampaignConfig
    space: SearchSpace
    oracle: Oracle
    generators: list[Generator]
    config_ref_point: torch.Tensor | None
    """Reference point in maximization space from the config or the oracle; None = infer."""
    proxy_kernel: KernelName = "rbf"

    @property
    def objectives(self) -> tuple[Objective, ...]:
        return self.oracle.objectives


def build_space(
    config: GridSpaceConfig | SequenceSpaceConfig | MoleculeSpaceConfig, base_dir: Path | None = None
) -> SearchSpace:
    """The SearchSpace a space config describes (relative seed paths are under ``base_dir``)."""
    if isinstance(config, GridSpaceConfig):
        return GridSpace(config.dims, config.levels)
    if isinstance(config, MoleculeSpaceConfig):
        return _molecule_space(config, base_dir or Path.cwd())
    return SequenceSpace(config.alphabet, config.min_length, config.max_length)


def _molecule_space(config: MoleculeSpaceConfig, base_dir: Path) -> MoleculeSpace:
    path = nci_seed_path() if config.seeds == "nci" else base_dir / config.seeds
    try:
        seeds = read_seed_file(path, config.seed_column)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"space.seeds: {exc}") from None
    f = config.filters
    try:
        filters = MoleculeFilters(
            heavy_atoms=tuple(f.heavy_atoms) if f.heavy_atoms else None,
            elements=frozenset(f.elements) if f.elements is not None else None,
            neutral=f.neutral,
            no_radicals=f.no_radicals,
            pains=f.pains,
        )
        fingerprints = MorganFingerprints(
            config.fingerprint.radius, config.fingerprint.size, counts=config.fingerprint.kind == "count"
        )
        return MoleculeSpace(
            seeds.smiles,
            config.max_length,
            extra_tokens=config.extra_tokens,
            filters=filters,
            fingerprints=fingerprints,
        )
    except ValueError as exc:
        raise ConfigError(f"space: {exc}") from None


def proxy_kernel(config: CampaignConfig) -> KernelName:
    """The GP kernel unless the config names one: MinMax (Tanimoto) on fingerprints for
    molecules, MinMax on k-mer counts for sequences, RBF for grids (each the best measured
    choice: ``benchmarks/molecular_proxy.py``, ``benchmarks/sequence_proxy.py``)."""
    kernel = config.proxy.kernel
    if kernel == "auto":
        if isinstance(config.space, MoleculeSpaceConfig):
            return "minmax"
        return "kmer" if isinstance(config.space, SequenceSpaceConfig) else "rbf"
    if kernel == "minmax" and isinstance(config.space, GridSpaceConfig):
        raise ConfigError("proxy.kernel: minmax needs count or bit features (molecule or sequence spaces)")
    if kernel == "kmer" and not isinstance(config.space, SequenceSpaceConfig):
        raise ConfigError("proxy.kernel: kmer counts words of letters; it needs a sequence space")
    return kernel


def build_generator(
    config: GeneratorConfig,
    space: SearchSpace,
    *,
    num_objectives: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Generator:
    """The Generator a generator config describes; a setting the generator refuses (e.g.
    for this space) is a ConfigError naming the generator."""
    try:
        return _generator(config, space, num_objectives, seed, device)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"generators: {config.kind}: {exc}") from None


def _generator(
    config: GeneratorConfig, space: SearchSpace, num_objectives: int, seed: int, device: torch.device | str
) -> Generator:
    # a learned generator's config is its settings (it embeds them), plus the campaign's fields
    if isinstance(config, MOGFNGeneratorConfig | OPGFNGeneratorConfig):
        kind = MOGFNGenerator if isinstance(config, MOGFNGeneratorConfig) else OPGFNGenerator
        return kind(
            space,
            num_objectives,
            config,
            steps_per_round=config.steps_per_round,
            train_seconds=config.train_seconds,
            warm_start_steps=config.warm_start_steps,
            kappa=config.kappa,
            replay_measured=config.replay_measured,
            local_share=config.local_share,
            local_steps=config.local_steps,
            local_anchors=config.local_anchors,
            seed=seed,
            device=device,
        )
    if isinstance(config, DiffusionGeneratorConfig):
        return DiffusionGenerator(
            space,
            num_objectives,
            config,
            steps_per_round=config.steps_per_round,
            warm_start_steps=config.warm_start_steps,
            train_seconds=config.train_seconds,
            kappa=config.kappa,
            seed=seed,
            device=device,
        )
    if isinstance(config, RandomGeneratorConfig):
        return RandomGenerator(space)
    if isinstance(config, GeneticGeneratorConfig):
        return GeneticGenerator(
            space, mutation_rate=config.mutation_rate, crossover_rate=config.crossover_rate
        )
    raise TypeError(f"unsupported generator config {config!r}")


def _build_oracle(config: CampaignConfig, space: SearchSpace) -> Oracle:
    field = "oracle.name" if config.oracle.name else "oracle.target"
    try:
        cls = oracle_class(config.oracle.label, config.base_dir)
    except UnknownOracleError as exc:
        raise ConfigError(f"{field}: {exc}") from None
    try:
        inspect.signature(cls).bind(space, **config.oracle.params)
    except TypeError as exc:
        raise ConfigError(f"oracle.params: {exc}") from None
    try:
        return cls(space, **config.oracle.params)
    except Exception as exc:  # a user's oracle may fail in any way; say which and why
        raise ConfigError(f"oracle: {config.oracle.label}: {type(exc).__name__}: {exc}") from None


def build_setup(config: CampaignConfig, source: str = "campaign config") -> CampaignSetup:
    """Build and cross-check every component; ConfigError names ``source`` and the field."""
    try:
        return _build_setup(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _build_setup(config: CampaignConfig) -> CampaignSetup:
    kernel = proxy_kernel(config)
    space = build_space(config.space, config.base_dir)
    oracle = _build_oracle(config, space)
    m = oracle.num_objectives
    raw_ref = config.ref_point if config.ref_point is not None else oracle.ref_point
    if config.ref_point is not None and len(config.ref_point) != m:
        raise ConfigError(
            f"ref_point: has {len(config.ref_point)} values but oracle "
            f"{config.oracle.label!r} has {m} objectives ({', '.join(o.name for o in oracle.objectives)})"
        )
    if config.ref_point is None and raw_ref is not None and len(raw_ref) != m:
        raise ConfigError(
            f"oracle: {config.oracle.label}: ref_point has {len(raw_ref)} values for {m} objectives"
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
    return CampaignSetup(config, space, oracle, generators, ref, kernel)
