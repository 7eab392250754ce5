"""``run_round``: one round of a campaign as a Prefect flow, one named task per step.

The task bodies are the plain functions of ``flows/steps.py``. A round that was cut off
resumes from the store: a recorded batch is measured instead of being re-selected, and
measured candidates are never sent to the oracle again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext, TaskRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from paretolab.data.faults import crash_point
from paretolab.data.store import CampaignStore
from paretolab.flows import steps
from paretolab.flows.engine import CampaignState, close_round
from paretolab.flows.factories import CampaignSetup
from paretolab.flows.oracle_chunks import measure_chunk, measure_here
from paretolab.flows.prefect_artifacts import publish_round_artifacts
from paretolab.flows.tracking import CampaignTracker
from paretolab.models.pool_scoring import score_here
from paretolab.oracles.base import Oracle, OracleResult

__all__ = ["PROGRESS_LOGGER", "SCIENCE_STEPS", "emit_progress", "run_round"]

logger = logging.getLogger(__name__)

SCIENCE_STEPS = (
    "fit_proxy",
    "fit_feasibility",
    "build_acquisition",
    "update_generator",
    "propose",
    "select_batch",
    "evaluate",
)
"""Steps whose time is science (proxy, generation, selection, oracle), for the overhead benchmark."""


_ROUND_TIMINGS: ContextVar[dict[str, float] | None] = ContextVar("paretolab_round_timings", default=None)
"""The running round's step times: filled inside each task body, so they count the step's
own work, not Prefect's task bookkeeping or the waits between oracle retries."""


class _RoundTimings:
    """``steps.timed``'s target for the declared tasks: the running round's timings."""

    def get(self, name: str, default: float) -> float:
        timings = _ROUND_TIMINGS.get()
        return timings.get(name, default) if timings is not None else default

    def __setitem__(self, name: str, seconds: float) -> None:
        timings = _ROUND_TIMINGS.get()
        if timings is not None:
            timings[name] = seconds


def _declare(name: str, fn: Callable[..., Any], **options: Any) -> Any:
    body = steps.timed(fn, name, _RoundTimings())  # type: ignore[arg-type]
    return task(name=name, cache_policy=NO_CACHE, **options)(body)


def _run_job(torch_threads: int, fn: Callable[..., Any], job: tuple[Any, ...]) -> Any:
    """``fn(*job)`` with the campaign's torch threads (a Dask worker has its own)."""
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return fn(*job)


_oracle_chunk = task(name="oracle_chunk", cache_policy=NO_CACHE)(measure_chunk)
_score_chunk = task(name="score_chunk", cache_policy=NO_CACHE)(_run_job)
_update = task(name="update_generator", task_run_name="update-{job[0].name}", cache_policy=NO_CACHE)(_run_job)


def _runner() -> Any:
    flow_run = FlowRunContext.get()
    return getattr(flow_run, "task_runner", None)


def _on_threads() -> bool:
    runner = _runner()
    return runner is None or isinstance(runner, ThreadPoolTaskRunner)


def _map(
    task_: Any, parameters: dict[str, Any], *, here: bool = False, keep_failures: bool = False
) -> list[Any]:
    """Map ``task_`` over ``parameters`` on the round's task runner (threads, or Dask
    workers), or ``here``, on threads of this process, and return its results in order.
    Every run is waited for before a failure is raised (or, ``keep_failures``, returned in
    its place), so none is still working when the step retries."""
    flow_run = FlowRunContext.get()
    # Prefect ships the submitting runs' contexts, parameters included, with each task; the
    # round's parameters (the store, the tracker, the setup) are not for pickling, nor
    # needed by a mapped task: submit from a copy of the round's context without them, as
    # the round's own tasks
    lean = flow_run.model_copy(update={"parameters": {}}) if flow_run is not None else None
    flow_token = FlowRunContext.__var__.set(lean)  # type: ignore[attr-defined]
    task_token = TaskRunContext.__var__.set(None)  # type: ignore[attr-defined]
    try:
        if here:
            with ThreadPoolTaskRunner() as threads:
                futures = threads.map(task_, parameters)
                return _results(futures, keep_failures)
        return _results(task_.map(**parameters), keep_failures)
    finally:
        TaskRunContext.__var__.reset(task_token)  # type: ignore[attr-defined]
        FlowRunContext.__var__.reset(flow_token)  # type: ignore[attr-defined]


def _results(futures: Any, keep_failures: bool) -> list[Any]:
    try:
        for future in futures:
            future.wait()
        results = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                if not keep_failures:
                    raise
                results.append(exc)
        return results
    finally:
        # a Dask future still held after its result is in is recomputed if its worker dies
        for future in futures:
            release = getattr(getattr(future, "wrapped_future", None), "release", None)
            if release is not None:
                release()


def _measure_mapped(oracle: Oracle, chunks: list[list[str]], folder: Path) -> list[OracleResult]:
    """The evaluate step's chunks as mapped tasks on the round's task runner; on threads, a
    single chunk runs here, as a plain call."""
    if len(chunks) == 1 and _on_threads():
        return measure_here(oracle, chunks, folder)
    return _map(_oracle_chunk, {"oracle": unmapped(oracle), "xs": chunks, "folder": unmapped(folder)})


def _score_mapped(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Pool-scoring chunks as mapped tasks on a Dask cluster's workers. On threads they are
    scored here in turn: scoring evaluates the proxy, and GPyTorch's settings are
    process-wide, so threads scoring side by side would change each other's."""
    if len(jobs) == 1 or _on_threads():
        return score_here(fn, jobs)
    threads = torch.get_num_threads()
    return _map(_score_chunk, {"torch_threads": unmapped(threads), "fn": unmapped(fn), "job": list(jobs)})


def _refresh_mapped(
    jobs: Sequence[tuple[Any, ...]], where: str = "here"
) -> list[steps.GeneratorRound | Exception]:
    """The round's generators update and sample side by side, one ``update-<generator>``
    task each: on threads of this process (``where="here"``), or on the task runner
    (``"runner"``: threads, or Dask workers)."""
    emit_progress("step", step="update_generator")
    parameters = {
        "torch_threads": unmapped(torch.get_num_threads()),
        "fn": unmapped(steps.refresh_generator),
        "job": list(jobs),
    }
    return _map(_update, parameters, here=where == "here", keep_failures=True)


def _publish(tracker: CampaignTracker, store: CampaignStore, setup: CampaignSetup) -> None:
    """Log what MLflow lacks (in a background thread; see CampaignTracker.publish), and the
    round's Prefect artifacts."""
    tracker.publish(store, setup)
    publish_round_artifacts(store, setup, tracker.run_url())


TASKS: dict[str, Any] = {
    name: _declare(name, fn)
    for name, fn in {
        "load_dataset": steps.load_dataset,
        "fit_proxy": steps.fit_proxy,
        "fit_feasibility": steps.fit_feasibility,
        "build_acquisition": steps.build_acquisition,
        "propose": steps.record_generator,
        "build_pool": steps.build_pool,
        "select_batch": steps.select,
        "initial_design": steps.initial_design,
        "evaluate": steps.evaluate,
        "record": close_round,
        "publish": _publish,
    }.items()
}
"""The round's Prefect tasks, declared once: thin wrappers of the steps and the engine."""


PROGRESS_LOGGER = "paretolab.progress"
"""Progress events for the CLI's progress bar (``extra={"paretolab": {...}}``)."""
_progress = logging.getLogger(PROGRESS_LOGGER)


def emit_progress(event: str, **fields: Any) -> None:
    """Tell the progress display (the CLI's) what is happening."""
    _progress.info(event, extra={"paretolab": {"event": event, **fields}})


def _unintrospected(task_: Any) -> Callable[..., Any]:
    """Call ``task_`` with every argument wrapped in Prefect's ``quote``: Prefect would
    otherwise walk each argument (the store, the setup, the dataset) for futures on every
    call, the largest part of a task's bookkeeping; a step's inputs are never futures."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return task_(*(quote(a) for a in args), **{k: quote(v) for k, v in kwargs.items()})

    return call


def _as_task(name: str, fn: Callable[..., Any]) -> Any:
    """``steps.choose_batch``'s hook: run each step as its task."""
    emit_progress("step", step=name)
    return _unintrospected(TASKS[name])


def _round(
    store: CampaignStore,
    setup: CampaignSetup,
    tracker: CampaignTracker,
    round_: int,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Run (or finish) round ``round_``: fit → generate → select → measure → record → publish.

    With a lab oracle the round may stop after submitting its request: the summary then
    has ``awaiting`` set and the round is finished by a later run.
    """
    timings: dict[str, float] = {}
    _ROUND_TIMINGS.set(timings)  # this flow run's own context
    metrics: dict[str, float] = {}
    crash_point("round.start")
    emit_progress("round_start", round=round_)

    def step(name: str, **options: Any) -> Any:
        emit_progress("step", step=name)
        return _unintrospected(TASKS[name].with_options(**options) if options else TASKS[name])

    state = CampaignState.read(store)
    if state.has_batch(round_):
        logger.info("round %d: batch already selected, resuming at evaluation", round_)
        metrics |= state.batch_metrics(round_)
    elif state.needs_initial_design(round_):
        step("initial_design")(store, setup, batch_size)
    else:
        metrics |= steps.choose_batch(
            store,
            setup,
            round_,
            batch_size,
            device,
            run=_as_task,
            refresh=functools.partial(
                _refresh_mapped, where=setup.config.runtime.task_runner.generator_updates
            ),
            score=_score_mapped,
        )

    evaluation = step("evaluate", retries=setup.config.oracle_retries, retry_delay_seconds=1)(
        store, setup, round_, _measure_mapped
    )
    if evaluation.get("awaiting"):
        return {
            "awaiting": 1.0,
            "round": float(round_),
            **{k: v for k, v in evaluation.items() if k != "awaiting"},
        }
    metrics |= {f"oracle/{k}": v for k, v in evaluation.items()}
    metrics |= {f"time/{k}": v for k, v in timings.items()}
    metrics["time/science"] = sum(metrics.get(f"time/{k}", 0.0) for k in SCIENCE_STEPS)
    summary = step("record")(store, setup, round_, metrics)
    step("publish")(tracker, store, setup)
    return summary


# The flow wraps ``_round`` under another name, so that the function pickles by reference:
# Prefect ships the running flow with every task it sends to a Dask worker.
run_round = flow(name="paretolab-round", flow_run_name="round-{round_}", validate_parameters=False)(_round)
