"""The task runner a campaign's rounds map their tasks on (``runtime.task_runner``: oracle
chunks, pool-scoring chunks, and generator updates with ``generator_updates: runner``):
Prefect's thread pool, or a Dask cluster through ``prefect-dask`` (a scheduler's address,
or a local cluster of worker processes started for the run and stopped after it). Workers
of a remote cluster need ``PREFECT_API_URL`` set to the team's Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from paretolab.flows.config import TaskRunnerConfig

__all__ = ["task_runner"]


@contextmanager
def task_runner(config: TaskRunnerConfig) -> Iterator[Any]:
    """The Prefect task runner for ``config``, for every round of one campaign run."""
    if config.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        yield ThreadPoolTaskRunner()
        return
    from prefect_dask import DaskTaskRunner

    if config.address is not None:
        yield DaskTaskRunner(address=config.address)
        return
    from distributed import LocalCluster

    # One cluster for the whole run, not one per round (starting one takes seconds). Its
    # workers report their task runs to this run's Prefect API: without the address each
    # would start a temporary API server of its own, which a killed worker leaves behind.
    with LocalCluster(
        n_workers=config.workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        env={"PREFECT_API_URL": _api_url()},
    ) as cluster:
        yield DaskTaskRunner(address=cluster.scheduler_address)


def _api_url() -> str:
    """The Prefect API this process talks to (a server's, or its temporary one's)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")
