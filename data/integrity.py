"""The store's integrity record: what a campaign directory must hold, checked on every open.

Two records, each written atomically, catch what a crash never does but a person (or a
disk) can — a part deleted, a byte flipped, a field of ``campaign.json`` edited:

- ``manifest.jsonl``, append-only, one JSON line per table part (its sequence number,
  table, size and SHA-256), appended after the part is renamed into place, plus a copy of
  the campaign's identity fields whenever they change (only to name the edited field in
  an error). A line is appended with one ``write`` and fsynced; the only damage a crash
  can leave is a last line without its newline, which the writer drops.
- ``identity_sha256`` inside ``campaign.json``: the SHA-256 of the campaign's identity
  fields (:data:`IDENTITY_FIELDS`), rewritten with the file itself, so the two cannot
  disagree after a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "IDENTITY_FIELDS",
    "MANIFEST",
    "Manifest",
    "PartRecord",
    "changed_identity_fields",
    "identity_of",
    "identity_sha256",
    "sha256_hex",
]

MANIFEST = "manifest.jsonl"

IDENTITY_FIELDS = (
    "schema_version",
    "name",
    "campaign_id",
    "config_hash",
    "config",
    "objectives",
    "tokens",
    "ref_point",
    "created_at",
)
"""Fields of ``campaign.json`` that define the campaign: set once, never edited. The
others (where the MLflow run is, a suspended flow run, the config file's path) are
bookkeeping that may change."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def identity_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The identity fields that ``meta`` holds."""
    return {k: meta[k] for k in IDENTITY_FIELDS if k in meta}


def identity_sha256(meta: dict[str, Any]) -> str:
    """The checksum of ``meta``'s identity fields (canonical JSON)."""
    text = json.dumps(identity_of(meta), sort_keys=True, separators=(",", ":"))
    return sha256_hex(text.encode())


def changed_identity_fields(recorded: dict[str, Any] | None, meta: dict[str, Any]) -> list[str]:
    """The identity fields whose value in ``meta`` differs from ``recorded``."""
    if recorded is None:
        return []
    current = identity_of(meta)
    return sorted(k for k in recorded.keys() | current.keys() if recorded.get(k) != current.get(k))


@dataclass(frozen=True)
class PartRecord:
    """One table part as the manifest records it."""

    seq: int
    table: str
    size: int
    sha256: str

    def line(self) -> dict[str, Any]:
        return {"part": self.seq, "table": self.table, "bytes": self.size, "sha256": self.sha256}


@dataclass
class Manifest:
    """The parsed manifest: parts by sequence number and the last recorded identity."""

    path: Path
    parts: dict[int, PartRecord] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    torn_tail: int | None = None
    """Byte offset of a last line left without its newline by a crash, if any."""

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Parse ``path``; a damaged line (other than a torn last one) is a ``ValueError``
        naming it."""
        manifest = cls(path)
        data = path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            manifest.torn_tail = end
        for number, raw in enumerate(data[:end].splitlines(), start=1):
            try:
                entry = json.loads(raw)
                if "part" in entry:
                    record = PartRecord(
                        int(entry["part"]), str(entry["table"]), int(entry["bytes"]), str(entry["sha256"])
                    )
                    if record.seq in manifest.parts:
                        raise ValueError(f"part {record.seq} recorded twice")
                    manifest.parts[record.seq] = record
                elif isinstance(entry.get("identity"), dict):
                    manifest.identity = entry["identity"]
                else:
                    raise ValueError("neither a part nor an identity record")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}: line {number} is damaged ({exc})") from None
        return manifest

    def drop_torn_tail(self) -> None:
        """Cut a crash's incomplete last line (the writer does this before appending)."""
        if self.torn_tail is not None:
            os.truncate(self.path, self.torn_tail)
            self.torn_tail = None

    def append(self, entry: dict[str, Any]) -> None:
        """Append one line durably (one ``write`` of a whole line, then fsync)."""
        line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if "part" in entry:
            record = PartRecord(entry["part"], entry["table"], entry["bytes"], entry["sha256"])
            self.parts[record.seq] = record
        else:
            self.identity = entry["identity"]

    def record_part(self, record: PartRecord) -> None:
        self.append(record.line())

    def record_identity(self, meta: dict[str, Any]) -> None:
        """Record ``meta``'s identity fields if they differ from the last record."""
        identity = identity_of(meta)
        if identity != self.identity:
            self.append({"identity": identity})
