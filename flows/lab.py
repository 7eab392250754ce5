"""The lab-round protocol as plain functions: send a round's request once, follow its
progress, and decide whether the round still waits (results come in through
:mod:`paretolab.flows.ingest`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from paretolab.data.faults import crash_point
from paretolab.data.store import CampaignStore
from paretolab.flows.engine import CampaignState
from paretolab.flows.ingest import campaign_id, ingest_inbox, log_lab_event, request_id
from paretolab.oracles.lab import LabOracle, LabRequest

__all__ = [
    "SUSPENDED_META",
    "LabProgress",
    "evaluate_lab",
    "lab_progress",
    "lab_rounds",
    "submit_request",
]

logger = logging.getLogger(__name__)


SUSPENDED_META = "lab_suspended"
"""Meta field naming the suspended flow run and its pause key while a lab round waits
(see :mod:`paretolab.flows.waiting`)."""


def _now() -> datetime:
    return datetime.now(UTC)


def submit_request(
    store: CampaignStore, oracle: LabOracle, round_: int, folder: Path, inbox: Path | None = None
) -> bool:
    """Send round ``round_``'s unmeasured candidates to the lab, once.

    The request is recorded before it is sent, and the submission after; a crash between
    makes the next run call the oracle's idempotent ``submit`` again, which sends nothing
    twice. The ``inbox`` folder, where results files are dropped, is created with the
    request, so the folder users are told to use exists. Returns True if a request was
    sent now.
    """
    if inbox is not None:
        inbox.mkdir(parents=True, exist_ok=True)
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
    log_lab_event(
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
    sent = submit_request(store, oracle, round_, store.root / lab.request_dir, store.root / lab.inbox_dir)
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
        log_lab_event(store, round_, request_id(round_), "continued", "timeout", "", progress.pending)
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
