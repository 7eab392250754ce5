"""Deploy a campaign to a Prefect server: a schedule, one run at a time, a process worker.

What ``paretolab deploy`` does, for users who do not write ``prefect.yaml``. The deployment
runs the installed flow (entrypoint by module path, so no source checkout is needed) on a
``process`` work pool, with a form-validated parameter schema, an optional cron schedule and
a concurrency limit of one: a run that would overlap the previous one is cancelled by the
server (``CANCEL_NEW``), and a run that finds the campaign held by another process ends
Cancelled too (``run_campaign``), so an overlap is never a Failed run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

__all__ = ["ENTRYPOINT", "DeployedCampaign", "NoServerError", "deploy_campaign"]

ENTRYPOINT = "paretolab.flows.campaign.run_campaign"
"""The flow by module path: importable wherever paretolab is installed."""


class NoServerError(RuntimeError):
    """No Prefect server to deploy to."""


@dataclass(frozen=True)
class DeployedCampaign:
    """What was deployed, for the message to the user."""

    deployment_id: UUID
    name: str
    work_pool: str
    cron: str | None
    parameters: dict[str, object]


def deploy_campaign(
    config_path: Path,
    *,
    name: str,
    campaign_dir: Path,
    work_pool: str = "paretolab",
    cron: str | None = None,
    timezone: str = "UTC",
    rounds_per_run: int | None = 1,
) -> DeployedCampaign:
    """Create or update the deployment ``paretolab-campaign/<name>`` on the server that
    ``PREFECT_API_URL`` names, creating the ``process`` work pool if it does not exist.

    Paths are stored absolute, so the worker may run from any folder on this machine (or
    one that mounts the same paths).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL
    from prefect.workers.process import ProcessWorker

    from paretolab.flows.campaign import run_campaign

    if not PREFECT_API_URL.value():
        raise NoServerError(
            "deploy needs a Prefect server: start one (`prefect server start`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    parameters: dict[str, object] = {
        "config_path": str(Path(config_path).resolve()),
        "campaign_dir": str(Path(campaign_dir).resolve()),
    }
    if rounds_per_run is not None:
        parameters["rounds_per_run"] = rounds_per_run
    schedules = (
        [DeploymentScheduleCreate(schedule=CronSchedule(cron=cron, timezone=timezone))] if cron else []
    )
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(work_pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=work_pool, type="process", base_job_template=template)
            )
        flow_id = client.create_flow_from_name(run_campaign.name)
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name=name,
            entrypoint=ENTRYPOINT,
            work_pool_name=work_pool,
            path=str(Path.cwd()),
            parameters=parameters,
            parameter_openapi_schema=run_campaign.parameters.model_dump_for_openapi(),
            enforce_parameter_schema=True,
            schedules=schedules,
            concurrency_limit=1,
            concurrency_options=ConcurrencyOptions(collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
            description=f"paretolab campaign {parameters['config_path']} in {parameters['campaign_dir']}",
            tags=["paretolab"],
        )
    return DeployedCampaign(deployment_id, name, work_pool, cron, parameters)
