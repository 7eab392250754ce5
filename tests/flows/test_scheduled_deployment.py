"""A campaign deployed with `paretolab deploy` on a real Prefect server started by the test
on 127.0.0.1, run by a real process worker: each triggered run closes exactly
``rounds_per_run`` rounds, the cron schedule is registered, runs are named after the
campaign and round, and an overlapping run ends Cancelled with a message, never Failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from paretolab.data.store import CampaignStore
from tests.conftest import ROOT
from tests.helpers.configs import write_config
from tests.helpers.network import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _rounds(campaign: Path) -> list[int]:
    with CampaignStore.open(campaign, lock=False) as store:
        return store.read("rounds")["round"].tolist()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Prefect server on 127.0.0.1 with its own PREFECT_HOME; yields the environment
    that points at it."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PARETOLAB_KILL"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect_home"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
    )
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.5)
    try:
        yield env
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_scheduled_deployment_advances_rounds_per_run_and_overlaps_are_cancelled(server, tmp_path):
    env = server
    config = write_config(tmp_path / "nightly.yaml", name="nightly", rounds=5)
    campaign = tmp_path / "campaign"
    options = ["--cron", "0 2 * * *", "--pool", "pl-test", "--rounds-per-run", "1", "--dir", str(campaign)]
    deployed = subprocess.run(
        [str(BIN / "paretolab"), "deploy", str(config), *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert (
        "deployed paretolab-campaign/nightly: 1 round(s) per run, on schedule 0 2 * * * (UTC)"
        in deployed.stdout
    )

    os.environ["PREFECT_API_URL"] = env["PREFECT_API_URL"]  # this process's client
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "pl-test"],
        env=env,
        stdout=(tmp_path / "worker.log").open("w"),
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
            with get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name("paretolab-campaign/nightly")
                assert [s.schedule.cron for s in deployment.schedules] == ["0 2 * * *"]
                assert deployment.global_concurrency_limit.limit == 1
                assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"

                def trigger() -> object:
                    return client.create_flow_run_from_deployment(deployment.id)

                def final(run_ids: list, timeout: float = 300) -> list:
                    deadline = time.monotonic() + timeout
                    while True:
                        runs = [client.read_flow_run(i) for i in run_ids]
                        if all(r.state and r.state.is_final() for r in runs):
                            return runs
                        assert time.monotonic() < deadline, [(r.name, r.state) for r in runs]
                        time.sleep(1)

                # two runs at once: one closes round 0, the other is cancelled by the limit
                first = final([trigger().id, trigger().id])
                assert sorted(r.state.type.value for r in first) == ["CANCELLED", "COMPLETED"], [
                    (r.state.name, r.state.message) for r in first
                ]
                assert _rounds(campaign) == [0]
                done = next(r for r in first if r.state.is_completed())
                assert done.name == "nightly-from-round-0"

                # the next run closes exactly one more round
                (second,) = final([trigger().id])
                assert second.state.is_completed() and second.name == "nightly-from-round-1"
                assert _rounds(campaign) == [0, 1]

                # a run that finds the campaign held by another process is skipped, not failed
                with CampaignStore.open(campaign):
                    (skipped,) = final([trigger().id])
                assert skipped.state.is_cancelled(), skipped.state
                assert "is in use by another process" in skipped.state.message
                assert _rounds(campaign) == [0, 1]
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        worker.send_signal(signal.SIGINT)  # workers stop before the server
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


def test_prefect_yaml_deploys_every_shipped_campaign_with_its_schedule_and_limit(server, tmp_path):
    env = {**server, "PARETOLAB_HOME": str(ROOT)}
    for command in (
        ["work-pool", "create", "paretolab", "--type", "process"],
        ["--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(
            [str(BIN / "prefect"), *command], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
        )
        assert done.returncode == 0, done.stdout + done.stderr
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            deployments = {d.name: d for d in client.read_deployments()}
    shipped = {p.stem.replace("_", "-") for p in (ROOT / "campaigns").glob("*.yaml")}
    assert shipped <= set(deployments)
    for name in shipped:
        deployment = deployments[name]
        assert deployment.entrypoint == "paretolab.flows.campaign.run_campaign"
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy.value == "CANCEL_NEW"
        assert deployment.parameter_openapi_schema["properties"]["rounds_per_run"]
    assert [s.schedule.cron for s in deployments["lab-example"].schedules] == ["0 2 * * *"]
