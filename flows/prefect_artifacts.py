"""A round's results as Prefect artifacts, keyed by campaign, so the Prefect UI shows a
campaign's progress: a markdown summary (hypervolume, oracle calls, each generator's share
of the picks), the Pareto set as a table (columns with units), and a link to the campaign's
MLflow run. Each key keeps one artifact per round, newest first, in the UI's Artifacts tab.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from paretolab.data.store import CampaignStore
from paretolab.flows.engine import pareto_table
from paretolab.flows.factories import CampaignSetup

__all__ = ["artifact_key", "publish_round_artifacts", "wait_for_artifacts"]

logger = logging.getLogger(__name__)

_POSTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paretolab-artifacts")
"""One thread creates the queued artifacts, in order (each key's newest is the last round)."""
_QUEUED: list[Future[None]] = []
_QUEUED_LOCK = threading.Lock()


def artifact_key(campaign: str, what: str) -> str:
    """``<campaign>-<what>`` in the characters Prefect allows in a key (a-z, 0-9, -)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", campaign.lower()).strip("-") or "campaign"
    return f"{slug}-{what}"


def _summary_markdown(name: str, round_: int, row: dict[str, Any]) -> str:
    metrics = json.loads(row.get("metrics") or "{}")
    picked = {k.removeprefix("batch_share/"): v for k, v in metrics.items() if k.startswith("batch_share/")}
    pareto = {
        k.removeprefix("new_pareto_share/"): v
        for k, v in metrics.items()
        if k.startswith("new_pareto_share/")
    }
    lines = [
        f"## {name}: round {round_}",
        "",
        "| hypervolume | Pareto points | measured candidates | oracle calls |",
        "|---:|---:|---:|---:|",
        f"| {row['hypervolume']:.6g} | {row['n_pareto']} | {row['n_observations']} | {row['oracle_calls']} |",
    ]
    if picked:
        lines += [
            "",
            "| generator | share of the batch | share of the new Pareto points |",
            "|---|---:|---:|",
        ]
        for generator in sorted(picked.keys() | pareto.keys()):
            new = f"{pareto[generator]:.0%}" if generator in pareto else "-"
            lines.append(f"| {generator} | {picked.get(generator, 0.0):.0%} | {new} |")
    return "\n".join(lines)


def publish_round_artifacts(store: CampaignStore, setup: CampaignSetup, mlflow_url: str) -> None:
    """Queue the artifacts of the store's last closed round (inside a flow run).

    Their content is read from the store here; creating them on Prefect's API (three calls
    a round) happens on a background thread, in a copy of
    this run's context so they belong to this flow and task run, while the next round
    starts. :func:`wait_for_artifacts` waits for them at the end of a run."""
    rounds = store.read("rounds")
    if rounds.empty:
        return
    row = rounds.sort_values("round").iloc[-1].to_dict()
    round_, name = int(row["round"]), setup.config.name
    front = pareto_table(store, setup.objectives).rename(
        columns={o.name: f"{o.name} [{o.unit}]" for o in setup.objectives if o.unit}
    )
    jobs: list[Callable[[], Any]] = [
        functools.partial(
            create_markdown_artifact,
            _summary_markdown(name, round_, row),
            key=artifact_key(name, "summary"),
            description=f"{name}: round {round_} summary",
        ),
        functools.partial(
            create_table_artifact,
            json.loads(front.to_json(orient="records")),
            key=artifact_key(name, "pareto-set"),
            description=f"{name}: measured Pareto set after round {round_} (raw units)",
        ),
    ]
    if mlflow_url:
        jobs.append(
            functools.partial(
                create_link_artifact,
                mlflow_url,
                link_text=f"{name} in MLflow",
                key=artifact_key(name, "mlflow-run"),
                description=f"{name}: the campaign's MLflow run (metrics per round, Pareto plots)",
            )
        )
    context = contextvars.copy_context()
    with _QUEUED_LOCK:
        _QUEUED.append(_POSTER.submit(context.run, _create_all, jobs))


def _create_all(jobs: list[Callable[[], Any]]) -> None:
    """Create each artifact; one that fails is logged, not raised, and the others are still
    created: the Prefect UI then misses that view, and nothing measured is lost (the store
    and MLflow hold it all)."""
    for job in jobs:
        try:
            job()
        except Exception as exc:  # the API went away, say
            logger.warning("a Prefect artifact could not be created: %s", exc)


def wait_for_artifacts() -> None:
    """Block until every artifact this process queued is created (or failed, logged)."""
    with _QUEUED_LOCK:
        queued, _QUEUED[:] = list(_QUEUED), []
    for future in queued:
        future.result()
