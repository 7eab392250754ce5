"""Chemistry for the molecule space, all of it done by RDKit and SELFIES.

Parsing with RDKit's own reason for a failure, structural filters (including RDKit's PAINS
catalog), seed files (SMILES, CSV, parquet; the NCI set shipped inside the RDKit wheel by
default) and cached Morgan fingerprints.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, RDConfig, rdBase
from rdkit.Chem import FilterCatalog, rdFingerprintGenerator
from rdkit.Chem.MolStandardize import rdMolStandardize

__all__ = [
    "NAMED_MOLECULES",
    "LRUCache",
    "MoleculeFilters",
    "MorganFingerprints",
    "RejectedRow",
    "SeedSet",
    "named_or_smiles",
    "nci_seed_path",
    "parse_smiles",
    "read_seed_file",
]

logger = logging.getLogger(__name__)

NAMED_MOLECULES: dict[str, str] = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "caffeine": "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
    "celecoxib": "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "imatinib": "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "sildenafil": "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12",
}
"""Drugs that objectives can name as similarity targets (SMILES as in PubChem/ChEMBL)."""

_LOG_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\] ")

_PARSER = Chem.SmilesParserParams()
_PARSER.allowCXSMILES = False  # a candidate is plain SMILES: no extension block after it
_PARSER.parseName = False


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """RDKit molecule of ``smiles`` (sanitized), or None and RDKit's reason."""
    if not isinstance(smiles, str):
        return None, f"not a string: {type(smiles).__name__}"
    text = smiles.strip()
    if not text:
        return None, "empty SMILES"
    if any(c.isspace() for c in text):
        return None, "SMILES contains whitespace (RDKit would read what follows as a name)"
    with rdBase.CaptureErrorLog() as capture:
        mol = Chem.MolFromSmiles(text, _PARSER)
    if mol is not None:
        return mol, None
    lines = []
    for line in capture.messages.splitlines():
        line = _LOG_PREFIX.sub("", line).removeprefix("SMILES Parse Error: ").strip().rstrip(":")
        # RDKit also echoes the input and a caret under it; keep only what explains
        if line and line != text and not set(line) <= {"~", "^", " "} and not line.startswith("Failed"):
            lines.append(line)
    return None, "; ".join(dict.fromkeys(lines)) or "RDKit could not parse it"


def named_or_smiles(text: str) -> str:
    """SMILES of a molecule given by name (:data:`NAMED_MOLECULES`) or as SMILES."""
    return NAMED_MOLECULES.get(text.strip().lower(), text)


@cache
def _pains_catalog() -> FilterCatalog.FilterCatalog:
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
    return FilterCatalog.FilterCatalog(params)


@dataclass(frozen=True)
class MoleculeFilters:
    """Structural rules a molecule must pass to be in the space; each is off unless set.

    ``heavy_atoms``: inclusive range of heavy-atom counts; ``elements``: allowed element
    symbols; ``neutral``: no formal charges; ``no_radicals``: no unpaired electrons;
    ``pains``: no match in RDKit's PAINS catalog (Baell & Holloway 2010).
    """

    heavy_atoms: tuple[int, int] | None = None
    elements: frozenset[str] | None = None
    neutral: bool = False
    no_radicals: bool = False
    pains: bool = False

    def __post_init__(self) -> None:
        if self.heavy_atoms is not None and not 1 <= self.heavy_atoms[0] <= self.heavy_atoms[1]:
            raise ValueError(f"heavy_atoms must be [low, high] with 1 <= low <= high, got {self.heavy_atoms}")
        if self.elements is not None:
            table = Chem.GetPeriodicTable()
            for symbol in self.elements:
                with rdBase.BlockLogs():
                    try:
                        known = table.GetAtomicNumber(symbol) > 0
                    except RuntimeError:
                        known = False
                if not known:
                    raise ValueError(f"elements: {symbol!r} is not an element symbol")

    def violation(self, mol: Chem.Mol) -> str | None:
        """Why ``mol`` fails the filters, or None."""
        if self.heavy_atoms is not None:
            n = mol.GetNumHeavyAtoms()
            low, high = self.heavy_atoms
            if not low <= n <= high:
                return f"{n} heavy atoms, outside [{low}, {high}]"
        atoms = mol.GetAtoms()
        if self.elements is not None:
            other = sorted({a.GetSymbol() for a in atoms} - self.elements)
            if other:
                return f"element(s) not allowed: {', '.join(other)}"
        if self.neutral and any(a.GetFormalCharge() for a in atoms):
            return "has formal charges"
        if self.no_radicals and any(a.GetNumRadicalElectrons() for a in atoms):
            return "has radical electrons"
        if self.pains:
            match = _pains_catalog().GetFirstMatch(mol)
            if match is not None:
                return f"PAINS alert: {match.GetDescription()}"
        return None


@dataclass(frozen=True)
class RejectedRow:
    """A seed row that was skipped: 1-based row number in the file, the text, the reason."""

    row: int
    smiles: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.smiles!r}: {self.reason}"


@dataclass(frozen=True)
class SeedSet:
    """Molecules read from a seed file (parent SMILES) and the rows that were skipped."""

    source: str
    smiles: list[str]
    rejected: list[RejectedRow]


def nci_seed_path() -> Path:
    """The NCI molecules shipped inside the installed RDKit wheel (about 5,000)."""
    return Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"


_SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles")
_SMILES_SUFFIXES = frozenset({".smi", ".smiles", ".txt"})


def _read_rows(path: Path, column: str | None) -> list[str]:
    suffix = path.suffix.lower()
    if suffix in _SMILES_SUFFIXES:
        rows = []
        for line in path.read_text().splitlines():
            fields = line.split()
            rows.append(fields[0] if fields else "")
        return rows
    if suffix in {".csv", ".parquet"}:
        table = (
            pd.read_csv(path, dtype=str, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(path)
        )
        names = [column] if column else list(_SMILES_COLUMNS)
        found = next((c for c in names if c in table.columns), None)
        if found is None:
            raise ValueError(
                f"{path}: no SMILES column {' / '.join(map(repr, names))}; "
                f"columns are {', '.join(map(str, table.columns))}"
            )
        return ["" if v is None else str(v) for v in table[found].tolist()]
    raise ValueError(f"{path}: unsupported seed file type {suffix!r} (use .smi, .csv or .parquet)")


def read_seed_file(path: str | Path, column: str | None = None) -> SeedSet:
    """Seed molecules from a SMILES (``.smi``: first field per line), CSV or parquet file.

    Each molecule is reduced to its parent (largest fragment, so salts lose their
    counter-ions). Rows RDKit cannot parse are skipped and reported with their 1-based row
    number, text and RDKit's reason (a CSV's header is not counted). A ``.smi`` file's first
    line is taken as a header when it is not a molecule but names a SMILES column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"seed file {path} does not exist")
    rows = _read_rows(path, column)
    chooser = rdMolStandardize.LargestFragmentChooser()
    smiles: list[str] = []
    rejected: list[RejectedRow] = []
    for i, text in enumerate(rows, start=1):
        if i == 1 and path.suffix.lower() in _SMILES_SUFFIXES and text in _SMILES_COLUMNS:
            continue
        mol, reason = parse_smiles(text)
        if mol is None:
            rejected.append(RejectedRow(i, text, reason or "unparsable"))
            continue
        if len(Chem.GetMolFrags(mol)) > 1:
            mol = chooser.choose(mol)
        smiles.append(Chem.MolToSmiles(mol))
    for row in rejected[:20]:
        logger.warning("%s: skipped %s", path, row)
    if len(rejected) > 20:
        logger.warning("%s: skipped %d more unparsable rows", path, len(rejected) - 20)
    if not smiles:
        raise ValueError(f"{path}: no molecule could be read ({len(rejected)} rows rejected)")
    return SeedSet(str(path), smiles, rejected)


_CACHES = threading.Lock()
"""Guards every LRUCache's look-up-and-reorder (generators update side by side in threads
and share their space's caches); module-level, so a cache still pickles."""


class LRUCache(OrderedDict):
    """A dict that forgets its least recently used entries beyond ``capacity``; safe to
    share between threads."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def get(self, key: str, default: object = None) -> object:
        with _CACHES:
            if key in self:
                self.move_to_end(key)
                return self[key]
            return default

    def put(self, key: str, value: object) -> None:
        with _CACHES:
            self[key] = value
            if len(self) > self.capacity:
                self.popitem(last=False)


class MorganFingerprints:
    """Morgan (ECFP-like) fingerprints from ``rdFingerprintGenerator``, cached by SMILES.

    ``counts``: count vectors (for the MinMax kernel) instead of bit vectors. The cache keeps
    the sparse form of the ``cache_size`` most recently used molecules (a generator may
    decode hundreds of thousands).
    """

    def __init__(
        self, radius: int = 2, size: int = 2048, counts: bool = True, cache_size: int = 200_000
    ) -> None:
        if radius < 1 or size < 64:
            raise ValueError(f"need radius >= 1 and size >= 64, got {radius}, {size}")
        self.radius, self.size, self.counts = radius, size, counts
        self._generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=size)
        self._cache = LRUCache(cache_size)

    def __repr__(self) -> str:
        return f"MorganFingerprints(radius={self.radius}, size={self.size}, counts={self.counts})"

    def __call__(self, smiles: Sequence[str]) -> np.ndarray:
        """Fingerprints ``n x size`` (float32); a SMILES RDKit cannot parse gives zeros."""
        out = np.zeros((len(smiles), self.size), dtype=np.float32)
        for i, s in enumerate(smiles):
            entry = self._cache.get(s)
            if entry is None:
                entry = self._sparse(s)
                self._cache.put(s, entry)
            out[i, entry[0]] = entry[1]
        return out

    def _sparse(self, smiles: str) -> tuple[np.ndarray, np.ndarray]:
        mol, _ = parse_smiles(smiles)
        if mol is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if self.counts:
            dense = self._generator.GetCountFingerprintAsNumPy(mol)
        else:
            dense = self._generator.GetFingerprintAsNumPy(mol)
        index = np.flatnonzero(dense)
        return index, dense[index].astype(np.float32)
