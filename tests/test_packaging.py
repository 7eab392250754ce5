"""paretolab as a user installs it: one wheel, one top-level import package.

The wheel is built here (offline, no build isolation), installed into a temporary folder
and used from a folder that holds a notebook user's own ``models.py``, ``data/store.py``
and ``flows/`` package, which must not shadow or mix with paretolab's modules.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel, runs subprocesses

ROOT = Path(__file__).resolve().parents[1]
SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "runs", ".prefect", "build", "*.egg-info", "__pycache__", ".pytest_cache", "benchmarks"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the source tree."""
    source = tmp_path_factory.mktemp("source") / "paretolab"
    shutil.copytree(ROOT, source, ignore=SOURCE_IGNORE)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            out,
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("paretolab-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The wheel pip-installed (without dependencies: the test environment has them) into
    a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target, wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return target


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A scientist's notebook folder with the generic names paretolab used to install."""
    (tmp_path / "models.py").write_text("RAISE = 'the user models.py was imported'\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "__init__.py").write_text("")
    (tmp_path / "data" / "store.py").write_text("USER_STORE = True\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text(
        "raise ImportError('the user flows package was imported')\n"
    )
    return tmp_path


def _run(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_wheel_installs_one_top_level_package_with_configs_and_type_marker(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["paretolab"]
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "paretolab = paretolab.flows.cli:main" in archive.read(entry_points).decode()
    roots = {n.split("/")[0] for n in names}
    assert roots == {"paretolab", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for expected in (
        "paretolab/__init__.py",
        "paretolab/__main__.py",
        "paretolab/py.typed",
        "paretolab/flows/engine.py",
        "paretolab/models/generators/gflownet/trainer.py",
        "paretolab/oracles/base.py",
        "paretolab/data/store.py",
        "paretolab/campaigns/branin_currin.yaml",
        "paretolab/campaigns/lab_example.yaml",
    ):
        assert expected in names, expected
    assert not [n for n in names if n.startswith("paretolab/tests") or "/benchmarks/" in n]


def test_import_from_a_folder_with_models_py_data_store_and_flows(installed, user_folder):
    probe = (
        "import paretolab, paretolab.data.store as s, paretolab.flows.engine as e, sys;"
        "print(paretolab.__file__); print(s.__file__); print(e.__file__);"
        "print(paretolab.Campaign.__module__, paretolab.Oracle.__module__,"
        " paretolab.CampaignLockedError.__name__);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('models', 'data', 'flows', 'oracles')))"
    )
    done = _run([sys.executable, "-c", probe], user_folder, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    package, store, engine, names, foreign = done.stdout.strip().splitlines()
    for path in (package, store, engine):
        assert Path(path).is_relative_to(installed), path
    assert names == "paretolab.flows.ask_tell paretolab.oracles.base CampaignLockedError"
    assert foreign == "[]"  # the user's models/data/flows were never imported


def test_python_dash_m_help_and_version(installed, user_folder):
    done = _run([sys.executable, "-m", "paretolab", "--help"], user_folder, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "paretolab init branin_currin" in done.stdout and "run" in done.stdout
    done = _run([sys.executable, "-m", "paretolab", "--version"], user_folder, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"paretolab {importlib.metadata.version('paretolab')}"


def test_init_writes_a_shipped_example_config_that_validates(installed, user_folder):
    done = _run([sys.executable, "-m", "paretolab", "examples"], user_folder, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("branin_currin", "lab_example", "molecules", "ngram_mogfn"):
        assert name in done.stdout
    done = _run([sys.executable, "-m", "paretolab", "init", "branin_currin"], user_folder, installed)
    assert done.returncode == 0, done.stderr[-3000:]
    written = user_folder / "branin_currin.yaml"
    assert written.read_text() == (ROOT / "campaigns" / "branin_currin.yaml").read_text()
    again = _run([sys.executable, "-m", "paretolab", "init", "branin_currin"], user_folder, installed)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    unknown = _run([sys.executable, "-m", "paretolab", "init", "nope"], user_folder, installed)
    assert unknown.returncode == 2 and "no example config 'nope'; choose one of:" in unknown.stderr
    check = _run(
        [
            sys.executable,
            "-c",
            "from paretolab.flows.config import load_config; print(load_config('branin_currin.yaml').name)",
        ],
        user_folder,
        installed,
    )
    assert check.stdout.strip() == "branin_currin", check.stderr[-3000:]
