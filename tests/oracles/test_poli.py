"""PoliOracle against a tiny fake ``poli`` package with poli 1.3's API surface.

The real poli-core needs numpy<2 and is never installed here; ``scripts/check_poli.py``
runs the real package from a separate environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from paretolab.data.spaces import MoleculeSpace, SequenceSpace
from paretolab.oracles import _poli_worker
from paretolab.oracles.base import OracleError
from paretolab.oracles.poli import PoliOracle, PoliWorkerError

# poli 1.3: objective_factory.create(name=..., seed=..., **factory_kwargs) -> Problem with
# .black_box; the black box takes a [b, L] array of strings (padded with info.padding_token)
# and returns [b, m]. The fake's problems:
#   count   1 column: occurrences of `target` (+ 1000 * seed); crash_on: token -> os._exit(7)
#   shape   3 columns: non-padding tokens, array width L, 1 if the dtype is a str array
#   aligned like shape, but aligned with max_sequence_length 5
#   raise   raises ValueError on any call;  wrong_rows  returns one row too few
FAKE_POLI = {
    "__init__.py": '__version__ = "0.0-fake"\n',
    "objective_factory.py": textwrap.dedent(
        """
        import os
        import sys

        import numpy as np


        class Info:
            def __init__(self, name, aligned=False, max_sequence_length=np.inf):
                self.name = name
                self.aligned = aligned
                self.max_sequence_length = max_sequence_length
                self.padding_token = ""
                self.alphabet = list("ABX")


        class BlackBox:
            def __init__(self, name, seed, target="A", crash_on=None, noisy=False, **kwargs):
                self.name, self.seed, self.target = name, seed or 0, target
                self.crash_on, self.noisy = crash_on, noisy
                self.info = Info(name, name == "aligned", 5 if name == "aligned" else np.inf)
                self.calls = 0

            def __call__(self, x, context=None):
                assert isinstance(x, np.ndarray) and x.ndim == 2, "x must be [b, L]"
                self.calls += 1
                if self.noisy:
                    print("poli-fake: chatty black box on stdout")
                    os.system("echo poli-fake: and a child process too")
                if self.crash_on is not None and (x == self.crash_on).any():
                    sys.stderr.write("fatal: boom\\n")
                    sys.stderr.flush()
                    os._exit(7)
                if self.name == "raise":
                    raise ValueError("bad input")
                if self.name == "wrong_rows":
                    return np.zeros((x.shape[0] - 1, 1))
                if self.name in ("shape", "aligned"):
                    nonempty = (x != "").sum(axis=1)
                    width = np.full(x.shape[0], x.shape[1])
                    is_str = np.full(x.shape[0], float(x.dtype.kind == "U"))
                    return np.stack([nonempty, width, is_str], axis=1)
                return (x == self.target).sum(axis=1, keepdims=True) + 1000 * self.seed


        class Problem:
            def __init__(self, black_box, x0):
                self.black_box = black_box
                self.x0 = x0


        def create(name, *, seed=None, quiet=False, **kwargs):
            if kwargs.get("noisy"):
                print("poli-fake: creating the problem")
            if name not in ("count", "shape", "aligned", "raise", "wrong_rows"):
                raise ValueError(f"Objective function '{name}' is not available in the repository.")
            return Problem(BlackBox(name, seed, **kwargs), np.array([["A"]]))
        """
    ),
}


@pytest.fixture
def fake_poli(tmp_path: Path) -> Path:
    """A directory holding the fake ``poli`` package."""
    root = tmp_path / "fake"
    (root / "poli").mkdir(parents=True)
    for name, text in FAKE_POLI.items():
        (root / "poli" / name).write_text(text)
    return root


@pytest.fixture
def in_process(fake_poli: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake importable in this interpreter, for this test only."""
    monkeypatch.syspath_prepend(str(fake_poli))
    for name in [m for m in sys.modules if m == "poli" or m.startswith("poli.")]:
        monkeypatch.delitem(sys.modules, name)
    importlib.invalidate_caches()
    yield fake_poli
    for name in [m for m in sys.modules if m == "poli" or m.startswith("poli.")]:
        del sys.modules[name]


@pytest.fixture
def worker_env(fake_poli: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Env for a worker run by this interpreter that sees the fake; returns the python."""
    monkeypatch.setenv("PYTHONPATH", str(fake_poli))
    return sys.executable


SPACE = SequenceSpace("ABX", 1, 4)


def test_in_process_evaluates_with_polis_padding_convention(in_process):
    oracle = PoliOracle(SPACE, "shape", objectives=[{"name": "n"}, {"name": "width"}, {"name": "is_str"}])
    result = oracle(["A", "ABBA", "BB"])
    # rows padded with "" to the longest row, as a [b, L] array of strings
    assert result.values.tolist() == [[1, 4, 1], [4, 4, 1], [2, 4, 1]]
    assert result.reasons == [None] * 3
    assert oracle.info is not None and oracle.info["padding_token"] == ""
    aligned = PoliOracle(SPACE, "aligned", objectives=["n", "width", "is_str"])
    assert aligned(["AB"]).values.tolist() == [[2, 5, 1]]  # aligned: padded to max_sequence_length


def test_in_process_default_objective_seed_and_kwargs(in_process):
    oracle = PoliOracle(SPACE, "count", problem_kwargs={"target": "B"}, seed=2)
    assert [(o.name, o.direction) for o in oracle.objectives] == [("count", "max")]
    result = oracle(["ABBA", "AAAA", "ZZ"])  # ZZ is not in the space: a NaN row, never sent
    assert result.values[:2].tolist() == [[2002.0], [2000.0]]
    assert torch.isnan(result.values[2]).all() and "invalid candidate" in result.reasons[2]
    assert oracle._black_box.calls == 1


def test_out_of_process_worker_is_started_once_reused_and_closed(worker_env):
    oracle = PoliOracle(SPACE, "count", python=worker_env, seed=1, problem_kwargs={"noisy": True})
    assert oracle._worker is None  # started lazily
    assert oracle(["AAB", "B"]).values.tolist() == [[1002.0], [1000.0]]
    worker = oracle._worker
    assert worker is not None and worker.alive
    assert oracle(["A"]).values.tolist() == [[1001.0]]  # stray prints did not corrupt answers
    assert oracle._worker is worker
    assert oracle.info == {
        "name": "count",
        "max_sequence_length": None,
        "aligned": False,
        "padding_token": "",
        "alphabet": ["A", "B", "X"],
    }
    oracle.close()
    assert worker.proc.returncode == 0 and oracle._worker is None
    assert oracle(["AA"]).values.tolist() == [[1002.0]]  # a later call starts a new one
    oracle.close()


def test_out_of_process_matches_in_process(worker_env, in_process):
    kwargs = {"objectives": ["n", "width", "is_str"]}
    xs = ["A", "ABXA", "XB"]
    with PoliOracle(SPACE, "shape", python=worker_env, **kwargs) as remote:
        assert torch.equal(remote(xs).values, PoliOracle(SPACE, "shape", **kwargs)(xs).values)


def test_worker_crash_is_a_clear_error_and_the_next_call_restarts(worker_env):
    oracle = PoliOracle(SPACE, "count", python=worker_env, problem_kwargs={"crash_on": "X"})
    with pytest.raises(OracleError, match=r"(?s)exited during 'evaluate'.*exit status 7.*fatal: boom"):
        oracle(["AX"])
    assert oracle(["AA"]).values.tolist() == [[2.0]]
    oracle.close()


def test_errors_inside_poli_are_reported_and_the_worker_survives(worker_env):
    oracle = PoliOracle(SPACE, "raise", python=worker_env)
    with pytest.raises(OracleError, match="PoliWorkerError: poli: ValueError: bad input"):
        oracle(["A"])
    worker = oracle._worker
    with pytest.raises(OracleError, match="bad input"):
        oracle(["B"])
    assert oracle._worker is worker and worker.alive
    oracle.close()
    with pytest.raises(OracleError, match=r"cannot create poli problem 'nope'.*not available"):
        PoliOracle(SPACE, "nope", python=worker_env)(["A"])


def test_shape_checks(worker_env, in_process):
    two = [{"name": "a"}, {"name": "b", "direction": "min"}]
    with pytest.raises(OracleError, match=r"shape \(2, 1\), expected \(2, 2\)"):
        PoliOracle(SPACE, "count", objectives=two)(["A", "B"])
    with PoliOracle(SPACE, "wrong_rows", python=worker_env) as oracle:
        with pytest.raises(OracleError, match=r"returned shape \(1, 1\) for 2 inputs"):
            oracle(["A", "B"])


def _executable(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def test_a_worker_that_writes_garbage_or_hangs_fails_clearly(tmp_path):
    garbage = _executable(
        tmp_path / "garbage", "#!/bin/sh\nread line\necho 'Traceback: not json'\ncat >/dev/null\n"
    )
    with pytest.raises(OracleError, match="not an answer: 'Traceback: not json'"):
        PoliOracle(SPACE, "count", python=garbage)(["A"])
    hangs = _executable(tmp_path / "hangs", "#!/bin/sh\nexec sleep 30\n")
    oracle = PoliOracle(SPACE, "count", python=hangs, timeout=0.3)
    with pytest.raises(OracleError, match=r"no answer from the poli worker within 0.3 s"):
        oracle(["A"])


def test_worker_script_speaks_json_lines(worker_env):
    requests = [
        {"op": "evaluate", "x": [["A"]]},
        {"op": "create", "problem": "count", "kwargs": {"target": "X"}, "seed": None},
        "not an object",
        {"op": "evaluate", "x": [["X", "X"], ["A"]]},
        {"op": "close"},
    ]
    out = subprocess.run(
        [worker_env, str(Path(_poli_worker.__file__))],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["ok"] for a in answers] == [False, True, False, True, True]
    assert "evaluate before create" in answers[0]["error"]
    assert answers[3]["y"] == [[2.0], [0.0]]


def test_representations_of_molecules():
    space = MoleculeSpace(["CCO", "c1ccccc1Cl"], 16)
    rows = {
        r: PoliOracle(space, "qed", python=sys.executable, representation=r).rows(["CCO"])
        for r in ("tokens", "chars", "string")
    }
    assert rows == {"tokens": [["[C]", "[C]", "[O]"]], "chars": [["C", "C", "O"]], "string": [["CCO"]]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"problem": ""}, "problem must be a poli problem name"),
        ({"problem": 3}, "problem must be a poli problem name"),
        ({"objectives": "qed"}, "objectives must be a non-empty list"),
        ({"objectives": []}, "objectives must be a non-empty list"),
        ({"objectives": [{"name": "a", "dir": "max"}]}, r"unknown keys \['dir'\]"),
        ({"objectives": [{"direction": "max"}]}, "needs a string 'name'"),
        ({"objectives": ["a", "a"]}, "must be distinct"),
        ({"objectives": [{"name": "a", "direction": "up"}]}, "direction must be 'max' or 'min'"),
        ({"problem_kwargs": {"seed": 1}}, r"must not set \['seed'\]"),
        ({"problem_kwargs": ["a"]}, "mapping with string keys"),
        ({"problem_kwargs": {"f": object()}}, "plain JSON values"),
        ({"seed": "1"}, "seed must be an integer"),
        ({"seed": True}, "seed must be an integer"),
        ({"python": "/no/such/python"}, "is not an executable file"),
        ({"python": ""}, "path of an interpreter"),
        ({"representation": "bytes"}, "representation must be one of"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"timeout": "5"}, "timeout must be a positive number"),
    ],
)
def test_bad_params_raise_value_error(params, message):
    full = {"problem": "count", "python": sys.executable, **params}
    with pytest.raises(ValueError, match=message):
        PoliOracle(SPACE, **full)


def test_in_process_without_poli_says_how_to_fix_it(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "poli" else find_spec(name, *a)
    )
    with pytest.raises(ValueError, match=r"poli is not importable.*python: /path/to/that/env/bin/python"):
        PoliOracle(SPACE, "count")


def test_copies_leave_the_worker_behind(worker_env):
    import copy

    with PoliOracle(SPACE, "count", python=worker_env) as oracle:
        oracle(["A"])
        clone = copy.deepcopy(oracle)
        assert clone._worker is None and clone(["AA"]).values.tolist() == [[2.0]]
        assert clone._worker is not oracle._worker
        clone.close()


def test_poli_worker_error_is_a_runtime_error():
    assert issubclass(PoliWorkerError, RuntimeError)
