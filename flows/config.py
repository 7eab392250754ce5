"""Campaign configuration: what a person chooses, validated before anything runs.

Loaded from YAML by :func:`load_config`; unknown keys and wrong types are errors that
name the file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path, PurePath
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator

from paretolab.data.strict import Strict
from paretolab.models.acquisition import AcquisitionConfig
from paretolab.models.generators.diffusion.config import DiffusionGeneratorConfig
from paretolab.models.generators.genetic import GeneticGeneratorConfig
from paretolab.models.generators.gflownet.config import (
    MOGFNGeneratorConfig,
    OPGFNGeneratorConfig,
)
from paretolab.models.generators.random import RandomGeneratorConfig
from paretolab.models.proxies.gp import ProxyConfig

__all__ = [
    "AcquisitionConfig",
    "CampaignConfig",
    "ConfigError",
    "DiffusionGeneratorConfig",
    "GeneticGeneratorConfig",
    "FingerprintConfig",
    "GridSpaceConfig",
    "LabConfig",
    "MOGFNGeneratorConfig",
    "MoleculeFiltersConfig",
    "MoleculeSpaceConfig",
    "OPGFNGeneratorConfig",
    "OracleConfig",
    "ProxyConfig",
    "RandomGeneratorConfig",
    "RuntimeConfig",
    "SequenceSpaceConfig",
    "TrackingConfig",
    "load_config",
]


class ConfigError(ValueError):
    """A campaign config is invalid; the message names the file and field."""


class GridSpaceConfig(Strict):
    """A grid of ``dims`` coordinates with ``levels`` levels each."""

    kind: Literal["grid"] = "grid"
    dims: int = Field(ge=1, description="number of coordinates")
    levels: int = Field(ge=2, description="levels per coordinate")


class SequenceSpaceConfig(Strict):
    """Strings over ``alphabet`` with a length in [min_length, max_length]; ``length: n``
    is short for ``min_length: n, max_length: n``."""

    kind: Literal["sequence"] = "sequence"
    alphabet: str = Field(min_length=1)
    min_length: int = Field(ge=1)
    max_length: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _length(cls, data: Any) -> Any:
        if isinstance(data, dict) and "length" in data:
            data = dict(data)
            length = data.pop("length")
            if "min_length" in data or "max_length" in data:
                raise ValueError("give length, or min_length and max_length, not both")
            data["min_length"] = data["max_length"] = length
        return data

    @model_validator(mode="after")
    def _lengths(self) -> SequenceSpaceConfig:
        if self.min_length > self.max_length:
            raise ValueError("min_length must not exceed max_length")
        return self


class MoleculeFiltersConfig(Strict):
    """Structural rules a molecule must pass; each is off unless set."""

    heavy_atoms: list[int] | None = Field(None, description="[low, high] heavy-atom count, inclusive")
    elements: list[str] | None = Field(None, description="allowed element symbols, e.g. [C, N, O, S, F, Cl]")
    neutral: bool = Field(False, description="no formal charges")
    no_radicals: bool = Field(False, description="no unpaired electrons")
    pains: bool = Field(False, description="no PAINS alert (RDKit's FilterCatalog)")

    @model_validator(mode="after")
    def _range(self) -> MoleculeFiltersConfig:
        if self.heavy_atoms is not None and (
            len(self.heavy_atoms) != 2 or not 1 <= self.heavy_atoms[0] <= self.heavy_atoms[1]
        ):
            raise ValueError(f"heavy_atoms must be [low, high] with 1 <= low <= high, got {self.heavy_atoms}")
        return self


class FingerprintConfig(Strict):
    """Morgan fingerprints, the features of molecules for the proxy."""

    kind: Literal["count", "bit"] = Field("count", description="count vectors (MinMax) or bits (Tanimoto)")
    radius: int = Field(2, ge=1, le=6)
    size: int = Field(2048, ge=64, le=16384)


class MoleculeSpaceConfig(Strict):
    """Single molecules (canonical SMILES) generated as SELFIES token sequences."""

    kind: Literal["molecule"] = "molecule"
    max_length: int = Field(64, ge=1, description="most SELFIES tokens of a molecule")
    seeds: str = Field(
        "nci",
        min_length=1,
        description="'nci' (RDKit's NCI set) or a .smi/.csv/.parquet file, relative to the config file",
    )
    seed_column: str | None = Field(None, description="SMILES column of a CSV/parquet seed file")
    extra_tokens: list[str] = Field(default_factory=list, description="SELFIES tokens added to the alphabet")
    filters: MoleculeFiltersConfig = MoleculeFiltersConfig()
    fingerprint: FingerprintConfig = FingerprintConfig()


SpaceConfig = Annotated[
    GridSpaceConfig | SequenceSpaceConfig | MoleculeSpaceConfig, Field(discriminator="kind")
]


class OracleConfig(Strict):
    """The oracle: a registered ``name`` (built-in or plug-in) or a ``target`` import path
    ``module:Class`` in the user's own package, with the constructor's ``params``."""

    name: str | None = Field(None, min_length=1, description="built-in or entry-point oracle name")
    target: str | None = Field(
        None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="import path 'package.module:Class'"
    )
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> OracleConfig:
        if (self.name is None) == (self.target is None):
            raise ValueError("give exactly one of name (a registered oracle) or target ('module:Class')")
        if self.name is not None and ":" in self.name:
            raise ValueError(f"name {self.name!r} looks like an import path; write it as target: {self.name}")
        return self

    @property
    def label(self) -> str:
        """The name or target, for messages."""
        return self.name or self.target or ""


class LabConfig(Strict):
    """Where an asynchronous (lab) oracle's requests go and results come in, and how long a
    round waits. Folders are relative to the campaign directory."""

    request_dir: str = Field("lab/requests", min_length=1, description="request files for the lab")
    inbox_dir: str = Field("lab/inbox", min_length=1, description="results files dropped here are picked up")
    continue_after_hours: float | None = Field(
        None,
        ge=0,
        description="close a round with the results that arrived (at least one) after this long; "
        "None waits for all",
    )

    @field_validator("request_dir", "inbox_dir")
    @classmethod
    def _inside_the_campaign(cls, value: str) -> str:
        """A lab folder is a subfolder of the campaign directory: never an absolute path, the
        campaign directory itself, or a path through ``..`` (files there would be moved or
        written outside the campaign)."""
        path = PurePath(value)
        if path.is_absolute() or ".." in path.parts or os.path.normpath(value) in (".", ""):
            raise ValueError(
                f"{value!r} is not a folder inside the campaign directory; give a relative path "
                "without '..', e.g. lab/inbox"
            )
        return value


GeneratorConfig = Annotated[
    RandomGeneratorConfig
    | GeneticGeneratorConfig
    | MOGFNGeneratorConfig
    | OPGFNGeneratorConfig
    | DiffusionGeneratorConfig,
    Field(discriminator="kind"),
]


class TaskRunnerConfig(Strict):
    """Where a round's mapped tasks run (oracle chunks, pool-scoring chunks, generator
    updates): threads in this process, or a Dask cluster."""

    kind: Literal["threads", "dask"] = Field(
        "threads", description="threads: in this process; dask: a Dask cluster (prefect-dask)"
    )
    address: str | None = Field(
        None, description="dask: the scheduler's address (tcp://host:8786); none = a local cluster"
    )
    workers: int = Field(2, ge=1, description="dask, no address: worker processes of a local cluster")
    oracle_chunk: int | None = Field(
        None, ge=1, description="candidates per oracle task; none = the whole batch in one call"
    )
    generator_updates: Literal["here", "runner"] = Field(
        "here",
        description="where a round's generators update and sample, side by side, one task each: "
        "here = threads of the campaign's process, whatever the runner (training stays on this "
        "machine, e.g. its GPU); runner = the task runner (Dask workers: they need the generators' "
        "device, and a space that pickles: not molecules)",
    )
    score_chunk: int | None = Field(
        None,
        ge=1,
        description="pool candidates per scoring task (each greedy pick scores the pool); "
        "none = the whole pool in one; with threads, chunks are scored in turn in this process",
    )

    @model_validator(mode="after")
    def _address_needs_dask(self) -> TaskRunnerConfig:
        if self.address is not None and self.kind != "dask":
            raise ValueError("address is a Dask scheduler's; set kind: dask")
        return self


class RuntimeConfig(Strict):
    """Where and how the numbers are crunched; does not change the campaign's identity."""

    task_runner: TaskRunnerConfig = TaskRunnerConfig()

    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="torch threads; 1 is fastest for GP work on small machines, null = torch's default",
    )

    @field_validator("torch_threads")
    @classmethod
    def _at_most_the_cores(cls, value: int | None) -> int | None:
        cores = os.cpu_count() or 1
        if value is not None and value > cores:
            raise ValueError(
                f"{value} is more than this machine's {cores} cores (torch would only slow down)"
            )
        return value


class TrackingConfig(Strict):
    """MLflow tracking; ``MLFLOW_TRACKING_URI`` overrides ``tracking_uri``."""

    experiment: str = Field("paretolab", min_length=1, description="MLflow experiment")
    tracking_uri: str | None = None


class CampaignConfig(Strict):
    """A whole campaign. See README 'Campaign config' for every field."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
    seed: int = Field(0, ge=0, description="seed of every random draw")
    space: SpaceConfig
    oracle: OracleConfig
    ref_point: list[float] | None = Field(
        None, description="in the oracle's raw units; default: the oracle's, else inferred"
    )
    initial_design: int = Field(16, ge=1, description="random candidates measured before round 1")
    rounds: int = Field(ge=0, description="rounds after the initial design")
    batch_size: int = Field(gt=0, description="candidates measured per round")
    budget: int | None = Field(None, gt=0, description="max oracle evaluations, initial design included")
    proxy: ProxyConfig = ProxyConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()
    generators: list[GeneratorConfig] = Field(min_length=1)
    oracle_retries: int = Field(2, ge=0, description="retries of a batch whose oracle call failed")
    lab: LabConfig = LabConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    tracking: TrackingConfig = TrackingConfig()

    _base_dir: Path | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _oracle_by_name(cls, data: Any) -> Any:
        """``oracle: NAME`` is short for ``oracle: {name: NAME}``."""
        if isinstance(data, dict) and isinstance(data.get("oracle"), str):
            data = {**data, "oracle": {"name": data["oracle"]}}
        return data

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the config are relative to: the config file's."""
        return self._base_dir or Path.cwd()

    @model_validator(mode="after")
    def _generators_can_travel(self) -> CampaignConfig:
        runner = self.runtime.task_runner
        if runner.kind == "dask" and runner.generator_updates == "runner" and self.space.kind == "molecule":
            raise ValueError(
                "runtime.task_runner.generator_updates: 'runner' sends the generators to the Dask "
                "workers, and a molecule space cannot travel (RDKit's fingerprint generator does not "
                "pickle); use 'here'"
            )
        return self

    IDENTITY_EXCLUDES: ClassVar[frozenset[str]] = frozenset(
        {"rounds", "budget", "oracle_retries", "lab", "runtime", "tracking"}
    )

    def identity_data(self) -> dict[str, Any]:
        """The fields that make a campaign what it is (see :meth:`identity_hash`)."""
        data = self.model_dump(mode="json", exclude=set(self.IDENTITY_EXCLUDES))
        # the unset one of oracle name/target is left out, so adding `target` kept old hashes
        data["oracle"] = {k: v for k, v in data["oracle"].items() if v is not None}
        data["generators"] = [_identity_of_generator(g) for g in data["generators"]]
        if data["proxy"].get("feasibility") == "auto":  # added in 0.2: at its default, old hashes hold
            del data["proxy"]["feasibility"]
        # how much of the data the proxy is fitted on is a cost setting, like `runtime`: a
        # campaign that outgrows exact GPs can resume with a larger or smaller bound
        data["proxy"].pop("max_points", None)
        return data

    def identity_hash(self) -> str:
        """Hash of everything that decides what the campaign measures.

        ``rounds``, ``budget``, ``oracle_retries``, ``lab``, ``runtime``, ``tracking`` and
        ``proxy.max_points`` are left out so that a campaign can be extended, nursed through
        a flaky oracle or a slow lab, moved to another machine, or fitted on more or less of
        its data, and still resume.
        """
        data = self.identity_data()
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_GFLOWNET_FIELDS_BEFORE_0_2 = {
    "opgfn": frozenset(
        "kind pool_size steps_per_round batch_size kappa epsilon lr policy hidden layers "
        "replay_fraction replay_capacity replay_measured".split()
    ),
}
_GFLOWNET_FIELDS_BEFORE_0_2["mogfn"] = _GFLOWNET_FIELDS_BEFORE_0_2["opgfn"] | frozenset(
    "beta alpha scalarization logz_lr learn_backward thermometer_bins".split()
)


def _identity_of_generator(data: dict[str, Any]) -> dict[str, Any]:
    """A generator's identity as campaigns created before the GFlowNet settings were
    declared once hashed it: ``trajectories_per_step`` under its old name ``batch_size``,
    and the settings the config did not offer then left out while at their defaults, so
    those campaigns still resume."""
    kind = data.get("kind")
    if kind not in _GFLOWNET_FIELDS_BEFORE_0_2:
        return data
    data = dict(data)
    data["batch_size"] = data.pop("trajectories_per_step")
    defaults = (MOGFNGeneratorConfig if kind == "mogfn" else OPGFNGeneratorConfig).model_fields
    for name in set(data) - _GFLOWNET_FIELDS_BEFORE_0_2[kind]:
        if name in defaults and data[name] == defaults[name].default:
            del data[name]
    return data


def _union_tags(*annotated: Any) -> frozenset[str]:
    """The ``kind`` tags of discriminated unions (they appear in pydantic error paths)."""
    members = [m for a in annotated for m in get_args(get_args(a)[0])]
    return frozenset(get_args(m.model_fields["kind"].annotation)[0] for m in members)


_TAGS = _union_tags(SpaceConfig, GeneratorConfig)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in _TAGS) or "(top level)"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model that holds the field at ``loc`` (walking nested models, list items
    and tagged unions), or None where the path leaves the models."""
    model: Any = CampaignConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif part in _TAGS:
            model = next(
                (m for m in _models_in(model) if get_args(m.model_fields["kind"].annotation) == (part,)), None
            )
        else:
            return None
        members = _models_in(model)
        model = members[0] if len(members) == 1 else model
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation (Optional, list, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _describe_errors(exc: ValidationError) -> list[str]:
    """Every validation error as ``field: problem``; an unknown key gets a did-you-mean
    from its model's fields, which also explains a "Field required" for that field."""
    errors = exc.errors()
    explained: set[tuple[Any, ...]] = set()
    problems: list[tuple[tuple[Any, ...], str]] = []
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] != "extra_forbidden":
            problems.append((loc, error["msg"]))
            continue
        model = _model_at(loc[:-1])
        known = sorted(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}" if known else ""
        problems.append((loc, f"unknown field{f' ({hint})' if hint else ''}"))
        if close:
            explained.add((*loc[:-1], close[0]))
    return [
        f"{_field_path(loc)}: {msg}"
        for loc, msg in problems
        if not (msg == "Field required" and loc in explained)
    ]


def parse_config(data: Any, source: str) -> CampaignConfig:
    """Validate a config mapping; ``source`` names it in errors, and every problem is
    reported in one line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of campaign fields, got {type(data).__name__}")
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as exc:
        problems = _describe_errors(exc)
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {count}{'; '.join(problems)}") from None


MAX_CONFIG_VALUES = 100_000
"""Most values a config may hold once its YAML aliases are expanded (a shipped one holds
under 100): an "alias bomb" of a few lines would otherwise expand to billions."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives a key twice (YAML 1.2 forbids it;
    PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(value: Any, sizes: dict[int, int]) -> int:
    """How many values ``value`` holds with shared (aliased) parts counted each time they
    appear, computed once per shared part."""
    if not isinstance(value, dict | list):
        return 1
    if id(value) not in sizes:
        children = value.values() if isinstance(value, dict) else value
        sizes[id(value)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(value)]


def load_config(path: str | Path) -> CampaignConfig:
    """Read and validate a campaign YAML file (UTF-8; no key twice; at most
    ``MAX_CONFIG_VALUES`` values once aliases are expanded)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds no objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if _expanded_size(data, {}) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{path}: expands to more than {MAX_CONFIG_VALUES:,} values through YAML aliases; "
            "a campaign config is far smaller"
        )
    config = parse_config(data, str(path))
    config._base_dir = path.resolve().parent
    return config
