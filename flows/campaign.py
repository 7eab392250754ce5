"""``run_campaign``: the initial design, then rounds until the rounds or budget are spent.

A campaign directory that already exists is continued from its last completed round
(see :mod:`paretolab.flows.campaign_dir`). Nothing measured is ever deleted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from prefect import flow
from prefect.exceptions import Pause
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from paretolab.data.faults import crash_point
from paretolab.data.store import CampaignStore
from paretolab.flows.campaign_dir import open_store, prepare
from paretolab.flows.engine import CampaignState, pareto_table
from paretolab.flows.factories import CampaignSetup
from paretolab.flows.ingest import ingest_inbox
from paretolab.flows.round import run_round
from paretolab.flows.runtime import configure_environment, pick_device, set_torch_threads
from paretolab.flows.tracking import CampaignTracker, default_tracking_uri
from paretolab.flows.waiting import can_suspend, suspend_for_lab, take_form_input

__all__ = ["PROGRESS_LOGGER", "run_campaign"]

logger = logging.getLogger(__name__)
PROGRESS_LOGGER = "paretolab.progress"
progress = logging.getLogger(PROGRESS_LOGGER)


def _emit(event: str, **fields: Any) -> None:
    progress.info(event, extra={"paretolab": {"event": event, **fields}})


@flow(name="paretolab-campaign")
def run_campaign(
    config_path: str, campaign_dir: str | None = None, force_new: bool = False
) -> dict[str, Any]:
    """Run the campaign in ``config_path`` to its end, resuming what is already stored.

    With a lab oracle a round may wait for results: a deployment's flow run is then
    suspended (see ``flows/waiting.py``); any other run returns with ``stopped_by``
    ``"awaiting lab results"`` (``"awaiting results"`` for an external oracle) and the next
    run goes on from the store.

    Returns a summary: campaign directory, rounds done, hypervolume history, oracle
    calls, the MLflow run, the Pareto front, and what the lab still owes.
    """
    configure_environment()
    prepared = prepare(config_path, campaign_dir, force_new)
    config, setup = prepared.config, prepared.setup
    set_torch_threads(config.runtime.torch_threads)
    device = pick_device(config.runtime.device)
    store = open_store(prepared, force_new)
    uri = default_tracking_uri(store.root, config.tracking.tracking_uri)
    tracker = CampaignTracker(uri, config.tracking.experiment, store.root.resolve().parent / "mlartifacts")
    try:
        tracker.start(store, config.model_dump(mode="json"), config.name)
        crash_point("campaign.tracker_started")
        if setup.oracle.asynchronous:  # results that came in while no run was going
            take_form_input(store)
            ingest_inbox(store, store.root / config.lab.inbox_dir)
        tracker.publish(store, setup)
        stopped, awaiting = _run_rounds(store, setup, tracker, device)
        if awaiting is None:
            tracker.finish(store, setup, pareto_table(store, setup.objectives))
        else:
            tracker.wait()
        result = _summary(store, setup, tracker, uri, stopped, awaiting)
        _emit("finish", **{k: v for k, v in result.items() if k != "pareto_front"})
        return result
    except Pause:
        raise  # suspended for a lab: not a failure
    except BaseException as exc:
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()


def _run_rounds(
    store: CampaignStore, setup: CampaignSetup, tracker: CampaignTracker, device: torch.device
) -> tuple[str, dict[str, Any] | None]:
    """Run the rounds not closed yet, until ``rounds`` or the budget is spent or a round
    waits for results; returns what stopped it, and what is awaited."""
    config = setup.config
    done = CampaignState.read(store).closed
    _emit("start", total=config.rounds, done=len(done - {0}), campaign_dir=str(store.root))
    for round_ in range(config.rounds + 1):
        if round_ in done:
            continue
        state = CampaignState.read(store)
        size = state.batch_size(config, round_)
        if size <= 0 and not state.has_batch(round_):
            return "budget", None
        start = time.perf_counter()
        # The campaign run's heartbeat covers the process; a subflow heartbeat adds
        # nothing but a wait of up to 1 s for its thread at the end of every round.
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            summary = run_round(store, setup, tracker, round_, size, device)
        if summary.get("awaiting"):
            awaiting = {
                "from": "results" if config.oracle.name == "external" else "the lab",
                "round": round_,
                "pending": int(summary["n_pending"]),
                "requested": int(summary["n_requested"]),
                "request_dir": str(store.root / config.lab.request_dir),
                "inbox_dir": str(store.root / config.lab.inbox_dir),
            }
            _emit("awaiting", **awaiting)
            stopped = "awaiting results" if awaiting["from"] == "results" else "awaiting lab results"
            tracker.awaiting(
                f"{stopped}: round {round_}, {awaiting['pending']} of {awaiting['requested']} pending"
            )
            if can_suspend():
                suspend_for_lab(store, round_)  # ends this process; Prefect reruns the flow on resume
            return stopped, awaiting
        _emit("round", round=round_, total=config.rounds, seconds=time.perf_counter() - start, **summary)
    return "rounds", None


def _summary(
    store: CampaignStore,
    setup: CampaignSetup,
    tracker: CampaignTracker,
    uri: str,
    stopped: str,
    awaiting: dict[str, Any] | None,
) -> dict[str, Any]:
    """What ``run_campaign`` returns (see its docstring)."""
    rounds = store.read("rounds")
    return {
        "campaign_dir": str(store.root),
        "rounds_done": int(rounds["round"].max()) if len(rounds) else -1,
        "stopped_by": stopped,
        "hypervolume": rounds["hypervolume"].tolist(),
        "oracle_calls": len(store.read("requests")),
        "mlflow_run_id": tracker.run_id,
        "mlflow_tracking_uri": uri,
        "mlflow_ui": tracker.run_url_hint(),
        "mlflow_background_seconds": tracker.background_seconds,
        "pareto_front": pareto_table(store, setup.objectives).to_dict("records"),
        "awaiting": awaiting,
    }
