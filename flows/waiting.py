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
from typing import Any

from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from pydantic import Field, create_model

from data.objectives import Objective
from data.results import FAILURE_COLUMN, ID_COLUMN, ResultsError
from data.store import CampaignStore
from flows.lab import ingest_rows, stored_objectives

__all__ = ["can_suspend", "lab_form", "suspend_for_lab", "take_form_input"]

logger = logging.getLogger(__name__)

SUSPENDED_META = "lab_suspended"
"""Meta field naming the suspended flow run and its pause key while a lab round waits."""


def lab_form(objectives: tuple[Objective, ...]) -> type[RunInput]:
    """The Prefect UI form for entering results: one entry per measured candidate."""
    fields: dict[str, Any] = {
        ID_COLUMN: (str, Field(description="the candidate_id from the request file")),
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


def suspend_for_lab(store: CampaignStore, round_: int) -> None:
    """Suspend this flow run until the lab's results come (raises Prefect's Pause)."""
    run = _flow_run()
    key = f"lab-round{round_}-{uuid.uuid4().hex[:12]}"  # new for every wait: Prefect fires a key once
    store.update_meta(**{SUSPENDED_META: {"flow_run_id": str(run.id), "key": key, "round": round_}})
    logger.info("round %d: suspending flow run %s until the lab's results come in", round_, run.id)
    suspend_flow_run(wait_for_input=lab_form(stored_objectives(store)), key=key)


def take_form_input(store: CampaignStore) -> int:
    """After a resume: record the results entered in the UI's form (if any); returns how many.

    A form with problems is logged and recorded nothing; the round then waits again.
    """
    waiting = store.meta.get(SUSPENDED_META)
    run = _flow_run()
    if not waiting or run is None or str(run.id) != waiting["flow_run_id"]:
        return 0
    try:
        # the key was used, so Prefect does not suspend again but returns the resume's input
        given = suspend_flow_run(wait_for_input=lab_form(stored_objectives(store)), key=waiting["key"])
    except Exception as exc:  # resumed without input (paretolab submit) or input gone
        logger.info("flow run resumed without form input (%s)", exc)
        given = None
    rows = [r.model_dump() for r in getattr(given, "results", None) or []]
    recorded = 0
    if rows:
        try:
            outcome = ingest_rows(store, rows, f"Prefect UI form (flow run {run.id}, {waiting['key']})")
            recorded = outcome.recorded
            logger.info(outcome.describe())
        except ResultsError as error:
            logger.error("%s", error)
    store.update_meta(**{SUSPENDED_META: None})
    return recorded
