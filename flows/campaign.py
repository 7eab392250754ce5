"""``run_campaign``: the initial design, then rounds until the rounds or budget are spent.

A campaign directory that already exists is continued from its last completed round
(see :mod:`paretolab.flows.campaign_dir`). Nothing measured is ever deleted.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import Pause
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Cancelled, State

from paretolab.data.faults import crash_point
from paretolab.data.store import CampaignLockedError, CampaignStore, StoreError
from paretolab.flows.campaign_dir import default_campaign_dir, open_store, prepare
from paretolab.flows.config import load_config
from paretolab.flows.engine import CampaignState, pareto_table
from paretolab.flows.factories import CampaignSetup
from paretolab.flows.ingest import ingest_inbox
from paretolab.flows.oracle_chunks import forget_settled_receipts
from paretolab.flows.prefect_artifacts import wait_for_artifacts
from paretolab.flows.round import PROGRESS_LOGGER, emit_progress, run_round
from paretolab.flows.runtime import configure_environment, pick_device, set_torch_threads
from paretolab.flows.task_runners import task_runner
from paretolab.flows.tracking import CampaignTracker, default_tracking_uri
from paretolab.flows.waiting import can_suspend, suspend_for_lab, take_form_input

__all__ = ["PROGRESS_LOGGER", "run_campaign"]

logger = logging.getLogger(__name__)


class _InARun(logging.Filter):
    """Passes records logged inside a Prefect flow or task run (the MLflow thread's are not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return FlowRunContext.get() is not None or TaskRunContext.get() is not None


@contextmanager
def _logs_to_prefect() -> Iterator[None]:
    """paretolab's own log lines, INFO and up, reach the flow run's logs in the Prefect UI."""
    from prefect.logging.handlers import APILogHandler

    ours = logging.getLogger("paretolab")
    handler = APILogHandler(level=logging.INFO)
    handler.addFilter(_InARun())
    level = ours.level
    if ours.getEffectiveLevel() > logging.INFO:
        ours.setLevel(logging.INFO)
    ours.addHandler(handler)
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(level)
        handler.flush()  # send what is queued now: a CLI process may exit right after


def _run_name() -> str:
    """``<campaign>-from-round-<k>``: what a flow run is about, for the Prefect UI. A cheap
    look at the config and the rounds table; the run itself checks everything."""
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    config_path = str(parameters.get("config_path", "campaign"))
    try:
        config = load_config(config_path)
        directory = Path(parameters.get("campaign_dir") or default_campaign_dir(config))
        closed = [
            int(pq.read_table(part, columns=["round"]).column("round").to_pylist()[-1])
            for part in (directory / "tables" / "rounds").glob("*.parquet")
        ]
    except Exception:  # an invalid config or a damaged store: the run will say what is wrong
        return f"{Path(config_path).stem}-from-round-0"
    return f"{config.name}-from-round-{max(closed, default=-1) + 1}"


@flow(name="paretolab-campaign", flow_run_name=_run_name)
def run_campaign(
    config_path: str,
    campaign_dir: str | None = None,
    force_new: bool = False,
    rounds_per_run: int | None = None,
) -> dict[str, Any] | State:
    """Run the campaign in ``config_path`` to its end, resuming what is already stored.

    With ``rounds_per_run`` the run stops once it has closed that many rounds (the
    initial design counts as round 0), so a schedule advances the campaign step by step;
    ``rounds`` in the config stays the campaign's total. A campaign that another process
    holds ends the run *Cancelled*, saying so, not Failed.

    With a lab oracle a round may wait for results: a deployment's flow run is then
    suspended (see ``flows/waiting.py``); any other run returns with ``stopped_by``
    ``"awaiting lab results"`` (``"awaiting results"`` for an external oracle) and the next
    run goes on from the store.

    Returns a summary: campaign directory, rounds done, hypervolume history, oracle
    calls, the MLflow run, the Pareto front, and what the lab still owes.
    """
    if rounds_per_run is not None and rounds_per_run < 1:
        raise ValueError(f"rounds_per_run must be at least 1, got {rounds_per_run}")
    with _logs_to_prefect():
        return _run_campaign(config_path, campaign_dir, force_new, rounds_per_run)


def _run_campaign(
    config_path: str, campaign_dir: str | None, force_new: bool, rounds_per_run: int | None
) -> dict[str, Any] | State:
    configure_environment()
    prepared = prepare(config_path, campaign_dir, force_new)
    config, setup = prepared.config, prepared.setup
    set_torch_threads(config.runtime.torch_threads)
    device = pick_device(config.runtime.device)
    try:
        store = open_store(prepared, force_new)
    except CampaignLockedError as exc:
        logger.info("%s", exc)  # the state message says it; Failed would be wrong
        return Cancelled(message=f"skipped: {exc}")
    uri = default_tracking_uri(store.root, config.tracking.tracking_uri)
    tracker = CampaignTracker(uri, config.tracking.experiment, store.root.resolve().parent / "mlartifacts")
    try:
        tracker.start(store, config)
        crash_point("campaign.tracker_started")
        if setup.oracle.asynchronous:  # results that came in while no run was going
            take_form_input(store)
            ingest_inbox(store, store.root / config.lab.inbox_dir)
        tracker.publish(store, setup)
        stopped, awaiting = _run_rounds(store, setup, tracker, device, rounds_per_run)
        if awaiting is None:
            tracker.finish(store, setup, pareto_table(store, setup.objectives))
        else:
            tracker.wait()
        result = _summary(store, setup, tracker, uri, stopped, awaiting)
        emit_progress("finish", **{k: v for k, v in result.items() if k != "pareto_front"})
        return result
    except Pause:
        raise  # suspended for a lab: not a failure
    except BaseException as exc:
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        try:
            wait_for_artifacts()  # the rounds' Prefect artifacts, created in the background
        finally:
            store.close()


def _run_rounds(
    store: CampaignStore,
    setup: CampaignSetup,
    tracker: CampaignTracker,
    device: torch.device,
    rounds_per_run: int | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Run the rounds not closed yet, until ``rounds``, the budget or ``rounds_per_run``
    is spent or a round waits for results; returns what stopped it, and what is awaited."""
    config = setup.config
    done = CampaignState.read(store).closed
    emit_progress("start", total=config.rounds, done=len(done - {0}), campaign_dir=str(store.root))
    logger.info(
        "campaign %s in %s: %d of %d round(s) closed%s",
        config.name,
        store.root,
        len(done),
        config.rounds + 1,
        f", this run closes up to {rounds_per_run}" if rounds_per_run else "",
    )
    try:
        with task_runner(config.runtime.task_runner) as runner:
            return _close_rounds(store, setup, tracker, device, rounds_per_run, done, runner)
    finally:  # the runner is closed: no chunk of a recorded round can run again
        with contextlib.suppress(StoreError):  # a damaged store says so elsewhere
            forget_settled_receipts(store.root, store.read("observations")["round"])


def _close_rounds(
    store: CampaignStore,
    setup: CampaignSetup,
    tracker: CampaignTracker,
    device: torch.device,
    rounds_per_run: int | None,
    done: set[int],
    runner: Any,
) -> tuple[str, dict[str, Any] | None]:
    # Both built once per run, not per round: the flow's options (Prefect builds its
    # parameter schema anew) and the settings context (it copies Prefect's settings); a
    # profile put 0.45 s a round on them, the wall-clock gain was within run-to-run noise.
    # The campaign run's heartbeat covers the process; a subflow heartbeat would add
    # nothing but a wait of up to 1 s for its thread at the end of every round. The
    # engine duplicates the task runner for each round's flow run.
    round_flow = run_round.with_options(task_runner=runner)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return _close_each_round(store, setup, tracker, device, rounds_per_run, done, round_flow)


def _close_each_round(
    store: CampaignStore,
    setup: CampaignSetup,
    tracker: CampaignTracker,
    device: torch.device,
    rounds_per_run: int | None,
    done: set[int],
    round_flow: Any,
) -> tuple[str, dict[str, Any] | None]:
    config = setup.config
    closed_here = 0
    for round_ in range(config.rounds + 1):
        if round_ in done:
            continue
        if rounds_per_run is not None and closed_here >= rounds_per_run:
            return "rounds_per_run", None
        state = CampaignState.read(store)
        size = state.batch_size(config, round_)
        if size <= 0 and not state.has_batch(round_):
            return "budget", None
        start = time.perf_counter()
        summary = round_flow(store, setup, tracker, round_, size, device)
        if summary.get("awaiting"):
            awaiting = {
                "from": "results" if config.oracle.name == "external" else "the lab",
                "round": round_,
                "pending": int(summary["n_pending"]),
                "requested": int(summary["n_requested"]),
                "request_dir": str(store.root / config.lab.request_dir),
                "inbox_dir": str(store.root / config.lab.inbox_dir),
            }
            emit_progress("awaiting", **awaiting)
            stopped = "awaiting results" if awaiting["from"] == "results" else "awaiting lab results"
            tracker.awaiting(
                f"{stopped}: round {round_}, {awaiting['pending']} of {awaiting['requested']} pending"
            )
            if can_suspend():
                # ends this process; Prefect reruns the flow on resume
                suspend_for_lab(store, round_, Path(awaiting["request_dir"]), Path(awaiting["inbox_dir"]))
            return stopped, awaiting
        seconds = time.perf_counter() - start
        emit_progress("round", round=round_, total=config.rounds, seconds=seconds, **summary)
        logger.info(
            "round %d closed in %.1f s: hypervolume %.6g, %d Pareto point(s), %d oracle call(s) so far",
            round_,
            seconds,
            summary["hypervolume"],
            int(summary["n_pareto"]),
            int(summary["oracle_calls"]),
        )
        closed_here += 1
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
        "mlflow_ui": tracker.run_url_hint(store.root),
        "mlflow_background_seconds": tracker.background_seconds,
        "pareto_front": pareto_table(store, setup.objectives).to_dict("records"),
        "awaiting": awaiting,
    }
