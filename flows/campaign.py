"""``run_campaign``: the initial design, then rounds until the rounds or budget are spent.

A campaign directory that already exists is continued from its last completed round,
provided it was created with the same config identity (see
``CampaignConfig.identity_hash``); with ``force_new`` the old directory is kept aside
under a new name and a fresh campaign starts. Nothing measured is ever deleted.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.exceptions import Pause
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from data.faults import crash_point
from data.store import CampaignStore
from flows import steps
from flows.config import CampaignConfig, ConfigError, load_config
from flows.factories import CampaignSetup, build_setup
from flows.lab import ingest_inbox
from flows.round import run_round
from flows.runtime import configure_environment, pick_device, set_torch_threads
from flows.tracking import CampaignTracker, default_tracking_uri
from flows.waiting import can_suspend, suspend_for_lab, take_form_input

__all__ = [
    "CampaignMismatchError",
    "PROGRESS_LOGGER",
    "Prepared",
    "check_resumable",
    "default_campaign_dir",
    "open_store",
    "stored_config_path",
    "prepare",
    "run_campaign",
]

logger = logging.getLogger(__name__)
PROGRESS_LOGGER = "paretolab.progress"
progress = logging.getLogger(PROGRESS_LOGGER)


class CampaignMismatchError(ConfigError):
    """The campaign directory was created with a different config."""


@dataclass
class Prepared:
    """A validated config, its objects and the campaign directory it runs in."""

    config: CampaignConfig
    setup: CampaignSetup
    campaign_dir: Path
    config_path: Path


def stored_config_path(campaign_dir: Path) -> Path:
    """The config file a campaign was created from, as recorded in its store."""
    with CampaignStore.open(campaign_dir, lock=False) as store:
        stored = store.meta.get("config_path")
    if not stored:
        raise ConfigError(f"{campaign_dir}: the campaign does not record its config file; name it")
    path = Path(stored)
    if not path.exists() and (campaign_dir / path.name).exists():
        path = campaign_dir / path.name  # a relative path from another working directory
    if not path.exists():
        raise ConfigError(f"{campaign_dir}: its config file {stored} is gone; name the config to use")
    return path


def default_campaign_dir(config: CampaignConfig) -> Path:
    """``runs/<name>`` under the working directory."""
    return Path("runs") / config.name


def check_resumable(
    config: CampaignConfig, campaign_dir: Path, force_new: bool, tokens: list[str] | None = None
) -> None:
    """Refuse to continue a campaign created with another config or token vocabulary (a
    molecule space's alphabet comes from its seed file) unless ``force_new``."""
    if force_new or not CampaignStore.exists(campaign_dir):
        return
    with CampaignStore.open(campaign_dir, lock=False) as store:
        meta = store.meta
    if meta.get("config_hash") == config.identity_hash():
        stored = meta.get("tokens")
        if tokens is None or stored is None or stored == tokens:
            return
        gone, new = sorted(set(stored) - set(tokens)), sorted(set(tokens) - set(stored))
        raise CampaignMismatchError(
            f"{campaign_dir}: the space's token vocabulary changed since the campaign was created "
            f"(was {len(stored)} tokens, now {len(tokens)}; gone: {' '.join(gone) or '-'}; "
            f"new: {' '.join(new) or '-'}), e.g. its seed file was edited; restore it, or use "
            "--force-new to start a new campaign there (the old one is kept beside it)"
        )
    old = meta.get("config", {})
    new = config.identity_data()
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)) or ["?"]
    raise CampaignMismatchError(
        f"{campaign_dir}: campaign was created with a different config "
        f"(changed: {', '.join(changed)}); use --force-new to start a new campaign there "
        "(the old one is kept beside it), or choose another directory"
    )


def prepare(config_path: str | Path, campaign_dir: str | Path | None, force_new: bool) -> Prepared:
    """Load and cross-check everything; writes nothing. Raises ConfigError."""
    config = load_config(config_path)
    setup = build_setup(config, str(config_path))
    directory = Path(campaign_dir) if campaign_dir else default_campaign_dir(config)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a directory")
    check_resumable(config, directory, force_new, setup.space.token_names())
    return Prepared(config, setup, directory, Path(config_path))


def open_store(prepared: Prepared, force_new: bool) -> CampaignStore:
    """The prepared campaign's store, locked: opened, or created (with ``force_new`` a
    campaign already there is kept aside as ``<dir>.old-<timestamp>``)."""
    directory, config = prepared.campaign_dir, prepared.config
    if CampaignStore.exists(directory):
        if not force_new:
            return CampaignStore.open(directory)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = directory.with_name(f"{directory.name}.old-{stamp}")
        probe = CampaignStore(directory)
        probe.lock()  # refuse if another process runs it; loads nothing, so works on a damaged store
        probe.close()
        directory.rename(kept)
        logger.warning("kept the previous campaign as %s", kept)
    return CampaignStore.create(
        directory,
        {
            "name": config.name,
            "config_hash": config.identity_hash(),
            "config": config.identity_data(),
            "objectives": [[o.name, o.direction, o.unit] for o in prepared.setup.objectives],
            "campaign_id": uuid.uuid4().hex[:8],
            "config_path": str(prepared.config_path.resolve()),
            "tokens": prepared.setup.space.token_names(),
            "created_at": datetime.now(UTC).isoformat(),
        },
    )


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
        done = set(store.read("rounds")["round"].tolist())
        _emit("start", total=config.rounds, done=len(done - {0}), campaign_dir=str(store.root))
        stopped = "rounds"
        awaiting: dict[str, Any] | None = None
        for round_ in range(config.rounds + 1):
            if round_ in done:
                continue
            size = config.initial_design if steps.needs_initial_design(store, round_) else config.batch_size
            if config.budget is not None:
                batches = store.read("batches")
                size = min(size, config.budget - len(batches))
                if size <= 0 and not (batches["round"] == round_).any():
                    stopped = "budget"
                    break
            start = time.perf_counter()
            # The campaign run's heartbeat covers the process; a subflow heartbeat adds
            # nothing but a wait of up to 1 s for its thread at the end of every round.
            with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
                summary = run_round(store, setup, tracker, round_, size, device)
            if summary.get("awaiting"):
                awaiting = {
                    "from": "results" if setup.config.oracle.name == "external" else "the lab",
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
                break
            _emit("round", round=round_, total=config.rounds, seconds=time.perf_counter() - start, **summary)
        if awaiting is None:
            tracker.finish(store, setup, steps.pareto_table(store, setup.objectives))
        else:
            tracker.wait()
        rounds = store.read("rounds")
        result = {
            "campaign_dir": str(store.root),
            "rounds_done": int(rounds["round"].max()) if len(rounds) else -1,
            "stopped_by": stopped,
            "hypervolume": rounds["hypervolume"].tolist(),
            "oracle_calls": len(store.read("requests")),
            "mlflow_run_id": tracker.run_id,
            "mlflow_tracking_uri": uri,
            "mlflow_ui": tracker.run_url_hint(),
            "mlflow_background_seconds": tracker.background_seconds,
            "pareto_front": steps.pareto_table(store, setup.objectives).to_dict("records"),
            "awaiting": awaiting,
        }
        _emit("finish", **{k: v for k, v in result.items() if k != "pareto_front"})
        return result
    except Pause:
        raise  # suspended for a lab: not a failure
    except BaseException as exc:
        tracker.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()
