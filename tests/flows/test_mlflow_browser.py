"""A campaign logged to a real MLflow server on 127.0.0.1, looked at in a real browser
(Debian's chromium, headless, driven by Playwright): the run page opens in the runs view,
the hypervolume chart renders, and the round's interactive Pareto page renders inside the
MLflow UI with a hover label that names a candidate. Screenshots are kept in
``test-output/mlflow-browser/`` (or ``$PARETOLAB_TEST_OUTPUT``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from paretolab.data.store import CampaignStore
from paretolab.flows.mlflow_ui import MODEL_TRAINING_VIEW
from tests.conftest import ROOT
from tests.helpers.configs import write_config
from tests.helpers.network import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(os.environ.get("PARETOLAB_TEST_OUTPUT", ROOT / "test-output")) / "mlflow-browser"


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """An MLflow server on 127.0.0.1 and a 2-round campaign logged to it by `paretolab run`:
    yields (server URL, experiment id, run id, campaign directory)."""
    tmp = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = (tmp / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp / 'mlflow.db'}",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the MLflow server did not start in 120 s"
            time.sleep(0.5)
        config = write_config(tmp / "browser.yaml", name="browser_check", rounds=2)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARETOLAB_KILL")}
        env["MLFLOW_TRACKING_URI"] = url
        env["PREFECT_HOME"] = str(tmp / "prefect_home")
        campaign = tmp / "campaign"
        done = subprocess.run(
            [str(BIN / "paretolab"), "run", str(config), "--dir", str(campaign)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        with CampaignStore.open(campaign, lock=False) as store:
            run_id = store.meta["mlflow_run_id"]
        experiment = MlflowClient(url).get_run(run_id).info.experiment_id
        yield url, experiment, run_id, campaign
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_the_run_page_shows_the_hypervolume_chart(logged_run, browser):
    url, experiment, run_id, _ = logged_run
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/#/experiments/{experiment}/runs/{run_id}/model-metrics?{MODEL_TRAINING_VIEW}")
    page.get_by_placeholder("Search metric charts").fill("hypervolume")
    title = page.get_by_text("hypervolume", exact=True).first
    title.wait_for(timeout=90_000)
    # the chart's plot (plotly draws it in an svg) is drawn under its title
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
    assert "GenAI" not in page.url
    page.screenshot(path=str(OUTPUT / "hypervolume_chart.png"))
    page.close()


def test_the_interactive_pareto_page_renders_and_a_hover_names_a_candidate(logged_run, browser):
    url, experiment, run_id, campaign = logged_run
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/#/experiments/{experiment}/runs/{run_id}/artifacts?{MODEL_TRAINING_VIEW}")
    page.get_by_text("pareto", exact=True).first.click(timeout=90_000)
    page.get_by_text("round_0002.html", exact=True).click(timeout=30_000)
    # MLflow shows an HTML artifact in an iframe; the plot is plotly's, drawn offline
    deadline = time.monotonic() + 60
    frame = None
    while frame is None and time.monotonic() < deadline:
        frame = next(
            (f for f in page.frames if f != page.main_frame and f.query_selector(".js-plotly-plot")), None
        )
        page.wait_for_timeout(500)
    assert frame is not None, "the interactive Pareto page did not render in the MLflow UI"
    with CampaignStore.open(campaign, lock=False) as store:
        measured = set(store.read("observations")["candidate"])
    points = frame.locator(".scatterlayer .trace .points path")
    assert points.count() > 0
    hovered = ""
    for k in range(min(points.count(), 20)):
        points.nth(k).hover(force=True)
        label = frame.locator(".hoverlayer .hovertext")
        try:
            label.first.wait_for(timeout=3_000)
        except Exception:  # this one is hidden under another marker: try the next
            continue
        hovered = label.first.text_content() or ""
        if "proposed by" in hovered:
            break
    page.screenshot(path=str(OUTPUT / "pareto_round_2_hover.png"))
    page.close()
    assert "proposed by" in hovered, hovered
    assert any(candidate in hovered for candidate in measured), hovered
