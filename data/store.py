"""CampaignStore: the append-only parquet ledger that is the single source of campaign state.

Layout of a campaign directory::

    campaign.json                  meta: schema version, config hash, reference point, ...
                                   and the checksum of its identity fields
    manifest.jsonl                 every part's size and SHA-256 (see ``data/integrity.py``)
    campaign.lock                  a note naming the process that holds the campaign (the
                                   lock itself is an flock on the directory)
    tables/<table>/<seq>.parquet   one immutable part per append; ``seq`` is global

Every write goes to a temporary file, is fsynced and then renamed, so a part is either
complete or absent. Parts are never rewritten; a round can be resumed from the store alone.
Every open checks the store against its integrity record and refuses a damaged one,
changing nothing in it.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paretolab.data.faults import crash_point
from paretolab.data.integrity import (
    IDENTITY_FIELDS,
    MANIFEST,
    Manifest,
    PartRecord,
    changed_identity_fields,
    identity_sha256,
    sha256_hex,
)

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

logger = logging.getLogger(__name__)

LOCK_NOTE = "campaign.lock"

RESTORE_HINT = (
    "the store was left untouched; restore the campaign directory from a backup "
    "(README: Backups and damaged stores)"
)

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


def atomic_write(path: Path, write: Any, *, crash_points: bool = True) -> bytes:
    """Write ``path`` with ``write(fh)`` so that it is either complete or absent (temp,
    fsync, rename, fsync of the folder); returns the bytes written. ``crash_points=False``
    for files outside the store (oracle receipts), whose writes the store's kill tests do
    not count."""
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        if crash_points:
            crash_point("store.mid_write")  # a truncated temporary file
        fh.write(data[len(data) // 2 :])
        fh.flush()
        os.fsync(fh.fileno())
    if crash_points:
        crash_point("store.before_rename")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return data


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
        self._manifest = Manifest(self.root / MANIFEST)

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
        store._meta = _checked_meta(store.meta_path, {"schema_version": SCHEMA_VERSION, **meta})
        store.lock()
        # the manifest first: a campaign.json that exists always has one beside it
        atomic_write(store._manifest.path, lambda fh: None)
        store._manifest.record_identity(store._meta)
        store._write_meta()
        return store

    @classmethod
    def open(cls, root: Path, *, lock: bool = True) -> CampaignStore:
        """Open an existing campaign, checked against its integrity record; ``lock=False``
        opens it read-only."""
        root = Path(root)
        if not cls.exists(root):
            raise StoreError(f"{root} does not hold a campaign (no campaign.json)")
        store = cls(root)
        if lock:
            store.lock()
        try:
            store._load()
        except BaseException:
            store.close()
            raise
        return store

    def lock(self) -> None:
        """Take the campaign's exclusive lock or fail at once; released on process exit.

        The lock is an flock on the campaign directory itself, which no tidying-up can
        remove while the campaign exists. ``campaign.lock`` is only a note saying who holds
        it, deleted on a clean release; one left by a killed process means nothing.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CampaignLockedError(
                f"campaign {self.root} is in use by another process ({self._holder()}); "
                "wait for it to finish or stop it first"
            ) from None
        self._lock_fd = fd
        note = (
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}\n"
            "This note says which process holds the campaign. The lock itself is on the "
            "campaign directory and ends with that process: deleting this file releases "
            "nothing, and a note left behind by a killed process holds nothing.\n"
        )
        (self.root / LOCK_NOTE).write_text(note)

    def _holder(self) -> str:
        try:
            return (self.root / LOCK_NOTE).read_text().splitlines()[0]
        except (OSError, IndexError):
            return "its note campaign.lock is gone"

    def close(self) -> None:
        """Release the lock (the store stays readable)."""
        if self._lock_fd is not None:
            (self.root / LOCK_NOTE).unlink(missing_ok=True)
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
        """Set meta fields (atomically rewrites ``campaign.json``). An identity field
        (:data:`~paretolab.data.integrity.IDENTITY_FIELDS`) can be set once, never changed."""
        self._require_lock()
        fixed = [k for k in values if k in IDENTITY_FIELDS and k in self._meta and self._meta[k] != values[k]]
        if fixed:
            raise StoreError(f"{self.meta_path}: {', '.join(fixed)} is fixed once set; refusing to change it")
        self._meta.update(values)
        self._write_meta()
        self._manifest.record_identity(self._meta)

    def _write_meta(self) -> None:
        self._meta["identity_sha256"] = identity_sha256(self._meta)
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
        """Append ``rows`` to ``table`` as one new immutable part, recorded in the manifest."""
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
        data = atomic_write(path, lambda fh: pq.write_table(arrow, fh))
        crash_point("store.part_renamed")  # in place, not yet in the manifest
        self._manifest.record_part(PartRecord(self._next_seq, table, len(data), sha256_hex(data)))
        self._next_seq += 1
        self._parts[table].append(rows)
        self._merged.pop(table, None)
        crash_point(f"store.appended.{table}")

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise StoreError(f"campaign {self.root} is open read-only; lock it to write")

    # -- opening: checks -----------------------------------------------------------------
    def _load(self) -> None:
        self._meta = self._read_meta()
        files = self._part_files()
        legacy = "identity_sha256" not in self._meta
        if legacy:
            parts = self._legacy_parts(files)
        else:
            self._check_identity()
            parts = self._checked_parts(files)
        frames: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
        records: list[PartRecord] = []
        for seq in sorted(parts):
            table, path = parts[seq]
            expected = self._manifest.parts.get(seq)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise StoreError(f"{path}: unreadable store file ({exc.strerror}); {RESTORE_HINT}") from None
            digest = sha256_hex(data)
            if expected is not None and (len(data), digest) != (expected.size, expected.sha256):
                how = (
                    f"its {len(data)} bytes differ from the {expected.size} recorded"
                    if len(data) != expected.size
                    else "its checksum differs from the one recorded"
                )
                raise StoreError(
                    f"{path}: corrupted or truncated store file: {how} in {MANIFEST} when it was "
                    f"written; {RESTORE_HINT}"
                )
            try:
                frame = pq.read_table(pa.BufferReader(data)).to_pandas()
            except Exception as exc:  # pyarrow raises several types for damaged files
                raise StoreError(
                    f"{path}: corrupted or truncated store file ({exc}); {RESTORE_HINT}"
                ) from None
            missing = set(TABLES[table]) - set(_with_added_columns(table, frame).columns)
            if missing:
                raise StoreError(f"{path}: lacks columns {sorted(missing)}; {RESTORE_HINT}")
            frame = _with_added_columns(table, frame)
            frames[table].append(_typed(table, frame))
            if expected is None:
                records.append(PartRecord(seq, table, len(data), digest))
        self._parts = frames
        self._merged = {}
        self._next_seq = len(parts)
        if self._lock_fd is not None:  # the writer completes the record
            self._manifest.drop_torn_tail()
            for record in records:
                self._manifest.record_part(record)
            if legacy:
                self._write_meta()
                logger.warning(
                    "%s: recorded an integrity manifest for its %d existing store files",
                    self.root,
                    len(records),
                )
            self._manifest.record_identity(self._meta)

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.meta_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.meta_path}: unreadable campaign meta ({exc}); {RESTORE_HINT}") from None
        return _checked_meta(self.meta_path, meta)

    def _check_identity(self) -> None:
        manifest_path = self._manifest.path
        if not manifest_path.is_file():
            raise StoreError(
                f"{manifest_path}: missing: the store's integrity record is gone; {RESTORE_HINT}"
            )
        try:
            self._manifest = Manifest.read(manifest_path)
        except ValueError as exc:
            raise StoreError(f"{exc}; {RESTORE_HINT}") from None
        if identity_sha256(self._meta) != self._meta["identity_sha256"]:
            changed = changed_identity_fields(self._manifest.identity, self._meta)
            named = f" (changed: {', '.join(changed)})" if changed else ""
            raise StoreError(
                f"{self.meta_path}: edited by hand{named}: the campaign's identity fields no longer "
                f"match their checksum, and a campaign's objectives and reference point are fixed; "
                f"{RESTORE_HINT}"
            )

    def _part_files(self) -> dict[int, tuple[str, Path]]:
        parts: dict[int, tuple[str, Path]] = {}
        for table in TABLES:
            folder = self.root / "tables" / table
            if not folder.is_dir():
                if self._lock_fd is None:
                    continue
                folder.mkdir(parents=True)
            for path in folder.iterdir():
                if path.name.endswith(".tmp"):
                    if self._lock_fd is not None:
                        path.unlink()  # never renamed: its write did not complete
                    continue
                match = _PART.match(path.name)
                if not match:
                    raise StoreError(f"{path}: unexpected file in the campaign store")
                seq = int(match.group(1))
                if seq in parts:
                    raise StoreError(f"{path}: part {seq} exists twice ({parts[seq][1]}); {RESTORE_HINT}")
                parts[seq] = (table, path)
        return parts

    def _checked_parts(self, files: dict[int, tuple[str, Path]]) -> dict[int, tuple[str, Path]]:
        """The parts to load: every one the manifest records (each must be there, in its
        table), plus the one a crash may have renamed into place without recording it."""
        recorded = self._manifest.parts
        for seq, record in sorted(recorded.items()):
            path = self.root / "tables" / record.table / f"{seq:08d}.parquet"
            if seq not in files:
                raise StoreError(
                    f"{path}: missing: {MANIFEST} records it ({record.size} bytes) but it is gone, "
                    f"with the rows it held; {RESTORE_HINT}"
                )
            if files[seq][0] != record.table:
                raise StoreError(
                    f"{files[seq][1]}: moved: {MANIFEST} records it in {record.table}; {RESTORE_HINT}"
                )
        parts = {seq: files[seq] for seq in recorded}
        if set(recorded) != set(range(len(recorded))):
            gap = min(set(range(len(recorded))) - set(recorded))
            raise StoreError(f"{self._manifest.path}: part {gap} is not recorded; {RESTORE_HINT}")
        extra = sorted(set(files) - set(recorded))
        if self._lock_fd is None:
            return parts  # a reader may race the writer: the recorded parts are complete
        stray = [seq for seq in extra if seq != len(recorded)]
        if stray:
            _, path = files[stray[0]]
            raise StoreError(
                f"{path}: not recorded in {MANIFEST}: the store was changed by hand; {RESTORE_HINT}"
            )
        parts.update({seq: files[seq] for seq in extra})  # renamed, then killed before recording
        return parts

    def _legacy_parts(self, files: dict[int, tuple[str, Path]]) -> dict[int, tuple[str, Path]]:
        """A store written before the manifest existed: its parts must be contiguous."""
        parts = files
        if self._lock_fd is None:  # a reader may race the writer: keep the complete prefix
            complete = 0
            while complete in parts:
                complete += 1
            parts = {seq: part for seq, part in parts.items() if seq < complete}
        expected = set(range(len(parts)))
        if set(parts) != expected:
            gaps = sorted(expected - set(parts))[:5]
            raise StoreError(f"{self.root / 'tables'}: parts {gaps} are missing; {RESTORE_HINT}")
        return parts


def _checked_meta(path: Path, meta: Any) -> dict[str, Any]:
    """``meta`` if it has the shape every campaign's meta has, else a StoreError."""
    if not isinstance(meta, dict):
        raise StoreError(
            f"{path}: expected a JSON object of campaign fields, found {type(meta).__name__}; {RESTORE_HINT}"
        )
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version}, this paretolab reads {SCHEMA_VERSION}")
    objectives = meta.get("objectives")
    if not (isinstance(objectives, list) and objectives and all(_is_objective_spec(o) for o in objectives)):
        problem = "lacks 'objectives'" if objectives is None else "has malformed 'objectives'"
        raise StoreError(f"{path}: {problem} (a list of [name, max|min, unit or null]); {RESTORE_HINT}")
    return meta


def _is_objective_spec(spec: Any) -> bool:
    """[name, "max" | "min", unit or null]."""
    return (
        isinstance(spec, list)
        and len(spec) == 3
        and isinstance(spec[0], str)
        and spec[1] in ("max", "min")
        and (spec[2] is None or isinstance(spec[2], str))
    )


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
