"""Results in: every way measurements arrive (a results file, the inbox folder, a table told
from Python, a Prefect form) takes one path, validated as a whole before anything is
recorded (:mod:`paretolab.data.results`).

Each results file, table or form is recorded once: its sha256 is part of the observations'
``request_id``, written in the same append as the values, so a crash at any point never
records it twice or loses it. Results files in the inbox folder are moved to
``processed/`` or, with an ``.errors.txt`` beside them, to ``rejected/``; never deleted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from paretolab.data.dataset import REPLICATE, REPLICATE_LABEL, current_rows, latest_observations
from paretolab.data.faults import crash_point
from paretolab.data.objectives import Objective
from paretolab.data.results import (
    FAILURE_COLUMN,
    ID_COLUMN,
    ExpectedResults,
    ResultsError,
    ValidatedResults,
    candidate_id,
    read_results_file,
    validate_results,
)
from paretolab.data.spaces import Check
from paretolab.data.store import CampaignStore

__all__ = [
    "Ingested",
    "campaign_id",
    "expected_results",
    "ingest_file",
    "ingest_inbox",
    "ingest_rows",
    "ingest_table",
    "load_results_file",
    "log_lab_event",
    "request_id",
    "results_table",
    "stored_objectives",
]

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def request_id(round_: int) -> str:
    """The id of round ``round_``'s lab request (one per round)."""
    return f"round{round_}-lab"


def campaign_id(store: CampaignStore) -> str:
    """The campaign's id, the prefix of every candidate id the lab sees (set once)."""
    if "campaign_id" not in store.meta:
        store.update_meta(campaign_id=uuid.uuid4().hex[:8])
    return str(store.meta["campaign_id"])


def stored_objectives(store: CampaignStore) -> tuple[Objective, ...]:
    """The campaign's objectives as recorded when it was created."""
    return tuple(Objective(*spec) for spec in store.meta["objectives"])


def expected_results(store: CampaignStore, new_round: int | None = None) -> ExpectedResults:
    """What a results file for this campaign may contain (candidates never requested only
    with ``new_round``, the round they are recorded in)."""
    requests = store.read("requests").drop_duplicates(["round", "candidate"])
    batches = store.read("batches")[["round", "candidate", "position"]]
    sent = requests.merge(batches, on=["round", "candidate"], how="inner")
    cid = campaign_id(store)
    requested = {
        candidate_id(cid, int(r.round), int(r.position)): (int(r.round), str(r.candidate))
        for r in sent.itertuples()
    }
    objectives = stored_objectives(store)
    observations = store.read("observations")
    latest = latest_observations(observations)
    values = latest.reindex(columns=[o.name for o in objectives]).to_numpy(dtype=float).tolist()
    measured = {
        str(c): (tuple(v) if ok else None)
        for c, ok, v in zip(latest["candidate"], latest["valid"], values, strict=True)
    }
    return ExpectedResults(
        cid, objectives, requested, measured, new_round, _replicate_labels(observations, objectives)
    )


def _replicate_labels(
    observations: pd.DataFrame, objectives: Sequence[Objective]
) -> dict[str, dict[str, tuple[float, ...] | None]]:
    """The labelled replicates of each candidate's current measurement."""
    rows = current_rows(observations)
    rows = rows[rows[REPLICATE_LABEL].fillna("") != ""]
    values = rows.reindex(columns=[o.name for o in objectives]).to_numpy(dtype=float).tolist()
    labels: dict[str, dict[str, tuple[float, ...] | None]] = {}
    for c, label, ok, v in zip(rows["candidate"], rows[REPLICATE_LABEL], rows["valid"], values, strict=True):
        labels.setdefault(str(c), {})[str(label)] = tuple(v) if ok else None
    return labels


@dataclass(frozen=True)
class Ingested:
    """Outcome of taking in one results file or form."""

    source: str
    recorded: int
    pending: int
    replaced: int
    unchanged: int = 0
    already: bool = False

    def describe(self) -> str:
        if self.already:
            return f"{self.source}: already recorded earlier; nothing new"
        text = f"{self.source}: recorded {self.recorded} result(s)"
        if self.replaced:
            text += f" ({self.replaced} replacing earlier values, kept in the history)"
        if self.unchanged:
            text += f"; {self.unchanged} row(s) repeat recorded values"
        return text + (f"; {self.pending} row(s) left blank stay pending" if self.pending else "")


def _source_tag(sha: str) -> str:
    return sha[:16]


def _already_recorded(store: CampaignStore, sha: str) -> bool:
    return bool(store.read("observations")["request_id"].str.endswith(f"/{_source_tag(sha)}").any())


def _record(store: CampaignStore, validated: ValidatedResults, source: str, sha: str) -> None:
    objectives = stored_objectives(store)
    now = _now().isoformat()
    rows = pd.DataFrame(
        {
            "round": validated.rounds,
            "candidate": validated.candidates,
            "request_id": [f"{request_id(r)}/{_source_tag(sha)}" for r in validated.rounds],
            "valid": [reason is None for reason in validated.reasons],
            "reason": validated.reasons,
            "measured_at": now,
            REPLICATE: validated.replicate,
            REPLICATE_LABEL: validated.labels,
        }
    )
    for j, objective in enumerate(objectives):
        rows[objective.name] = [v[j] for v in validated.values]
    crash_point("lab.results_validated")
    store.append("observations", rows)
    _log_results_event(store, source, sha, len(rows))


def log_lab_event(
    store: CampaignStore, round_: int, request: str, event: str, source: str, sha: str, n_rows: int
) -> None:
    store.append(
        "lab_events",
        pd.DataFrame(
            [
                {
                    "round": round_,
                    "request_id": request,
                    "event": event,
                    "source": source,
                    "sha256": sha,
                    "n_rows": n_rows,
                    "at": _now().isoformat(),
                }
            ]
        ),
    )


def _log_results_event(store: CampaignStore, source: str, sha: str, n_rows: int) -> None:
    """The audit row of a recorded results file or form (written once per sha)."""
    events = store.read("lab_events")
    if not ((events["event"] == "results") & (events["sha256"] == sha)).any():
        log_lab_event(store, -1, "", "results", source, sha, n_rows)


def _ingest(
    store: CampaignStore,
    frame: pd.DataFrame,
    source: str,
    sha: str,
    replace: bool,
    offset: int,
    check: Callable[[str], Check] | None = None,
    new_round: int | None = None,
    row_names: Sequence[object] | None = None,
    replicates: bool = False,
) -> Ingested:
    if replace:  # the same table told again to replace values is another telling
        sha = hashlib.sha256(f"{sha}:replace".encode()).hexdigest()
    if _already_recorded(store, sha):
        _log_results_event(store, source, sha, 0)  # in case a crash came between the two writes
        return Ingested(source, 0, 0, 0, already=True)
    validated = validate_results(
        frame,
        source,
        expected_results(store, new_round),
        replace=replace,
        row_offset=offset,
        blank_rows="pending" if check is None else "error",
        check=check,
        row_names=row_names,
        replicates=replicates,
    )
    if not validated.candidates:
        return Ingested(source, 0, validated.pending, 0, validated.unchanged)
    _record(store, validated, source, sha)
    for r in sorted(set(validated.rounds)):
        logger.info("recorded %d lab result(s) of round %d from %s", validated.rounds.count(r), r, source)
    return Ingested(source, len(validated), validated.pending, len(validated.replaced), validated.unchanged)


def load_results_file(path: Path) -> tuple[pd.DataFrame, str, int]:
    """A results file (CSV or parquet) as a table of strings, with its sha256 and the file's
    row number of its first data row; ResultsError if it cannot be read."""
    path = Path(path)
    try:
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ResultsError(str(path), [f"cannot read: {exc.strerror}"]) from None
    return read_results_file(path), sha, 2 if path.suffix.lower() == ".csv" else 1


def ingest_file(
    store: CampaignStore, path: Path, *, replace: bool = False, replicates: bool = False
) -> Ingested:
    """Validate and record a results file (CSV or parquet); ResultsError records nothing.
    With ``replicates`` (or a ``replicate`` column), rows naming one candidate are replicates."""
    frame, sha, offset = load_results_file(path)
    return _ingest(store, frame, str(path), sha, replace, offset, replicates=replicates)


def ingest_table(
    store: CampaignStore,
    frame: pd.DataFrame,
    source: str,
    sha: str,
    check: Callable[[str], Check],
    *,
    replace: bool = False,
    new_round: int,
    row_offset: int = 2,
    row_names: Sequence[object] | None = None,
    replicates: bool = False,
) -> Ingested:
    """Validate and record results given as a table of strings by a program (the Python
    API): each row names its candidate id or its candidate, the ``round`` column is
    optional, and a row without values needs a failure reason. Candidates never requested
    are recorded in ``new_round``. ``replicates``: rows naming one candidate are replicate
    measurements. ResultsError records nothing."""
    return _ingest(store, frame, source, sha, replace, row_offset, check, new_round, row_names, replicates)


def ingest_rows(store: CampaignStore, rows: list[dict[str, Any]], source: str) -> Ingested:
    """Validate and record results entered in a form: one mapping per candidate with
    ``candidate_id``, one value per objective name and an optional ``failure_reason``."""
    objectives = stored_objectives(store)
    expected = expected_results(store)
    table = []
    for row in rows:
        cid = str(row.get(ID_COLUMN, "") or "")
        entry: dict[str, str] = {ID_COLUMN: cid}
        entry["round"] = str(expected.requested[cid][0]) if cid in expected.requested else ""
        for objective in objectives:
            value = row.get(objective.name)
            entry[objective.column] = "" if value is None else str(value)
        entry[FAILURE_COLUMN] = str(row.get(FAILURE_COLUMN) or "")
        table.append(entry)
    frame = pd.DataFrame(table, columns=[ID_COLUMN, "round", *(o.column for o in objectives), FAILURE_COLUMN])
    sha = hashlib.sha256(json.dumps([source, rows], sort_keys=True, default=str).encode()).hexdigest()
    return _ingest(store, frame, source, sha, replace=False, offset=1)


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(path, target)
    return target


def ingest_inbox(store: CampaignStore, inbox: Path) -> list[Ingested]:
    """Take in every results file dropped into ``inbox``; move each to ``processed/`` or,
    with the reasons in ``<name>.errors.txt``, to ``rejected/``."""
    if not inbox.is_dir():
        return []
    done: list[Ingested] = []
    for path in sorted(
        p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".parquet")
    ):
        if path.name.startswith((".", "~$")):
            continue  # hidden, or a spreadsheet's lock file
        if path.suffix.lower() == ".csv" and not path.read_bytes().endswith(b"\n"):
            logger.warning("%s: no final newline, maybe still being copied; left in the inbox", path)
            continue
        try:
            outcome = ingest_file(store, path)
        except ResultsError as error:
            moved = _move(path, inbox / "rejected")
            (moved.parent / f"{moved.name}.errors.txt").write_text(str(error) + "\n")
            logger.warning("%s (moved to %s)", error, moved)
            continue
        crash_point("lab.inbox_recorded")
        _move(path, inbox / "processed")
        logger.info(outcome.describe())
        done.append(outcome)
    return done


def results_table(
    results: pd.DataFrame | str | Path,
) -> tuple[pd.DataFrame, str, str, int, list[Any] | None]:
    """Results told from a program (a DataFrame, or a ``.csv``/``.parquet`` path) as a
    table of strings, with its name in messages, its sha256, the row number of its first
    row, and the row labels of a DataFrame."""
    if isinstance(results, pd.DataFrame):
        if results.columns.duplicated().any():
            twice = sorted({str(c) for c in results.columns[results.columns.duplicated()]})
            raise ResultsError("tell(DataFrame)", [f"column {c!r}: appears more than once" for c in twice])
        labels = list(results.index)
        if not results.index.is_unique:  # name rows by position: a label may stand for several
            labels = [f"#{i} (index {label})" for i, label in enumerate(labels)]
        frame = results.reset_index(drop=True)
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.astype(object).where(frame.notna(), "").map(_cell)
        text = io.StringIO()
        frame.to_csv(text, index=False)
        sha = hashlib.sha256(b"tell(DataFrame)\n" + text.getvalue().encode()).hexdigest()
        return frame, "tell(DataFrame)", sha, 0, labels
    if isinstance(results, str | Path):
        frame, sha, first_row = load_results_file(Path(results))
        return frame, str(results), sha, first_row, None
    raise TypeError(f"tell() takes a DataFrame or a .csv/.parquet path, not {type(results).__name__}")


def _cell(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # 3.0 from a column with blanks is the round 3
    return str(value).strip()
