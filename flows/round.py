"""``run_round``: one round of a campaign as a Prefect flow, one named task per step.

The task bodies are the plain functions of ``flows/steps.py``. A round that was cut off
resumes from the store: a recorded batch is measured instead of being re-selected, and
measured candidates are never sent to the oracle again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from data.faults import crash_point
from data.store import CampaignStore
from flows import steps
from flows.factories import CampaignSetup
from flows.tracking import CampaignTracker

__all__ = ["SCIENCE_STEPS", "run_round"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

SCIENCE_STEPS = ("fit_proxy", "build_acquisition", "update_generator", "propose", "select_batch", "evaluate")
"""Steps whose time is science (proxy, generation, selection, oracle), for the overhead benchmark."""


def _timed_task(name: str, fn: F, timings: dict[str, float] | None = None, **options: Any) -> F:
    def body(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if timings is not None:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    body.__name__ = name
    body.__doc__ = fn.__doc__
    return task(name=name, cache_policy=NO_CACHE, **options)(body)  # type: ignore[return-value]


@flow(name="paretolab-round", flow_run_name="round-{round_}", validate_parameters=False)
def run_round(
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
    metrics: dict[str, float] = {}
    crash_point("round.start")

    def step(name: str, fn: F, **options: Any) -> F:
        return _timed_task(name, fn, timings, **options)

    batch = store.read("batches")
    chosen = batch[batch["round"] == round_]
    if len(chosen):
        logger.info("round %d: batch already selected, resuming at evaluation", round_)
        metrics |= json.loads(chosen["metrics"].iloc[0])
    elif steps.needs_initial_design(store, round_):
        step("initial_design", steps.initial_design)(store, setup, batch_size)
    else:
        metrics |= steps.choose_batch(store, setup, round_, batch_size, device, run=step)

    evaluation = step("evaluate", steps.evaluate, retries=setup.config.oracle_retries, retry_delay_seconds=1)(
        store, setup, round_
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
    summary = step("record", steps.record)(store, setup, round_, metrics)
    step("publish", tracker.publish)(store, setup)
    return summary
