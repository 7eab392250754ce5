"""Waiting for a lab inside Prefect: suspend the campaign's flow run, and take in what the
Prefect UI's form sends when it is resumed.

A run of a deployment is *suspended* (its process exits and nothing is held; Prefect runs
it again from the start when it is resumed). A run without a deployment cannot be
suspended, so it ends instead, and the next ``paretolab run`` goes on from the store.
Either way everything before the wait is in the store, so the rerun repeats no work.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import resume_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.input.actions import read_flow_run_input
from prefect.states import Cancelled
from pydantic import Field, create_model

from paretolab.data.objectives import Objective
from paretolab.data.results import FAILURE_COLUMN, ID_COLUMN, ResultsError, candidate_id
from paretolab.data.store import CampaignStore
from paretolab.flows.engine import CampaignState
from paretolab.flows.ingest import campaign_id, ingest_rows, stored_objectives
from paretolab.flows.lab import SUSPENDED_META

__all__ = ["can_suspend", "lab_form", "resume_suspended", "suspend_for_lab", "take_form_input"]

logger = logging.getLogger(__name__)


def lab_form(objectives: tuple[Objective, ...]) -> type[RunInput]:
    """The Prefect UI form for entering results: one entry per measured candidate."""
    fields: dict[str, Any] = {
        ID_COLUMN: (str, Field(description="the candidate_id from the request file")),
        "candidate": (str | None, Field(None, description="the candidate itself (for reference only)")),
        FAILURE_COLUMN: (str | None, Field(None, description="why it could not be measured (values blank)")),
    }
    for o in objectives:
        unit = f" in {o.unit}" if o.unit else ""
        fields[o.name] = (float | None, Field(None, description=f"{o.name}{unit} ({o.direction}imize)"))
    row = create_model("LabResult", **fields)
    return create_model(
        "LabResults",
        __base__=RunInput,
        results=(
            list[row],
            Field(default_factory=list, description="measured candidates; leave out pending ones"),
        ),
    )


def _flow_run() -> Any:
    context = FlowRunContext.get()
    return context.flow_run if context else None


def can_suspend() -> bool:
    """Whether this is a flow run of a deployment (only those can be suspended)."""
    run = _flow_run()
    return bool(run and run.deployment_id)


def _awaited(store: CampaignStore, round_: int) -> list[dict[str, str]]:
    """The form's rows: each candidate of round ``round_`` still owed, id and candidate."""
    state = CampaignState.read(store)
    batch = state.batches[state.batches["round"] == round_]
    cid = campaign_id(store)
    return [
        {ID_COLUMN: candidate_id(cid, round_, int(position)), "candidate": str(candidate)}
        for position, candidate in zip(batch["position"], batch["candidate"], strict=True)
        if candidate not in state.measured
    ]


def suspend_for_lab(store: CampaignStore, round_: int, request_dir: Path, inbox_dir: Path) -> None:
    """Suspend this flow run until the lab's results come (raises Prefect's Pause). The
    resume form says what is awaited and where the request is, with one row per candidate
    still owed, its id and candidate filled in."""
    run = _flow_run()
    key = f"lab-round{round_}-{uuid.uuid4().hex[:12]}"  # new for every wait: Prefect fires a key once
    store.update_meta(**{SUSPENDED_META: {"flow_run_id": str(run.id), "key": key, "round": round_}})
    rows = _awaited(store, round_)
    requests = store.read("requests")
    files = sorted(
        {str(request_dir / f"{r}.csv") for r in requests.loc[requests["round"] == round_, "request_id"]}
    )
    description = (
        f"**Round {round_} waits for the lab**: {len(rows)} candidate(s) still owed.\n\n"
        f"Request file: `{', '.join(files) or request_dir}`.\n\n"
        "Fill in the values of the candidates measured (leave the others blank: they stay "
        "pending), or give a failure reason. Or send the filled-in request file instead: "
        f"`paretolab submit {store.root} RESULTS.csv`, or drop it into `{inbox_dir}`."
    )
    logger.info("round %d: suspending flow run %s until the lab's results come in", round_, run.id)
    form = lab_form(stored_objectives(store)).with_initial_data(description=description, results=rows)
    suspend_flow_run(wait_for_input=form, key=key)


def resume_suspended(waiting: dict[str, Any]) -> str:
    """Resume the flow run suspended for results (``meta[SUSPENDED_META]``) once some are
    recorded; it takes over from the store. Returns its id; raises if Prefect refuses."""
    resume_flow_run(waiting["flow_run_id"], run_input={"results": []})
    return str(waiting["flow_run_id"])


def _rows(given: Any) -> list[dict[str, Any]]:
    results = given.get("results") if isinstance(given, dict) else getattr(given, "results", None)
    return [r if isinstance(r, dict) else r.model_dump() for r in results or []]


def _supersede(flow_run_id: UUID, by: Any) -> None:
    """Cancel a suspended (or resumed, not yet running) campaign run that another run took over."""
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        if state and (state.is_paused() or state.is_scheduled()):
            who = f"flow run {by.id}" if by else "a run outside Prefect deployments"
            client.set_flow_run_state(flow_run_id, Cancelled(message=f"superseded by {who}"), force=True)


def take_form_input(store: CampaignStore) -> int:
    """Record the results entered in the Prefect UI's form for the waiting round; returns how
    many were recorded.

    After a resume the input is this run's own. A different run (the next scheduled run, or
    a ``paretolab run``) reads the suspended run's input through the API, then cancels that
    run, so one run waits at a time and no input is lost. A form with problems is logged
    and records nothing; the round then waits again.
    """
    waiting = store.meta.get(SUSPENDED_META)
    if not waiting:
        return 0
    run = _flow_run()
    suspended = UUID(waiting["flow_run_id"])
    try:
        if run is not None and run.id == suspended:
            # the key was used, so Prefect does not suspend again but returns the resume's input
            given = suspend_flow_run(wait_for_input=lab_form(stored_objectives(store)), key=waiting["key"])
        else:
            given = read_flow_run_input(f"suspended-{waiting['key']}-response", flow_run_id=suspended)
            _supersede(suspended, run)
    except Exception as exc:  # e.g. the suspended run lives on a Prefect server this run cannot reach
        logger.warning(
            "could not read the Prefect form input of suspended flow run %s (%s: %s); it stays on "
            "record for a run that can",
            suspended,
            type(exc).__name__,
            exc,
        )
        return 0
    rows = _rows(given)
    recorded = 0
    if rows:
        try:
            outcome = ingest_rows(store, rows, f"Prefect UI form (flow run {suspended}, {waiting['key']})")
            recorded = outcome.recorded
            logger.info(outcome.describe())
        except ResultsError as error:
            logger.error("%s", error)
    store.update_meta(**{SUSPENDED_META: None})
    return recorded
