"""Any poli black box (``poli-core``, MachineLearningLifeScience/poli) as a paretolab Oracle.

poli needs ``numpy<2`` and paretolab ``numpy>=2``, so poli is never a dependency here.
The oracle runs a poli problem either

- in this interpreter, when ``poli`` is importable (imported lazily, on first use), or
- in another one (``python: /path/to/env/bin/python``), through a worker process
  (:mod:`oracles._poli_worker`, which needs only the standard library, numpy and poli)
  started on first use, reused across calls and closed with :meth:`PoliOracle.close`.

poli's input is a ``[b, L]`` numpy array of token strings, shorter rows padded with the
black box's padding token (``""``); its output is ``[b, m]``. poli black boxes are
maximized by convention (poli-baselines' solvers maximize), so objectives default to one
objective named after the problem, maximized.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import logging
import os
import queue
import subprocess
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from paretolab.data.spaces import PAD, SearchSpace
from paretolab.oracles.base import Objective, Oracle

__all__ = ["PoliOracle", "PoliWorkerError"]

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("_poli_worker.py")
"""The worker run by the other interpreter; it imports nothing from paretolab."""

REPRESENTATIONS = ("tokens", "chars", "string")
_RESERVED_KWARGS = frozenset({"name", "seed"})
_CLOSE_WAIT_S = 5.0


class PoliWorkerError(RuntimeError):
    """The poli worker process failed, died, timed out or broke the protocol."""


class _Worker:
    """One worker process in another interpreter, spoken to in JSON lines."""

    def __init__(self, python: str, timeout: float | None) -> None:
        self.python = python
        self.timeout = timeout
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        try:
            self.proc = subprocess.Popen(
                [python, str(WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env=env,
            )
        except OSError as exc:
            raise PoliWorkerError(f"cannot start the poli worker with {python}: {exc}") from exc
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self._finalizer = weakref.finalize(self, _stop, self.proc)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put(None)  # end of output: the worker exited

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self, lines: int = 15) -> str:
        tail = list(self._stderr)[-lines:]
        return "\n".join(tail) if tail else "(no stderr)"

    def _fail(self, message: str) -> PoliWorkerError:
        """Stop the worker (its protocol state is unknown) and describe why."""
        self.close(graceful=False)
        self._stderr_reader.join(timeout=1.0)  # its last lines explain most failures
        return PoliWorkerError(
            f"{message} (worker {self.python}, exit status {self.proc.poll()}); "
            f"worker stderr:\n{self.stderr_tail()}"
        )

    def request(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one request and wait for its answer; PoliWorkerError on any failure."""
        if not self.alive:
            raise self._fail("the poli worker is not running")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise self._fail(f"the poli worker stopped reading requests ({exc})") from exc
        timeout = self.timeout if timeout is None else timeout
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"no answer from the poli worker within {timeout:g} s") from None
        if line is None:
            try:  # its exit status tells a crash (signal, os._exit) from a clean exit
                self.proc.wait(timeout=_CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            raise self._fail(f"the poli worker exited during {message.get('op')!r}")
        try:
            answer = json.loads(line)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise self._fail(f"the poli worker wrote something that is not an answer: {line.strip()!r:.200}")
        if not answer["ok"]:
            detail = answer.get("traceback") or ""
            if detail:
                logger.debug("poli worker traceback:\n%s", detail)
            raise PoliWorkerError(f"poli: {answer.get('error', 'unknown error')}")
        return answer

    def close(self, graceful: bool = True) -> None:
        """Ask the worker to close (graceful) or kill it, then make sure it has exited."""
        if graceful and self.alive:
            try:
                self.request({"op": "close"}, timeout=_CLOSE_WAIT_S)
            except PoliWorkerError:
                pass
        elif self.alive:
            self.proc.kill()
        self._finalizer()


def _stop(proc: subprocess.Popen[str]) -> None:
    """Close the worker's stdin (it then exits), wait briefly, then terminate and kill."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=_CLOSE_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=_CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _objectives(problem: str, objectives: object) -> tuple[Objective, ...]:
    if objectives is None:
        return (Objective(problem, "max"),)
    if (
        isinstance(objectives, (str, bytes, Mapping))
        or not isinstance(objectives, Sequence)
        or not objectives
    ):
        raise ValueError(
            "objectives must be a non-empty list of {name: ..., direction: max|min} "
            f"(one per output column of the black box), got {objectives!r}"
        )
    parsed: list[Objective] = []
    for item in objectives:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValueError(f"objectives: each entry needs a string 'name', got {item!r}")
        unknown = sorted(set(item) - {"name", "direction"})
        if unknown:
            raise ValueError(f"objectives: unknown keys {unknown} in {dict(item)!r} (use name, direction)")
        parsed.append(Objective(item["name"], item.get("direction", "max")))
    names = [o.name for o in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives: names must be distinct, got {names}")
    return tuple(parsed)


class PoliOracle(Oracle):
    """A poli problem's black box, in this interpreter or in another one (``python``).

    Args:
        space: the search space; candidates reach poli as token rows (``representation``).
        problem: poli's problem name, e.g. ``"aloha"``, ``"ehrlich"``, ``"rdkit_qed"``.
        objectives: one ``{name, direction}`` per output column; default: one objective
            named ``problem``, maximized (poli's convention).
        problem_kwargs: keyword arguments of ``objective_factory.create`` and the problem's
            factory (plain JSON types), e.g. ``{string_representation: SELFIES}``.
        python: another environment's interpreter that has poli; None = this one.
        seed: passed to poli's ``create(seed=...)``.
        representation: ``tokens`` (the space's tokens: characters of a sequence, SELFIES
            tokens of a molecule), ``chars`` (characters of the canonical string, e.g.
            SMILES) or ``string`` (the whole canonical string as one token, ``[b, 1]``).
        timeout: seconds to wait for the worker's answer to one request (None = no limit).
    """

    objectives_help = "params.objectives, else one named after params.problem (max)"

    def __init__(
        self,
        space: SearchSpace,
        problem: str,
        objectives: list[dict[str, str]] | None = None,
        problem_kwargs: dict[str, Any] | None = None,
        python: str | None = None,
        seed: int | None = None,
        representation: Literal["tokens", "chars", "string"] = "tokens",
        timeout: float | None = None,
    ) -> None:
        if not isinstance(problem, str) or not problem.strip():
            raise ValueError(f"problem must be a poli problem name such as 'aloha', got {problem!r}")
        kwargs = {} if problem_kwargs is None else problem_kwargs
        if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
            raise ValueError(f"problem_kwargs must be a mapping with string keys, got {problem_kwargs!r}")
        reserved = sorted(_RESERVED_KWARGS & set(kwargs))
        if reserved:
            raise ValueError(f"problem_kwargs must not set {reserved}: use the oracle's problem/seed")
        try:
            kwargs = json.loads(json.dumps(dict(kwargs), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"problem_kwargs must hold plain JSON values: {exc}") from None
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or null, got {seed!r}")
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0
        ):
            raise ValueError(f"timeout must be a positive number of seconds or null, got {timeout!r}")
        if python is not None:
            if not isinstance(python, str) or not python.strip():
                raise ValueError(f"python must be the path of an interpreter, got {python!r}")
            python = os.path.expanduser(python)  # not resolved: a venv's python is a symlink
            if not (os.path.isfile(python) and os.access(python, os.X_OK)):
                raise ValueError(f"python: {python!r} is not an executable file")
        elif importlib.util.find_spec("poli") is None:
            raise ValueError(
                "poli is not importable in this interpreter; install poli-core (numpy<2) in a "
                "separate environment and pass python: /path/to/that/env/bin/python"
            )
        super().__init__(space)
        self.problem = problem
        self.problem_kwargs: dict[str, Any] = kwargs
        self.python = python
        self.seed = seed
        self.representation = representation
        self.timeout = None if timeout is None else float(timeout)
        self.objectives = _objectives(problem, objectives)
        self.info: dict[str, Any] | None = None
        """poli's black-box information (name, max_sequence_length, aligned, padding_token,
        alphabet), once the problem is created."""
        self._black_box: Any = None
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = f"python={self.python!r}" if self.python else "in-process"
        return f"PoliOracle(problem={self.problem!r}, m={self.num_objectives}, {where})"

    def rows(self, xs: Sequence[str]) -> list[list[str]]:
        """Token rows (ragged) of canonical candidates, in ``representation``."""
        if self.representation == "string":
            return [[x] for x in xs]
        if self.representation == "chars":
            return [list(x) for x in xs]
        names = self.space.token_names()
        return [[names[t] for t in row if t != PAD] for row in self.space.encode(xs).tolist()]

    def _evaluate(self, xs: list[str]) -> Tensor:
        rows = self.rows(xs)
        with self._lock:
            if self.python is None:
                from paretolab.oracles._poli_worker import evaluate

                if self._black_box is None:
                    self._created(*self._create_in_process())
                values: Any = evaluate(self._black_box, rows, self.info)
            else:
                values = self._started_worker().request({"op": "evaluate", "x": rows})["y"]
        try:
            return torch.tensor(values, dtype=torch.double).reshape(len(xs), -1)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise PoliWorkerError(f"poli returned values that are not an n x m table: {exc}") from exc

    def _create_in_process(self) -> tuple[Any, dict[str, Any], dict[str, str]]:
        from paretolab.oracles._poli_worker import black_box_info, create_black_box

        black_box = create_black_box(self.problem, self.problem_kwargs, self.seed)
        return black_box, black_box_info(black_box), {}

    def _started_worker(self) -> _Worker:
        if self._worker is not None and self._worker.alive:
            return self._worker
        assert self.python is not None
        if self._worker is not None:
            logger.warning("poli worker for %r had exited; starting a new one", self.problem)
            self._worker.close(graceful=False)
        worker = _Worker(self.python, self.timeout)
        create = {"op": "create", "problem": self.problem, "kwargs": self.problem_kwargs, "seed": self.seed}
        try:
            answer = worker.request(create)
        except PoliWorkerError as exc:
            worker.close(graceful=False)
            raise PoliWorkerError(f"cannot create poli problem {self.problem!r}: {exc}") from exc
        self._worker = worker
        self._created(None, answer["info"], answer.get("versions", {}))
        return worker

    def _created(self, black_box: Any, info: dict[str, Any], versions: dict[str, str]) -> None:
        self._black_box = black_box
        self.info = info
        alphabet = info.get("alphabet")
        if self.representation == "tokens" and alphabet:
            unknown = sorted(set(self.space.token_names()) - set(alphabet))
            if unknown:
                logger.warning(
                    "poli problem %r: the space's tokens %s are not in the problem's alphabet",
                    self.problem,
                    unknown[:10],
                )
        logger.info("poli problem %r ready (%s) %s", self.problem, versions or "in-process", info)

    def close(self) -> None:
        """Stop the worker process (if any) and terminate the black box; a later call
        starts again."""
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None
            terminate = getattr(self._black_box, "terminate", None)
            if callable(terminate):
                terminate()
            self._black_box = None

    def __enter__(self) -> PoliOracle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the worker and black box behind; they start their own."""
        state = self.__dict__.copy()
        state.update(_black_box=None, _worker=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
