"""Asynchronous (lab) rounds as plain functions: submit a round's request, take results in
from files or forms, and decide whether the round still waits.

Every result is validated as a whole before anything is recorded (:mod:`data.results`),
and each results file or form is recorded once: its sha256 is part of the observations'
``request_id``, written in the same append as the values, so a crash at any point never
records a file twice or loses one. Results files in the inbox folder are moved to
``processed/`` or, with an ``.errors.txt`` beside them, to ``rejected/``; never deleted.
"""

from __future__ import annotations

import hashlib
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

from paretolab.data.dataset import latest_observations
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
from paretolab.flows.engine import CampaignState
from paretolab.oracles.lab import LabOracle, LabRequest

__all__ = [
    "SUSPENDED_META",
    "Ingested",
    "ingest_table",
    "LabProgress",
    "campaign_id",
    "evaluate_lab",
    "expected_results",
    "ingest_file",
    "ingest_inbox",
    "ingest_rows",
    "lab_progress",
    "lab_rounds",
    "load_results_file",
    "request_id",
    "stored_objectives",
    "submit_request",
]

logger = logging.getLogger(__name__)


SUSPENDED_META = "lab_suspended"
"""Meta field naming the suspended flow run and its pause key while a lab round waits
(see :mod:`flows.waiting`)."""


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
    latest = latest_observations(store.read("observations"))
    values = latest.reindex(columns=[o.name for o in objectives]).to_numpy(dtype=float).tolist()
    measured = {
        str(c): (tuple(v) if ok else None)
        for c, ok, v in zip(latest["candidate"], latest["valid"], values, strict=True)
    }
    return ExpectedResults(cid, objectives, requested, measured, new_round)


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
        }
    )
    for j, objective in enumerate(objectives):
        rows[objective.name] = [v[j] for v in validated.values]
    crash_point("lab.results_validated")
    store.append("observations", rows)
    _log_results_event(store, source, sha, len(rows))


def _log_event(
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
        _log_event(store, -1, "", "results", source, sha, n_rows)


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


def ingest_file(store: CampaignStore, path: Path, *, replace: bool = False) -> Ingested:
    """Validate and record a results file (CSV or parquet); ResultsError records nothing."""
    frame, sha, offset = load_results_file(path)
    return _ingest(store, frame, str(path), sha, replace, offset)


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
) -> Ingested:
    """Validate and record results given as a table of strings by a program (the Python
    API): each row names its candidate id or its candidate, the ``round`` column is
    optional, and a row without values needs a failure reason. Candidates never requested
    are recorded in ``new_round``. ResultsError records nothing."""
    return _ingest(store, frame, source, sha, replace, row_offset, check, new_round, row_names)


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


def submit_request(store: CampaignStore, oracle: LabOracle, round_: int, folder: Path) -> bool:
    """Send round ``round_``'s unmeasured candidates to the lab, once.

    The request is recorded before it is sent, and the submission after; a crash between
    makes the next run call the oracle's idempotent ``submit`` again, which sends nothing
    twice. Returns True if a request was sent now.
    """
    events = store.read("lab_events")
    if ((events["round"] == round_) & (events["event"] == "submitted")).any():
        return False
    rid = request_id(round_)
    requests = store.read("requests")
    recorded = requests[requests["request_id"] == rid]
    batch = store.read("batches")
    if recorded.empty:
        measured = set(store.read("observations")["candidate"])
        todo = [c for c in batch.loc[batch["round"] == round_, "candidate"] if c not in measured]
        recorded = pd.DataFrame(
            {
                "request_id": rid,
                "round": round_,
                "attempt": 1,
                "candidate": todo,
                "sent_at": _now().isoformat(),
            }
        )
        store.append("requests", recorded)
    positions = batch[batch["round"] == round_].set_index("candidate")["position"]
    candidates = recorded["candidate"].tolist()
    request = LabRequest(rid, campaign_id(store), round_, [int(positions[c]) for c in candidates], candidates)
    sent = oracle.submit(request, folder)
    crash_point("lab.submitted")
    _log_event(
        store, round_, rid, "submitted", str(oracle.request_files(request, folder)[0]), "", len(candidates)
    )
    if sent:
        logger.info("round %d: sent %d candidate(s) to the lab (%s)", round_, len(candidates), folder)
    return sent


def lab_rounds(store: CampaignStore) -> list[tuple[int, LabProgress]]:
    """Every round that sent a lab request, with its progress."""
    events = store.read("lab_events")
    rounds = sorted(set(events.loc[events["event"] == "submitted", "round"].tolist()))
    return [(r, lab_progress(store, r)) for r in rounds]


@dataclass(frozen=True)
class LabProgress:
    """How far a round's lab request has come."""

    requested: int
    pending: int
    submitted_at: datetime | None
    continued: bool

    @property
    def arrived(self) -> int:
        return self.requested - self.pending


def lab_progress(store: CampaignStore, round_: int) -> LabProgress:
    """Requested and still-pending candidates of round ``round_``'s lab request."""
    requests = store.read("requests")
    asked = set(requests.loc[requests["request_id"] == request_id(round_), "candidate"])
    state = CampaignState.read(store)
    events = state.lab_events
    submitted = events.loc[(events["round"] == round_) & (events["event"] == "submitted"), "at"]
    return LabProgress(
        requested=len(asked),
        pending=len(asked - state.measured),
        submitted_at=datetime.fromisoformat(submitted.iloc[0]) if len(submitted) else None,
        continued=round_ in state.continued,
    )


def evaluate_lab(store: CampaignStore, oracle: LabOracle, round_: int, lab: Any) -> dict[str, float]:
    """The evaluate step for a lab: take in dropped results, submit the round's request
    (once), and report whether the round is complete, continues without the missing
    results (``lab.continue_after_hours`` passed, at least one arrived and the campaign has
    the two valid measurements the next round's proxy needs) or waits."""
    ingest_inbox(store, store.root / lab.inbox_dir)
    sent = submit_request(store, oracle, round_, store.root / lab.request_dir)
    progress = lab_progress(store, round_)
    metrics = {
        "n_sent": float(progress.requested if sent else 0),
        "n_requested": float(progress.requested),
        "n_pending": float(progress.pending),
    }
    if progress.pending == 0 or progress.continued:
        return metrics
    waited = (_now() - progress.submitted_at).total_seconds() if progress.submitted_at else 0.0
    if (
        lab.continue_after_hours is not None
        and waited >= lab.continue_after_hours * 3600
        and progress.arrived
        and CampaignState.read(store).can_fit_proxy
    ):
        _log_event(store, round_, request_id(round_), "continued", "timeout", "", progress.pending)
        logger.warning(
            "round %d: continuing with %d of %d lab results after %.1f h; %d stay pending",
            round_,
            progress.arrived,
            progress.requested,
            waited / 3600,
            progress.pending,
        )
        return metrics
    return metrics | {"awaiting": 1.0}
