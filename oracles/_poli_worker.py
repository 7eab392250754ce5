"""Evaluate a poli black box, in this interpreter or as a worker process of another one.

This module needs only the standard library, numpy and ``poli`` (``poli-core``): it must
run in a separate environment that has ``numpy<2`` and no paretolab. Run as a script,
``python _poli_worker.py``, it answers JSON lines on stdin/stdout:

- ``{"op": "create", "problem": str, "kwargs": {...}, "seed": int | null}`` creates the
  problem once; answer ``{"ok": true, "info": {...}}``.
- ``{"op": "evaluate", "x": [[token, ...], ...]}`` (rows of tokens, ragged); answer
  ``{"ok": true, "y": [[float, ...], ...]}`` (``n x m``).
- ``{"op": "close"}`` terminates the black box; answer ``{"ok": true}``, then exit.

A request that fails is answered ``{"ok": false, "error": "Type: message", "traceback":
...}`` and the worker keeps serving. Anything poli writes to stdout goes to stderr, so the
protocol stream carries only answers.
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from typing import Any

__all__ = ["black_box_info", "create_black_box", "evaluate", "serve", "to_poli_array"]

PROTOCOL_VERSION = 1


def create_black_box(problem: str, kwargs: dict[str, Any] | None = None, seed: int | None = None) -> Any:
    """The black box of poli problem ``problem`` (``objective_factory.create(name=...)``).

    poli >= 1.0 returns a ``Problem`` (``.black_box``); older versions a tuple whose
    black box is its first callable element.
    """
    from poli import objective_factory

    kwargs = dict(kwargs or {})
    if seed is not None:
        kwargs["seed"] = seed
    created = objective_factory.create(name=problem, **kwargs)
    black_box = getattr(created, "black_box", None)
    if black_box is None and isinstance(created, tuple):
        black_box = next((item for item in created if callable(item)), None)
    if black_box is None or not callable(black_box):
        raise TypeError(f"poli's create({problem!r}) returned {type(created).__name__}, not a black box")
    return black_box


def black_box_info(black_box: Any) -> dict[str, Any]:
    """What the adapter needs from poli's ``BlackBoxInformation`` (plain JSON types)."""
    info = getattr(black_box, "info", None)
    length = getattr(info, "max_sequence_length", None)
    finite = isinstance(length, (int, float)) and not isinstance(length, bool) and math.isfinite(length)
    padding = getattr(info, "padding_token", None)
    alphabet = getattr(info, "alphabet", None)
    return {
        "name": str(getattr(info, "name", "")),
        "max_sequence_length": int(length) if finite else None,
        "aligned": bool(getattr(info, "aligned", False)),
        "padding_token": "" if padding is None else str(padding),
        "alphabet": [str(a) for a in alphabet] if isinstance(alphabet, (list, tuple)) else None,
    }


def to_poli_array(rows: list[list[str]], info: dict[str, Any]) -> Any:
    """Token rows as poli's input: a ``[b, L]`` numpy array of strings, shorter rows padded
    with the black box's padding token (``""`` by default). ``L`` is the problem's
    ``max_sequence_length`` for aligned problems with a finite one, else the longest row."""
    import numpy as np

    width = max((len(row) for row in rows), default=0)
    if info["aligned"] and info["max_sequence_length"] is not None:
        width = max(width, info["max_sequence_length"])
    pad = info["padding_token"]
    padded = [list(row) + [pad] * (width - len(row)) for row in rows]
    return np.array(padded, dtype=str).reshape(len(rows), width)


def evaluate(black_box: Any, rows: list[list[str]], info: dict[str, Any] | None = None) -> list[list[float]]:
    """Values ``n x m`` of the black box on token rows, as nested float lists."""
    import numpy as np

    info = info if info is not None else black_box_info(black_box)
    y = np.asarray(black_box(to_poli_array(rows, info)), dtype=float)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[0] != len(rows):
        raise ValueError(f"black box returned shape {tuple(y.shape)} for {len(rows)} inputs, expected [b, m]")
    return y.tolist()


def _error(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def _handle(request: Any, state: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        raise ValueError(f"a request must be an object with an 'op', got {request!r:.200}")
    op = request["op"]
    if op == "create":
        if "black_box" in state:
            raise RuntimeError("the problem was already created in this worker")
        black_box = create_black_box(request["problem"], request.get("kwargs"), request.get("seed"))
        state["black_box"], state["info"] = black_box, black_box_info(black_box)
        import numpy as np
        import poli

        versions = {"poli": getattr(poli, "__version__", "?"), "numpy": np.__version__}
        return {"ok": True, "info": state["info"], "versions": versions}
    if op == "evaluate":
        if "black_box" not in state:
            raise RuntimeError("evaluate before create")
        rows = request.get("x")
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ValueError("'x' must be a list of token lists")
        return {"ok": True, "y": evaluate(state["black_box"], rows, state["info"])}
    if op == "close":
        return {"ok": True}
    raise ValueError(f"unknown op {op!r}")


def serve() -> int:
    """Answer requests on stdin until ``close`` or end of input; returns the exit status."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints (also from C code) -> stderr
    sys.stdout = sys.stderr
    state: dict[str, Any] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        request: Any = None
        try:
            request = json.loads(line)
            answer = _handle(request, state)
        except Exception as exc:  # report every failure back; the worker keeps serving
            answer = _error(exc)
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()
        if isinstance(request, dict) and request.get("op") == "close":
            break
    terminate = getattr(state.get("black_box"), "terminate", None)
    if callable(terminate):
        try:
            terminate()
        except Exception:
            traceback.print_exc()
    return 0


if __name__ == "__main__":
    # Run as a script, this file's folder is sys.path[0]; it holds paretolab's
    # ``oracles/poli.py``, which would shadow the real ``poli`` package.
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]
    sys.exit(serve())
