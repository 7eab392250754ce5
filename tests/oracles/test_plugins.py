"""Oracle plug-ins, installed for real: the toy package in tests/plugins is pip-installed into
a temporary folder, and ``paretolab`` finds it through its ``paretolab.oracles`` entry point.

A second, broken plug-in distribution (an entry point at a module that is not installed,
one at a class that is not an Oracle) is installed beside it: listing and campaigns must
name what is wrong without hiding the plug-ins that work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path

import pytest
import torch

from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.config import ConfigError, load_config
from paretolab.flows.factories import build_setup
from paretolab.oracles.registry import BUILTIN
from tests.conftest import ROOT
from tests.helpers.configs import write_config

PARETOLAB = str(Path(sys.executable).with_name("paretolab"))
PLUGINS = ROOT / "tests" / "plugins"
TOY_SRC = PLUGINS / "paretolab_toy_plugin"

BROKEN_FILES = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "paretolab-broken-plugin"
version = "0.2.0"

[project.entry-points."paretolab.oracles"]
broken_assay = "vendor_sdk_not_installed.assays:Assay"
not_an_oracle = "broken_plugin:NotAnOracle"

[tool.setuptools]
packages = ["broken_plugin"]
""",
    "broken_plugin/__init__.py": '''\
class NotAnOracle:
    """Forgot to subclass paretolab's Oracle."""
''',
}


@dataclass(frozen=True)
class Installed:
    site: Path
    """The ``pip install --target`` folder holding both plug-in distributions."""

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a ``paretolab`` subprocess that sees the installed plug-ins."""
        env = {**os.environ, "PYTHONPATH": f"{self.site}{os.pathsep}{ROOT}", "COLUMNS": "400", **extra}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("PARETOLAB_KILL_AT", None)
        return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """Both plug-ins pip-installed (offline, no build isolation) into a temporary folder.

    setuptools builds in the source folder (``build/``, ``*.egg-info``), so the packages
    are built from copies, never from tests/plugins itself.
    """
    root = tmp_path_factory.mktemp("plugins")
    toy = root / "src" / TOY_SRC.name
    shutil.copytree(TOY_SRC, toy, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    broken = root / "src" / "paretolab_broken_plugin"
    for name, text in BROKEN_FILES.items():
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).write_text(text)
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [*pip, "--target", str(site), str(toy), str(broken)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Installed(site)


@pytest.fixture
def on_path(installed, monkeypatch) -> Installed:
    """The plug-ins importable (and their entry points visible) in this test process."""
    monkeypatch.syspath_prepend(str(installed.site))
    yield installed
    for name in [m for m in sys.modules if m.split(".")[0] in ("toy_assay", "broken_plugin")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def oracles_list(installed) -> subprocess.CompletedProcess[str]:
    """``paretolab oracles list`` run once, by the real console script."""
    return subprocess.run(
        [PARETOLAB, "oracles", "list"],
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=installed.site.parent,
    )


def _row(output: str, name: str) -> str:
    """The table line whose first cell is ``name``."""
    rows = [line for line in output.splitlines() if line.strip("│ ").split(" ")[0] == name]
    assert len(rows) == 1, f"{name!r} is listed {len(rows)} times in:\n{output}"
    return rows[0]


def test_pip_install_leaves_dist_info_with_entry_points_and_no_junk(installed):
    dists = {d.metadata["Name"]: d for d in distributions(path=[str(installed.site)])}
    assert set(dists) == {"paretolab-toy-plugin", "paretolab-broken-plugin"}
    toy = dists["paretolab-toy-plugin"]
    assert toy.version == "0.1.0"
    assert not toy.requires  # no dependencies
    info = installed.site / "paretolab_toy_plugin-0.1.0.dist-info"
    text = (info / "entry_points.txt").read_text()
    assert "[paretolab.oracles]" in text and "toy_assay = toy_assay.oracle:ToyAssay" in text
    assert [(ep.group, ep.name, ep.value) for ep in toy.entry_points] == [
        ("paretolab.oracles", "toy_assay", "toy_assay.oracle:ToyAssay")
    ]
    assert (installed.site / "toy_assay" / "oracle.py").is_file()
    # the build happened in a copy: nothing left in the repository tree
    junk = [p for p in PLUGINS.rglob("*") if p.name == "build" or p.name.endswith(".egg-info")]
    assert not junk, junk
    assert not list(PLUGINS.rglob("*.dist-info"))


def test_oracles_list_shows_plugin_with_distribution_and_objectives(oracles_list):
    assert oracles_list.returncode == 0, oracles_list.stderr[-3000:]
    out = oracles_list.stdout
    row = _row(out, "toy_assay")
    assert "plug-in (paretolab-toy-plugin 0.1.0)" in row
    assert "toy_assay.oracle:ToyAssay" in row
    assert "signal (max, RFU), cost (min, USD)" in row
    assert "Toy assay on a grid" in row  # first line of the class docstring
    for name in BUILTIN:  # branin_currin, lab, poli, ...
        assert "built-in" in _row(out, name)
    assert "paretolab.oracles" in out
    # a pipe gets whole class paths and plain text, not reStructuredText cut at 80 columns
    assert "paretolab.oracles.synthetic:BraninCurrinOracle" in _row(out, "branin_currin")
    assert "``" not in out and ":class:`" not in out


def test_oracles_list_shows_broken_plugins_as_cannot_load(oracles_list):
    assert oracles_list.returncode == 0, oracles_list.stderr[-3000:]
    out = oracles_list.stdout
    missing = _row(out, "broken_assay")
    assert "plug-in (paretolab-broken-plugin 0.2.0)" in missing
    assert "cannot load" in missing and "vendor_sdk_not_installed" in missing
    assert "ModuleNotFoundError" in missing
    wrong = _row(out, "not_an_oracle")
    assert "cannot load" in wrong and "not an Oracle subclass" in wrong
    assert "signal (max, RFU)" in _row(out, "toy_assay")  # the others still load


def _expected(candidates: list[str], scale: float) -> torch.Tensor:
    from toy_assay.oracle import ToyAssay  # the installed copy, found through on_path

    return ToyAssay(GridSpace(2, 16), scale=scale)(candidates).values


@pytest.mark.slow
def test_campaign_runs_plugin_by_entry_point_name(on_path, prefect_api, tmp_path):
    config = write_config(
        tmp_path / "toy.yaml",
        name="toy_plugin",
        oracle={"name": "toy_assay", "params": {"scale": 2.0}},
        initial_design=4,
        rounds=1,
        batch_size=2,
        generators=[{"kind": "random", "pool_size": 16}],
    )
    campaign = tmp_path / "campaign"
    done = subprocess.run(
        [PARETOLAB, "run", str(config), "--dir", str(campaign)],
        env=on_path.env(PREFECT_API_URL=prefect_api),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    with CampaignStore.open(campaign, lock=False) as store:
        observations = store.read("observations")
        meta = store.meta
    assert meta["objectives"] == [["signal", "max", "RFU"], ["cost", "min", "USD"]]
    assert len(observations) == 6 and observations["valid"].all()
    measured = torch.tensor(observations[["signal", "cost"]].to_numpy(), dtype=torch.double)
    assert torch.isfinite(measured).all()
    expected = _expected(observations["candidate"].tolist(), scale=2.0)
    torch.testing.assert_close(measured, expected)
    assert not torch.equal(expected, _expected(observations["candidate"].tolist(), scale=1.0))  # params used


@pytest.mark.parametrize(
    "oracle",
    [
        {"target": "toy_assay.oracle:ToyAssay", "params": {"scale": 3.0}},
        {"name": "toy_assay", "params": {"scale": 3.0}},
    ],
    ids=["target", "name"],
)
def test_plugin_builds_from_config(oracle, on_path, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", oracle=oracle))
    setup = build_setup(config)
    assert type(setup.oracle).__module__ == "toy_assay.oracle"
    assert type(setup.oracle).__name__ == "ToyAssay"
    assert setup.oracle.scale == 3.0
    assert [(o.name, o.direction, o.unit) for o in setup.objectives] == [
        ("signal", "max", "RFU"),
        ("cost", "min", "USD"),
    ]
    # "3,7": signal = 3 * (3 + 7); cost = 1 + mean squared distance from the first level
    assert setup.oracle(["3,7"]).values.tolist() == [[30.0, 9.0]]


def test_a_target_module_beside_the_config_is_found_without_pythonpath(tmp_path, monkeypatch):
    """``my_lab/assays.py`` next to the config works from any working directory."""
    package = tmp_path / "project" / "lab_beside_config"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "assays.py").write_text(
        "import torch\n"
        "from paretolab import Objective, Oracle\n\n\n"
        "class Sum(Oracle):\n"
        "    objectives = (Objective('total', 'max'), Objective('first', 'min'))\n\n"
        "    def _evaluate(self, xs):\n"
        "        rows = [[float(v) for v in x.split(',')] for x in xs]\n"
        "        return torch.tensor([[sum(r), r[0]] for r in rows], dtype=torch.double)\n"
    )
    config_path = write_config(
        tmp_path / "project" / "c.yaml", oracle={"target": "lab_beside_config.assays:Sum"}
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the folder is added for this process
    setup = build_setup(load_config(config_path))
    assert setup.oracle(["3,7"]).values.tolist() == [[10.0, 3.0]]
    assert type(setup.oracle).__module__ == "lab_beside_config.assays"


def test_plugin_params_are_checked(on_path, tmp_path):
    config = load_config(
        write_config(tmp_path / "c.yaml", oracle={"name": "toy_assay", "params": {"scael": 2.0}})
    )
    with pytest.raises(ConfigError, match=r"oracle\.params: .*scael"):
        build_setup(config)


@pytest.mark.parametrize(
    ("oracle", "message"),
    [
        (
            {"name": "broken_assay"},
            r"oracle\.name: cannot load plug-in oracle 'broken_assay' "
            r"\(vendor_sdk_not_installed\.assays:Assay\): ModuleNotFoundError",
        ),
        ({"name": "not_an_oracle"}, r"oracle\.name: 'not_an_oracle' is not an Oracle subclass"),
        (
            {"target": "toy_assay.missing:ToyAssay"},
            r"oracle\.target: cannot import oracle 'toy_assay\.missing:ToyAssay' .*: ModuleNotFoundError",
        ),
        ({"target": "toy_assay.oracle:Nope"}, r"oracle\.target: .*'toy_assay\.oracle:Nope'.*AttributeError"),
        ({"name": "toy_asay"}, r"unknown oracle 'toy_asay'; available: .*toy_assay"),
    ],
    ids=["missing-module", "not-an-oracle", "target-missing-module", "target-missing-class", "typo"],
)
def test_broken_plugin_config_error_names_it(oracle, message, on_path, tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", oracle=oracle))
    with pytest.raises(ConfigError, match=message):
        build_setup(config, "c.yaml")


def test_campaign_naming_broken_plugin_exits_2(installed, tmp_path):
    config = write_config(tmp_path / "broken.yaml", name="broken", oracle={"name": "broken_assay"})
    campaign = tmp_path / "campaign"
    done = subprocess.run(
        [PARETOLAB, "run", str(config), "--dir", str(campaign)],
        env=installed.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    err = " ".join(done.stderr.split())  # undo rich's line wrapping
    assert "error:" in err and "oracle.name" in err
    assert "cannot load plug-in oracle 'broken_assay'" in err
    assert "vendor_sdk_not_installed" in err
    assert "Traceback" not in done.stderr
    assert not campaign.exists()  # nothing written
