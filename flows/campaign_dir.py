"""A campaign's directory: prepare a config for it, and create or reopen its store.

A campaign directory that already exists is continued only if it was created with the
same config identity (see ``CampaignConfig.identity_hash``); with ``force_new`` the old
directory is kept aside under a new name and a fresh campaign starts. Used by the Prefect
flow and the Python API alike; imports neither Prefect nor MLflow.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from paretolab.data.store import CampaignStore
from paretolab.flows.config import CampaignConfig, ConfigError, load_config
from paretolab.flows.factories import CampaignSetup, build_setup

__all__ = [
    "CampaignMismatchError",
    "Prepared",
    "check_resumable",
    "default_campaign_dir",
    "open_store",
    "prepare",
    "stored_config_path",
]

logger = logging.getLogger(__name__)


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
    from paretolab.flows.tracking import check_tracking_uri  # MLflow, only when preparing a run

    try:
        check_tracking_uri(directory, config.tracking.tracking_uri)
    except ValueError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None
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
