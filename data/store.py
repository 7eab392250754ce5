"""CampaignStore: the append-only parquet ledger that is the single source of campaign state.

Layout of a campaign directory::

    campaign.json                  meta: schema version, config hash, reference point, ...
    campaign.lock                  held (flock) by the one process running the campaign
    tables/<table>/<seq>.parquet   one immutable part per append; ``seq`` is global

Every write goes to a temporary file, is fsynced and then renamed, so a part is either
complete or absent. Parts are never rewritten; a round can be resumed from the store alone.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paretolab.data.faults import crash_point

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "CampaignLockedError",
    "CampaignStore",
    "StoreError",
    "atomic_write",
]

SCHEMA_VERSION = 1

TABLES: dict[str, dict[str, str]] = {
    # every candidate a generator proposed, valid or not
    "proposals": {
        "round": "int64",
        "generator": "string",
        "candidate": "string",
        "canonical": "string",
        "reason": "string",
    },
    # the batch chosen for the oracle (round 0 = initial design), with the metrics of the
    # steps that chose it (JSON, same on every row) so that a resumed round reports them
    "batches": {
        "round": "int64",
        "position": "int64",
        "candidate": "string",
        "generator": "string",
        "acquisition_value": "float64",
        "metrics": "string",
    },
    # the proxy's prediction for each selected candidate (raw units), one row per objective
    "predictions": {
        "round": "int64",
        "candidate": "string",
        "objective": "string",
        "mean": "float64",
        "std": "float64",
    },
    # one row per candidate sent to the oracle, written *before* it is sent
    "requests": {
        "request_id": "string",
        "round": "int64",
        "attempt": "int64",
        "candidate": "string",
        "sent_at": "string",
    },
    # one row per measured candidate; objective columns (raw units) are added per campaign.
    # A row with ``[replicate]`` adds a measurement to the candidate's rows before it (a
    # lab's replicates; ``[replicate label]`` is the lab's name for it, "" if none); without
    # it, it replaces them (they stay as history). Brackets: no objective can take the name
    "observations": {
        "round": "int64",
        "candidate": "string",
        "request_id": "string",
        "valid": "bool",
        "reason": "string",
        "measured_at": "string",
        "[replicate]": "bool",
        "[replicate label]": "string",
    },
    # per-step training curves of learned generators (a re-run update appends again; the
    # last rows of a (round, generator) win)
    "training": {
        "round": "int64",
        "generator": "string",
        "step": "int64",
        "metric": "string",
        "value": "float64",
    },
    # what happened with an asynchronous (lab) oracle: a request submitted, a results file
    # or form recorded (with its sha256, so the same file is never recorded twice), a round
    # closed before all its results came in
    "lab_events": {
        "round": "int64",
        "request_id": "string",
        "event": "string",
        "source": "string",
        "sha256": "string",
        "n_rows": "int64",
        "at": "string",
    },
    # one row per completed round
    "rounds": {
        "round": "int64",
        "completed_at": "string",
        "hypervolume": "float64",
        "n_pareto": "int64",
        "n_observations": "int64",
        "oracle_calls": "int64",
        "metrics": "string",
    },
}

ADDED_COLUMNS: dict[str, dict[str, object]] = {
    "observations": {"[replicate]": False, "[replicate label]": ""}
}
"""Columns added after schema version 1, with the value rows written before them have."""

_PART = re.compile(r"^(\d{8})\.parquet$")
_CHECKPOINT = re.compile(r"^round_(\d+)\.pt$")
_INITIAL_CHECKPOINT = "initial.pt"


class StoreError(RuntimeError):
    """The campaign directory is missing, corrupted or inconsistent."""


class CampaignLockedError(StoreError):
    """Another process holds the campaign."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` with ``write(fh)`` so that it is either complete or absent (temp,
    fsync, rename, fsync of the folder)."""
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        crash_point("store.mid_write")  # a truncated temporary file
        fh.write(data[len(data) // 2 :])
        fh.flush()
        os.fsync(fh.fileno())
    crash_point("store.before_rename")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class CampaignStore:
    """Reads and appends the tables of one campaign directory.

    Open it with :meth:`create` or :meth:`open`; writing needs :meth:`lock`.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._meta: dict[str, Any] = {}
        self._parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        self._merged: dict[str, pd.DataFrame] = {}
        self._next_seq = 0
        self._lock_fd: int | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / "campaign.json"

    @classmethod
    def exists(cls, root: Path) -> bool:
        """Whether ``root`` holds a campaign."""
        return (Path(root) / "campaign.json").is_file()

    @classmethod
    def create(cls, root: Path, meta: dict[str, Any]) -> CampaignStore:
        """Start a new campaign in ``root`` (which must not hold one) and lock it."""
        root = Path(root)
        if cls.exists(root) or any((root / "tables").glob("*/*.parquet")):
            raise StoreError(f"{root} already holds campaign data; refusing to write over it")
        for table in TABLES:
            (root / "tables" / table).mkdir(parents=True, exist_ok=True)
        store = cls(root)
        store.lock()
        store._meta = {"schema_version": SCHEMA_VERSION, **meta}
        store._write_meta()
        return store

    @classmethod
    def open(cls, root: Path, *, lock: bool = True) -> CampaignStore:
        """Open an existing campaign; ``lock=False`` opens it read-only."""
        root = Path(root)
        if not cls.exists(root):
            raise StoreError(f"{root} does not hold a campaign (no campaign.json)")
        store = cls(root)
        if lock:
            store.lock()
        store._load()
        return store

    def lock(self) -> None:
        """Take the campaign's exclusive lock or fail at once; released on process exit."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "campaign.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise CampaignLockedError(
                f"campaign {self.root} is in use by another process (pid {holder}); "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the store stays readable)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> CampaignStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta --------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        return dict(self._meta)

    def update_meta(self, **values: Any) -> None:
        """Set meta fields (atomically rewrites ``campaign.json``)."""
        self._require_lock()
        self._meta.update(values)
        self._write_meta()

    def _write_meta(self) -> None:
        text = json.dumps(self._meta, indent=2, sort_keys=True).encode()
        atomic_write(self.meta_path, lambda fh: fh.write(text))
        crash_point("store.meta_written")

    # -- generator checkpoints ---------------------------------------------------------
    def _checkpoint_dir(self, generator: str) -> Path:
        return self.root / "checkpoints" / generator

    def save_checkpoint(self, generator: str, round_: int | None, state: bytes) -> Path:
        """Atomically store a generator's serialized state after training in ``round_``;
        ``None`` stores its untrained state, which a retry of its first training starts
        from. The store keeps bytes: what they hold is the generator's business."""
        self._require_lock()
        folder = self._checkpoint_dir(generator)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (_INITIAL_CHECKPOINT if round_ is None else f"round_{round_:04d}.pt")
        atomic_write(path, lambda fh: fh.write(state))
        crash_point("store.checkpoint_saved")
        return path

    def load_checkpoint(self, generator: str, before_round: int) -> tuple[int, Path, bytes] | None:
        """The latest checkpoint of ``generator`` from a round before ``before_round``, else
        its untrained state (round -1) if stored: its round, file and bytes."""
        folder = self._checkpoint_dir(generator)
        rounds = (
            sorted(int(m.group(1)) for p in folder.glob("round_*.pt") if (m := _CHECKPOINT.match(p.name)))
            if folder.is_dir()
            else []
        )
        rounds = [r for r in rounds if r < before_round]
        if rounds:
            found, path = rounds[-1], folder / f"round_{rounds[-1]:04d}.pt"
        elif (folder / _INITIAL_CHECKPOINT).is_file():
            found, path = -1, folder / _INITIAL_CHECKPOINT
        else:
            return None
        try:
            return found, path, path.read_bytes()
        except OSError as exc:
            raise StoreError(f"{path}: unreadable generator checkpoint ({exc.strerror})") from None

    # -- tables ------------------------------------------------------------------------
    def read(self, table: str) -> pd.DataFrame:
        """All rows of ``table`` in write order (a copy)."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        if table not in self._merged:
            parts = self._parts[table]
            self._merged[table] = pd.concat(parts, ignore_index=True) if parts else _empty(table)
        # pandas' copy-on-write makes a shallow copy safe: a caller's edit copies first
        return self._merged[table].copy(deep=False)

    def append(self, table: str, rows: pd.DataFrame) -> None:
        """Append ``rows`` to ``table`` as one new immutable part."""
        self._require_lock()
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        if rows.empty:
            return
        rows = _with_added_columns(table, rows)
        missing = set(TABLES[table]) - set(rows.columns)
        if missing:
            raise ValueError(f"rows for table {table!r} lack columns {sorted(missing)}")
        rows = _typed(table, rows.reset_index(drop=True))
        path = self.root / "tables" / table / f"{self._next_seq:08d}.parquet"
        arrow = pa.Table.from_pandas(rows, preserve_index=False)
        atomic_write(path, lambda fh: pq.write_table(arrow, fh))
        self._next_seq += 1
        self._parts[table].append(rows)
        self._merged.pop(table, None)
        crash_point(f"store.appended.{table}")

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise StoreError(f"campaign {self.root} is open read-only; lock it to write")

    def _load(self) -> None:
        try:
            self._meta = json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.meta_path}: unreadable campaign meta ({exc})") from None
        version = self._meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.meta_path}: schema version {version}, this paretolab reads {SCHEMA_VERSION}"
            )
        parts: dict[int, tuple[str, Path]] = {}
        for table in TABLES:
            folder = self.root / "tables" / table
            folder.mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                if path.name.endswith(".tmp"):
                    if self._lock_fd is not None:
                        path.unlink()  # never renamed: its write did not complete
                    continue
                match = _PART.match(path.name)
                if not match:
                    raise StoreError(f"{path}: unexpected file in the campaign store")
                parts[int(match.group(1))] = (table, path)
        if self._lock_fd is None:  # a reader may race the writer: keep the complete prefix
            complete = 0
            while complete in parts:
                complete += 1
            parts = {seq: part for seq, part in parts.items() if seq < complete}
        expected = set(range(len(parts)))
        if set(parts) != expected:
            gaps = sorted(expected - set(parts))[:5]
            raise StoreError(
                f"{self.root / 'tables'}: parts {gaps} are missing; the store is incomplete "
                "and was left untouched"
            )
        frames: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        for seq in sorted(parts):
            table, path = parts[seq]
            try:
                frame = pq.read_table(path).to_pandas()
            except Exception as exc:  # pyarrow raises several types for damaged files
                raise StoreError(
                    f"{path}: corrupted or truncated store file ({exc}); the store was left untouched"
                ) from None
            missing = set(TABLES[table]) - set(_with_added_columns(table, frame).columns)
            if missing:
                raise StoreError(f"{path}: lacks columns {sorted(missing)}")
            frame = _with_added_columns(table, frame)
            frames[table].append(_typed(table, frame))
        self._parts = frames
        self._merged = {}
        self._next_seq = len(parts)


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in TABLES[table].items()})


def _with_added_columns(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` with the columns added since version 1 that they lack, at their old value."""
    absent = {c: v for c, v in ADDED_COLUMNS.get(table, {}).items() if c not in rows.columns}
    return rows.assign(**absent) if absent else rows


def _typed(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.copy()
    for column, dtype in TABLES[table].items():
        rows[column] = rows[column].astype(dtype)
    return rows
