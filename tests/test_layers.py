"""The dependency rules of the package (DESIGN.md): flows -> models, oracles, data;
models -> data; oracles -> data. Nothing below flows imports Prefect or MLflow, data
imports no BoTorch, and the store keeps checkpoints as bytes (no torch)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORCHESTRATION = ("prefect", "mlflow")
FORBIDDEN = {
    "data": (
        "paretolab.flows",
        "paretolab.models",
        "paretolab.oracles",
        "botorch",
        "gpytorch",
        *ORCHESTRATION,
    ),
    "models": ("paretolab.flows", "paretolab.oracles", *ORCHESTRATION),
    "oracles": ("paretolab.flows", "paretolab.models", *ORCHESTRATION),
}
# the only flows modules that may import Prefect or MLflow at module level
ORCHESTRATION_MODULES = {"round.py", "campaign.py", "waiting.py", "tracking.py", "prefect_artifacts.py"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _module_level_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_layers_or_orchestration(layer):
    bad = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for module in sorted(_imports(path))
        if _matches(module, FORBIDDEN[layer])
    ]
    assert not bad, "\n".join(bad)


def test_the_store_keeps_checkpoints_as_bytes():
    assert not {m for m in _imports(ROOT / "data" / "store.py") if _matches(m, ("torch",))}


def test_only_the_prefect_layer_imports_prefect_or_mlflow_at_module_level():
    bad = [
        f"flows/{path.name} imports {module}"
        for path in sorted((ROOT / "flows").glob("*.py"))
        if path.name not in ORCHESTRATION_MODULES
        for module in sorted(_module_level_imports(path))
        if _matches(module, ORCHESTRATION)
    ]
    assert not bad, "\n".join(bad)


def test_import_paretolab_loads_neither_prefect_nor_mlflow():
    probe = (
        "import paretolab, sys; print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'mlflow'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
