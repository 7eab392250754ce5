"""Find an oracle class by name: built-in, installed plug-in, or ``module:Class`` path.

Plug-ins register under the entry-point group ``paretolab.oracles``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from oracles.base import Oracle
from oracles.hypergrid import HyperGridOracle
from oracles.molecular import MolecularOracle
from oracles.ngram import NGramOracle
from oracles.synthetic import BraninCurrinOracle, DTLZ2Oracle

__all__ = ["ENTRY_POINT_GROUP", "UnknownOracleError", "available_oracles", "oracle_class"]

ENTRY_POINT_GROUP = "paretolab.oracles"

BUILTIN: dict[str, type[Oracle]] = {
    "branin_currin": BraninCurrinOracle,
    "dtlz2": DTLZ2Oracle,
    "hypergrid": HyperGridOracle,
    "molecular": MolecularOracle,
    "ngram": NGramOracle,
}


class UnknownOracleError(LookupError):
    """No oracle of that name or import path."""


def available_oracles() -> list[str]:
    """Names of the built-in and installed plug-in oracles."""
    return sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})


def oracle_class(name: str) -> type[Oracle]:
    """The Oracle subclass called ``name`` (a registered name or ``module:Class``)."""
    if name in BUILTIN:
        return BUILTIN[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # ImportError, AttributeError, or any error in the user's module
            raise UnknownOracleError(f"cannot import oracle {name!r}: {type(exc).__name__}: {exc}") from None
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
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
