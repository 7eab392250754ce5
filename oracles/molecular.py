"""Chemistry oracles: RDKit properties of molecules as objectives.

Each objective is one property (QED, synthetic accessibility, logP, molecular weight,
TPSA, H-bond donors/acceptors, Tanimoto similarity to target molecules) or a
desirability: the geometric mean of per-property desirabilities, each mapping a target
range to [0, 1] (Derringer & Suich 1980, J. Qual. Technol. 12(4), eqs. 2-4), which
builds one objective from several properties. Results are cached by canonical SMILES; a
molecule RDKit cannot handle is a NaN row with RDKit's reason.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rdkit import Chem, DataStructs, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors

from paretolab.data.molecules import NAMED_MOLECULES, named_or_smiles, parse_smiles
from paretolab.data.spaces import MoleculeSpace, SearchSpace
from paretolab.oracles.base import Objective, Oracle, OracleResult

__all__ = [
    "PROPERTIES",
    "Desirability",
    "MolecularOracle",
    "PropertyObjective",
    "TanimotoSimilarity",
    "synthetic_accessibility",
]

PropertyName = Literal["qed", "sa", "logp", "mw", "tpsa", "hbd", "hba", "similarity"]

NATURAL_DIRECTION: dict[str, Literal["max", "min"]] = {"qed": "max", "sa": "min", "similarity": "max"}
"""Properties whose better direction goes without saying; the others must be told."""


@cache
def _sascorer() -> ModuleType:
    path = Path(RDConfig.RDContribDir) / "SA_Score" / "sascorer.py"
    spec = importlib.util.spec_from_file_location("paretolab_sascorer", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"RDKit's SA scorer is missing at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synthetic_accessibility(mol: Chem.Mol) -> float:
    """SA score, 1 (easy) to 10 (hard) (Ertl & Schuffenhauer 2009, J. Cheminf. 1:8), from
    the scorer shipped in RDKit's Contrib folder."""
    return float(_sascorer().calculateScore(mol))


PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": QED.qed,
    "sa": synthetic_accessibility,
    "logp": Crippen.MolLogP,
    "mw": Descriptors.MolWt,
    "tpsa": rdMolDescriptors.CalcTPSA,
    "hbd": rdMolDescriptors.CalcNumHBD,
    "hba": rdMolDescriptors.CalcNumHBA,
}
"""RDKit descriptor of each property name (similarity needs targets: TanimotoSimilarity)."""


class TanimotoSimilarity:
    """Highest Tanimoto similarity of Morgan bit fingerprints (radius 2, 2,048 bits) to the
    targets, given by name (``data.molecules.NAMED_MOLECULES``) or SMILES."""

    def __init__(self, targets: Sequence[str]) -> None:
        if not targets:
            raise ValueError("similarity needs at least one target molecule")
        self._generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        self._targets = []
        for target in targets:
            mol, reason = parse_smiles(named_or_smiles(target))
            if mol is None:
                raise ValueError(
                    f"similarity target {target!r} is not a known name ({', '.join(NAMED_MOLECULES)}) "
                    f"and not SMILES ({reason.split(';')[0] if reason else 'unparsable'})"
                )
            self._targets.append(self._generator.GetFingerprint(mol))

    def __call__(self, mol: Chem.Mol) -> float:
        return max(DataStructs.BulkTanimotoSimilarity(self._generator.GetFingerprint(mol), self._targets))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Desirability(_Spec):
    """One property's desirability (Derringer & Suich 1980): 1 inside ``[low, high]``,
    ``((x - lower_limit) / (low - lower_limit)) ** exponent`` below ``low`` and the mirror
    image above ``high``, 0 beyond a limit. Omit ``low`` or ``high`` for a one-sided range;
    omit a limit for a hard cut."""

    property: PropertyName
    targets: list[str] = Field(default_factory=list, description="similarity targets")
    low: float | None = None
    high: float | None = None
    lower_limit: float | None = None
    upper_limit: float | None = None
    exponent: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check_range(self) -> Desirability:
        if self.low is None and self.high is None:
            raise ValueError(f"{self.property}: give low, high or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.property}: low {self.low} is above high {self.high}")
        if self.lower_limit is not None and (self.low is None or self.lower_limit >= self.low):
            raise ValueError(f"{self.property}: lower_limit needs a low above it")
        if self.upper_limit is not None and (self.high is None or self.upper_limit <= self.high):
            raise ValueError(f"{self.property}: upper_limit needs a high below it")
        _check_targets(self.property, self.targets)
        return self

    def __call__(self, value: float) -> float:
        if not math.isfinite(value):
            return math.nan
        if self.low is not None and value < self.low:
            if self.lower_limit is None:
                return 0.0
            return max(0.0, (value - self.lower_limit) / (self.low - self.lower_limit)) ** self.exponent
        if self.high is not None and value > self.high:
            if self.upper_limit is None:
                return 0.0
            return max(0.0, (self.upper_limit - value) / (self.upper_limit - self.high)) ** self.exponent
        return 1.0


def _check_targets(prop: str, targets: Sequence[str]) -> None:
    if prop == "similarity" and not targets:
        raise ValueError("similarity needs targets (drug names or SMILES)")
    if prop != "similarity" and targets:
        raise ValueError(f"targets only apply to similarity, not {prop}")


class PropertyObjective(_Spec):
    """One objective: a property (``property``, with ``targets`` for similarity) or the
    geometric mean of ``desirability`` terms (then maximized)."""

    name: str = Field(min_length=1)
    property: PropertyName | None = None
    targets: list[str] = Field(default_factory=list, description="similarity targets")
    direction: Literal["max", "min"] | None = None
    desirability: list[Desirability] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_kind(self) -> PropertyObjective:
        if (self.property is None) == (not self.desirability):
            raise ValueError(f"{self.name}: give either property or desirability")
        if self.desirability:
            if self.direction == "min":
                raise ValueError(f"{self.name}: a desirability is maximized")
            if self.targets:
                raise ValueError(f"{self.name}: put similarity targets in the desirability term")
            return self
        _check_targets(self.property, self.targets)
        if self.direction is None and self.property not in NATURAL_DIRECTION:
            raise ValueError(
                f"{self.name}: say whether {self.property} is maximized or minimized (direction)"
            )
        return self

    def objective(self) -> Objective:
        """The objective this spec measures, with its direction."""
        direction = self.direction or NATURAL_DIRECTION.get(self.property or "", "max")
        return Objective(self.name, direction)


def _descriptor(prop: str, targets: Sequence[str]) -> Callable[[Chem.Mol], float]:
    return TanimotoSimilarity(targets) if prop == "similarity" else PROPERTIES[prop]


def _compile(spec: PropertyObjective) -> Callable[[Chem.Mol], float]:
    if spec.property is not None:
        return _descriptor(spec.property, spec.targets)
    terms = [(term, _descriptor(term.property, term.targets)) for term in spec.desirability]

    def desirability(mol: Chem.Mol) -> float:
        values = [term(float(f(mol))) for term, f in terms]
        return math.prod(values) ** (1.0 / len(values))

    return desirability


class MolecularOracle(Oracle):
    """RDKit properties of the molecules of a :class:`MoleculeSpace`, one per objective.

    ``objectives``: :class:`PropertyObjective` specs or mappings of their fields, e.g.
    ``{"name": "qed", "property": "qed"}``, ``{"name": "sa", "property": "sa"}`` (minimized),
    ``{"name": "sim", "property": "similarity", "targets": ["celecoxib"]}``.
    """

    objectives_help = "one per entry of params.objectives (qed, sa, similarity, ...)"

    def __init__(
        self, space: SearchSpace, objectives: Sequence[PropertyObjective | Mapping[str, object]]
    ) -> None:
        if not isinstance(space, MoleculeSpace):
            raise ValueError(f"MolecularOracle needs a molecule space, got {space!r}")
        if not objectives:
            raise ValueError("objectives: give at least one")
        specs = []
        for i, item in enumerate(objectives):
            try:
                specs.append(
                    item if isinstance(item, PropertyObjective) else PropertyObjective.model_validate(item)
                )
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"])
                message = error["msg"].removeprefix("Value error, ")
                raise ValueError(f"objectives[{i}]{'.' + where if where else ''}: {message}") from None
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives: names must be distinct, got {names}")
        super().__init__(space)
        self.specs = tuple(specs)
        self.objectives = tuple(s.objective() for s in specs)
        self._functions = [_compile(s) for s in specs]
        self._cache: dict[str, tuple[tuple[float, ...], str | None]] = {}

    def _properties(self, smiles: str) -> tuple[tuple[float, ...], str | None]:
        nan = tuple(math.nan for _ in self.specs)
        mol, reason = parse_smiles(smiles)
        if mol is None:
            return nan, f"RDKit: {reason}"
        values = []
        for spec, function in zip(self.specs, self._functions, strict=True):
            try:
                values.append(float(function(mol)))
            except Exception as exc:  # RDKit raises many types; a failed molecule is data
                return nan, f"{spec.name}: RDKit {type(exc).__name__}: {exc}"
        return tuple(values), None

    def _evaluate(self, xs: list[str]) -> OracleResult:
        for x in dict.fromkeys(xs):
            if x not in self._cache:
                self._cache[x] = self._properties(x)
        rows = [self._cache[x] for x in xs]
        values = torch.tensor([r[0] for r in rows], dtype=torch.double).reshape(len(xs), len(self.specs))
        return OracleResult(values, [r[1] for r in rows])
