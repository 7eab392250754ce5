from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

from tests.conftest import ROOT


def test_every_deployment_points_at_a_flow_with_valid_parameters(monkeypatch):
    monkeypatch.chdir(ROOT)
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert spec["deployments"]
    for deployment in spec["deployments"]:
        # a module path of the installed package, not a file of a checkout
        assert deployment["entrypoint"].startswith("paretolab.") and ".py" not in deployment["entrypoint"]
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == "paretolab-campaign"
        flow.validate_parameters(deployment.get("parameters", {}))
        assert (ROOT / deployment["parameters"]["config_path"]).is_file()
        # one run per campaign at a time: an overlap is cancelled, never failed
        assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
        assert deployment["parameters"]["rounds_per_run"] >= 1
    shipped = {p.stem for p in (ROOT / "campaigns").glob("*.yaml")}
    assert {Path(d["parameters"]["config_path"]).stem for d in spec["deployments"]} == shipped
    (lab,) = [d for d in spec["deployments"] if d["name"] == "lab-example"]
    assert lab["schedules"] == [{"cron": "0 2 * * *", "timezone": "UTC"}]
