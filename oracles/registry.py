"""Find an oracle class by name: built-in, installed plug-in, or ``module:Class`` path.

Plug-ins register under the entry-point group ``paretolab.oracles``, e.g. in the plug-in's
``pyproject.toml``::

    [project.entry-points."paretolab.oracles"]
    fluorescence = "my_lab.assays:Fluorescence"
"""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from paretolab.oracles.base import Oracle
from paretolab.oracles.ehrlich import EhrlichOracle
from paretolab.oracles.external import ExternalOracle
from paretolab.oracles.hypergrid import HyperGridOracle
from paretolab.oracles.lab import LabOracle
from paretolab.oracles.molecular import MolecularOracle
from paretolab.oracles.ngram import NGramOracle
from paretolab.oracles.poli import PoliOracle
from paretolab.oracles.synthetic import BraninCurrinOracle, DTLZ2Oracle

__all__ = [
    "ENTRY_POINT_GROUP",
    "OracleInfo",
    "UnknownOracleError",
    "available_oracles",
    "describe_oracles",
    "oracle_class",
]

ENTRY_POINT_GROUP = "paretolab.oracles"

BUILTIN: dict[str, type[Oracle]] = {
    "branin_currin": BraninCurrinOracle,
    "dtlz2": DTLZ2Oracle,
    "ehrlich": EhrlichOracle,
    "external": ExternalOracle,
    "hypergrid": HyperGridOracle,
    "lab": LabOracle,
    "molecular": MolecularOracle,
    "ngram": NGramOracle,
    "poli": PoliOracle,
}


class UnknownOracleError(LookupError):
    """No oracle of that name or import path."""


def available_oracles() -> list[str]:
    """Names of the built-in and installed plug-in oracles."""
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def _import_target(module_name: str, search_dir: Path | None) -> ModuleType:
    """Import ``module_name`` from ``sys.path``, else from ``search_dir`` (the config's
    folder, which then stays on ``sys.path`` for this process)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        if search_dir is None or exc.name not in (top, module_name) or str(search_dir) in sys.path:
            raise
        sys.path.append(str(search_dir))
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


def oracle_class(name: str, search_dir: Path | None = None) -> type[Oracle]:
    """The Oracle subclass called ``name`` (a registered name or ``module:Class``; the
    module is looked for on ``sys.path``, then in ``search_dir``).

    Importing a ``module:Class`` runs that module's code, as a Python script would.
    """
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            found = getattr(_import_target(module_name, search_dir), attr)
        except Exception as exc:  # ImportError, AttributeError, or any error in the user's module
            where = f" (looked on sys.path and in {search_dir})" if search_dir is not None else ""
            raise UnknownOracleError(
                f"cannot import oracle {name!r}{where}: {type(exc).__name__}: {exc}"
            ) from None
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if len({ep.value for ep in matches}) > 1:
            raise UnknownOracleError(
                f"oracle {name!r} is registered by several plug-ins "
                f"({', '.join(ep.value for ep in matches)}); "
                "name one by import path with target: 'module:Class'"
            )
        if not matches:
            raise UnknownOracleError(
                f"unknown oracle {name!r}; available: {', '.join(available_oracles())} "
                "(or give an import path 'module:Class')"
            )
        try:
            found = matches[0].load()
        except Exception as exc:
            raise UnknownOracleError(
                f"cannot load plug-in oracle {name!r} ({matches[0].value}): {type(exc).__name__}: {exc}"
            ) from None
    if not (isinstance(found, type) and issubclass(found, Oracle)):
        raise UnknownOracleError(f"{name!r} is not an Oracle subclass")
    return found


@dataclass(frozen=True)
class OracleInfo:
    """What ``paretolab oracles list`` shows about one oracle."""

    name: str
    source: str
    target: str
    objectives: str
    summary: str


def _objectives_text(cls: type[Oracle]) -> str:
    declared = getattr(cls, "objectives", None)
    if isinstance(declared, tuple) and declared:
        return ", ".join(f"{o.name} ({o.direction}{', ' + o.unit if o.unit else ''})" for o in declared)
    return _plain(getattr(cls, "objectives_help", "set by its params"))


_RST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _plain(text: str) -> str:
    """Docstring text without reStructuredText markup: ``x`` and :class:`X` read as x, X."""
    return _RST_ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text).replace("``", "")


def _summary(cls: type) -> str:
    """The first paragraph of a class's docstring, on one line, as plain text."""
    return _plain(" ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()))


def describe_oracles() -> list[OracleInfo]:
    """Every built-in and installed plug-in oracle with its objectives; a plug-in that fails
    to load, or that a built-in of the same name hides, is listed with the reason."""
    infos = [
        OracleInfo(
            name, "built-in", f"{cls.__module__}:{cls.__qualname__}", _objectives_text(cls), _summary(cls)
        )
        for name, cls in sorted(BUILTIN.items())
    ]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        source = f"plug-in ({ep.dist.name} {ep.dist.version})" if ep.dist else "plug-in"
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Oracle)):
                raise TypeError(f"{ep.value} is not an Oracle subclass")
        except Exception as exc:
            infos.append(
                OracleInfo(ep.name, source, ep.value, "-", f"cannot load: {type(exc).__name__}: {exc}")
            )
            continue
        summary = _summary(cls)
        if ep.name in BUILTIN:
            summary = f"hidden by the built-in {ep.name!r}: use target: {ep.value!r}. {summary}"
        infos.append(OracleInfo(ep.name, source, ep.value, _objectives_text(cls), summary))
    return infos
