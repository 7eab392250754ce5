"""Crash safety, proven: kill real campaign processes (SIGKILL) at many points, resume, check.

Each kill point is a named ``crash_point`` in the code (``PARETOLAB_KILL_AT=name:k`` kills
the process the k-th time it passes ``name``). A chain of processes runs one campaign:
each is killed at the next point, the next one resumes where it died, and a last one runs
to the end. After every kill the test snapshots the store, and at the end it checks:

- every measurement the oracle returned is in the store exactly once, with the value the
  oracle returned, and everything recorded before a kill is still there unchanged;
- no candidate was sent to the oracle after its result was recorded, and a lab request
  is never submitted twice (the test oracles count calls and submissions on disk);
- the final store equals an uninterrupted run with the same seed, and MLflow has each
  round exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from paretolab.data.store import CampaignStore
from paretolab.oracles.synthetic import BraninCurrinOracle
from tests.helpers.configs import write_config
from tests.helpers.crash import ForkRunner
from tests.helpers.oracles import CALL_LOG, RETURN_LOG, SUBMIT_LOG

pytestmark = pytest.mark.slow

SYNC_KILLS = [
    "store.meta_written:1",  # campaign.json written, nothing else
    "campaign.tracker_started:1",  # MLflow run created
    "round.start:1",  # round 0 flow run started
    "store.appended.batches:1",  # initial design recorded, not measured
    "store.appended.requests:1",  # request recorded, oracle not called
    "evaluate.before_oracle:1",  # the same, one step later
    "oracle.mid_call:1",  # inside the oracle call
    "evaluate.after_oracle:1",  # oracle answered, nothing recorded
    "store.mid_write:2",  # observations half written to a temporary file
    "store.before_rename:2",  # observations written, not renamed into place
    "store.part_renamed:3",  # a part in place, not yet in the integrity manifest
    "store.appended.observations:1",  # round 0 recorded, not closed
    "step.record:1",  # summary computed, not written
    "store.appended.rounds:1",  # round 0 closed, not published
    "publish.figure_logged:1",  # MLflow half published (in its background thread)
    "step.load_dataset:1",  # round 1
    "step.fit_proxy:1",
    "step.build_acquisition:1",
    "step.update_generator:1",  # generator trained, nothing stored
    "store.checkpoint_saved:1",  # checkpoint stored, training curves not
    "store.appended.training:1",
    "step.propose:1",  # pool sampled, not recorded
    "store.appended.proposals:1",  # between two generators' proposals
    "diffusion.trained:1",  # the diffusion generator trained, seeds and guidance not set
    "diffusion.guided:1",  # guided edits made, not returned
    "step.build_pool:1",
    "step.select:1",  # batch chosen, not recorded
]

LAB_KILLS = [
    "store.appended.requests:1",  # lab request recorded, not submitted
    "lab.mid_submit:1",  # parquet written, CSV not
    "lab.submitted:1",  # CSV written (submitted), not marked in the store
]


def _objectives(frame: pd.DataFrame) -> list[str]:
    return [c for c in ("branin", "currin") if c in frame]


def _tables(campaign: Path) -> dict[str, pd.DataFrame]:
    with CampaignStore.open(campaign, lock=False) as store:
        return {t: store.read(t) for t in ("proposals", "batches", "observations", "requests", "rounds")}


def _science(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """What must not depend on crashes: choices, measurements and round results."""
    observations = tables["observations"]
    return {
        "batches": tables["batches"]
        .drop(columns="metrics")
        .sort_values(["round", "position"])
        .reset_index(drop=True),
        "observations": observations[["round", "candidate", "valid", *_objectives(observations)]]
        .sort_values(["round", "candidate"])
        .reset_index(drop=True),
        "proposals": tables["proposals"],
        "rounds": tables["rounds"][["round", "hypervolume", "n_pareto", "n_observations"]],
    }


def _assert_same_science(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame]) -> None:
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], obj=name)


@pytest.fixture(scope="module")
def runner(prefect_api) -> ForkRunner:
    # the fork server inherits this environment; the children talk to the session's server
    os.environ["PREFECT_API_URL"] = prefect_api
    return ForkRunner()


class Campaign:
    """One campaign directory run by a chain of processes, with on-disk call logs."""

    def __init__(self, runner: ForkRunner, config: Path, root: Path) -> None:
        self.runner, self.config, self.root = runner, config, root
        self.dir = root / "campaign"
        self.calls, self.returns, self.submits = (
            root / "calls.txt",
            root / "returns.txt",
            root / "submits.txt",
        )
        self.log = root / "log.txt"
        self.processes = 0

    def env(self, kill_at: str | None) -> dict[str, str | None]:
        return {
            "PARETOLAB_KILL_AT": kill_at,
            "MLFLOW_TRACKING_URI": None,
            CALL_LOG: str(self.calls),
            RETURN_LOG: str(self.returns),
            SUBMIT_LOG: str(self.submits),
        }

    def paretolab(self, *args: str, kill_at: str | None = None) -> int:
        self.processes += 1
        with self.log.open("a") as fh:
            fh.write(f"\n=== paretolab {' '.join(args)}  kill_at={kill_at}\n")
        return self.runner.run(list(args), self.env(kill_at), self.log, self.root)

    def run(self, kill_at: str | None = None) -> int:
        return self.paretolab("run", str(self.config), "--dir", str(self.dir), kill_at=kill_at)

    def lines(self, path: Path) -> list[str]:
        return path.read_text().split("\n")[:-1] if path.exists() else []


def _check_chain(campaign: Campaign, kills: list[str]) -> list[dict]:
    """Kill the campaign at each point in turn; after each kill snapshot what was recorded
    and how many oracle calls were made by then."""
    snapshots = []
    for kill_at in kills:
        code = campaign.run(kill_at)
        assert code == -signal.SIGKILL, f"{kill_at} was never reached (exit {code}); see {campaign.log}"
        tables = _tables(campaign.dir) if CampaignStore.exists(campaign.dir) else None
        snapshots.append(
            {"kill_at": kill_at, "tables": tables, "n_calls": len(campaign.lines(campaign.calls))}
        )
    return snapshots


def _check_invariants(campaign: Campaign, snapshots: list[dict], final: dict[str, pd.DataFrame]) -> int:
    """The checks after the chain; returns how many recorded rows were compared."""
    observations = final["observations"]
    assert observations["candidate"].is_unique, "a candidate was recorded twice"
    checked = 0
    for snap in snapshots:
        if snap["tables"] is None:
            continue
        before = snap["tables"]["observations"]
        kept = before.merge(observations, how="left", indicator=True)
        assert (kept["_merge"] == "both").all(), f"rows recorded before {snap['kill_at']} changed or vanished"
        checked += len(before)
        # nothing measured by then was asked again afterwards
        later = campaign.lines(campaign.calls)[snap["n_calls"] :]
        again = set(later) & set(before["candidate"])
        assert not again, f"re-sent after {snap['kill_at']}: {sorted(again)}"
    # every value the oracle returned is recorded exactly once, as returned
    values = observations.set_index("candidate")
    for line in campaign.lines(campaign.returns):
        candidate, *returned = line.split()
        assert candidate in values.index, f"returned but never recorded: {candidate}"
        recorded = values.loc[candidate, ["branin", "currin"]].to_numpy(dtype=float)
        assert recorded.tolist() == pytest.approx([float(v) for v in returned], rel=1e-12)
        checked += 1
    return checked


def _mlflow_rounds(campaign_dir: Path) -> list[int]:
    with CampaignStore.open(campaign_dir, lock=False) as store:
        meta = store.meta
    history = MlflowClient(meta["mlflow_tracking_uri"]).get_metric_history(
        meta["mlflow_run_id"], "hypervolume"
    )
    return sorted(m.step for m in history)


def test_sync_campaign_survives_kills_at_every_step(runner, tmp_path):
    overrides = {
        "oracle": {"target": "tests.helpers.oracles:CountingOracle"},
        "initial_design": 5,
        "rounds": 2,
        "batch_size": 3,
        "generators": [
            {
                "kind": "mogfn",
                "pool_size": 32,
                "steps_per_round": 3,
                "trajectories_per_step": 8,
                "policy": "mlp",
                "hidden": 16,
            },
            {"kind": "genetic", "pool_size": 32},
            {
                "kind": "diffusion",
                "pool_size": 32,
                "steps_per_round": 4,
                "warm_start_steps": 4,
                "hidden": 16,
                "heads": 2,
                "ensemble": 2,
                "guidance_steps": 3,
            },
        ],
    }
    baseline = Campaign(runner, write_config(tmp_path / "config.yaml", **overrides), tmp_path / "baseline")
    baseline.root.mkdir()
    assert baseline.run() == 0, baseline.log.read_text()[-3000:]
    want = _science(_tables(baseline.dir))

    chain = Campaign(runner, baseline.config, tmp_path / "chain")
    chain.root.mkdir()
    snapshots = _check_chain(chain, SYNC_KILLS)
    assert chain.run() == 0, chain.log.read_text()[-3000:]
    final = _tables(chain.dir)
    checked = _check_invariants(chain, snapshots, final)
    _assert_same_science(_science(final), want)
    assert _mlflow_rounds(chain.dir) == [0, 1, 2]

    asked = Counter(chain.lines(chain.calls))
    assert set(asked) == set(final["observations"]["candidate"])
    # only a call cut off before it answered is asked again: round 0's batch twice (the
    # kill inside the call); a kill after it answered (after_oracle, mid_write,
    # before_rename) finds the answers in their receipts. The others once
    assert max(asked.values()) == 2 and min(asked.values()) == 1
    distinct = {k.split(":")[0] for k in SYNC_KILLS}
    assert len(distinct) >= 20
    print(
        f"sync: {len(SYNC_KILLS)} kills at {len(distinct)} distinct points, {chain.processes} processes, "
        f"{checked} rows checked"
    )


def _scientist(campaign: Campaign, out: Path | None = None, space_dims: int = 2, levels: int = 16) -> None:
    """Answer every open request file with Branin-Currin values, as a results CSV in the
    inbox (or in ``out``)."""
    from paretolab.data.spaces import GridSpace

    oracle = BraninCurrinOracle(GridSpace(space_dims, levels))
    requests = campaign.dir / "lab" / "requests"
    inbox = campaign.dir / "lab" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    for path in sorted(requests.glob("*.csv")):
        answered = inbox / "processed" / path.name
        if answered.exists() or (inbox / path.name).exists():
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        values = oracle(frame["candidate"].tolist()).values
        frame["branin [mm]"] = [repr(float(v)) for v in values[:, 0]]
        frame["currin [s]"] = [repr(float(v)) for v in values[:, 1]]
        (out or inbox).mkdir(parents=True, exist_ok=True)
        frame.to_csv((out or inbox) / path.name, index=False)


def test_lab_campaign_survives_kills_and_never_submits_twice(runner, tmp_path):
    overrides = {
        "oracle": {
            "target": "tests.helpers.oracles:CountingLab",
            "params": {
                "objectives": [
                    {"name": "branin", "direction": "min", "unit": "mm"},
                    {"name": "currin", "direction": "min", "unit": "s"},
                ]
            },
        },
        "ref_point": [18.0, 6.0],
        "initial_design": 4,
        "rounds": 1,
        "batch_size": 3,
    }
    config = write_config(tmp_path / "config.yaml", **overrides)

    def finish(campaign: Campaign) -> None:
        for _ in range(4):
            assert campaign.run() == 0, campaign.log.read_text()[-3000:]
            _scientist(campaign)
            if len(_tables(campaign.dir)["rounds"]) == 2:
                return
        raise AssertionError("the lab campaign did not finish")

    baseline = Campaign(runner, config, tmp_path / "baseline")
    baseline.root.mkdir()
    finish(baseline)
    want = _science(_tables(baseline.dir))

    chain = Campaign(runner, config, tmp_path / "chain")
    chain.root.mkdir()
    kills = [
        *LAB_KILLS,  # round 0's request
        "lab.results_validated:1",  # a results file from the inbox validated, not recorded
        "lab.inbox_recorded:1",  # recorded, file not yet moved to processed/
        *LAB_KILLS,  # round 1's request
    ]
    snapshots = []
    for i, kill_at in enumerate(kills):
        code = chain.run(kill_at)
        assert code == -signal.SIGKILL, f"{kill_at} was never reached (exit {code}); see {chain.log}"
        snapshots.append({"kill_at": kill_at, "tables": _tables(chain.dir), "n_calls": 0})
        if kill_at.startswith("lab.submitted"):
            assert chain.run() == 0  # now waiting for the lab
            if i < len(kills) - 1:
                _scientist(chain)
    # round 1's results by `paretolab submit`, killed after recording them and before
    # logging the file: submitting the file again records nothing twice
    _scientist(chain, out=tmp_path / "late")
    (late,) = (tmp_path / "late").glob("*.csv")
    killed = chain.paretolab("submit", str(chain.dir), str(late), kill_at="store.appended.observations:1")
    assert killed == -signal.SIGKILL
    recorded = _tables(chain.dir)["observations"]
    assert chain.paretolab("submit", str(chain.dir), str(late)) == 0
    assert "already recorded earlier" in chain.log.read_text()
    pd.testing.assert_frame_equal(_tables(chain.dir)["observations"], recorded)
    finish(chain)
    final = _tables(chain.dir)
    checked = _check_invariants(chain, snapshots, final)
    got = _science(final)
    _assert_same_science(got, want)

    submits = Counter(chain.lines(chain.submits))
    assert submits == Counter({"round0-lab": 1, "round1-lab": 1}), submits
    requests = final["requests"]
    assert requests.groupby("round")["request_id"].nunique().tolist() == [1, 1]
    print(f"lab: {len(kills) + 1} kills, {chain.processes} processes, {checked} rows checked")


def _files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_second_runner_refused_and_damaged_store_left_alone(runner, tmp_path):
    """A campaign held by another process is refused with a clear message, also after its
    lock note is deleted; a damaged store (a truncated file, its newest parts deleted, a
    bit flipped, campaign.json edited) stops `run` and `status` with an error naming the
    damage and is left byte-identical."""
    campaign = Campaign(runner, write_config(tmp_path / "config.yaml", rounds=1), tmp_path)
    assert campaign.run() == 0
    assert not (campaign.dir / "campaign.lock").exists()  # no stale-looking lock after a run
    with CampaignStore.open(campaign.dir):  # this test process is the other runner
        (campaign.dir / "campaign.lock").unlink()  # a user tidying up
        assert campaign.run() != 0
    assert "is in use by another process" in campaign.log.read_text()

    def newest_parts_deleted(root: Path) -> str:
        parts = sorted((root / "tables").glob("*/*.parquet"))
        for part in sorted(parts, key=lambda p: p.name)[-2:]:
            part.unlink()
        return "missing: manifest.jsonl records it"

    def bit_flipped(root: Path) -> str:
        part = sorted((root / "tables" / "observations").glob("*.parquet"))[-1]
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0x10
        part.write_bytes(bytes(data))
        return f"{part.name}: corrupted or truncated store file"

    def truncated(root: Path) -> str:
        part = sorted((root / "tables" / "observations").glob("*.parquet"))[-1]
        part.write_bytes(part.read_bytes()[:-50])
        return f"{part.name}: corrupted or truncated store file"

    def meta_edited(root: Path) -> str:
        meta = json.loads((root / "campaign.json").read_text())
        meta["objectives"][0][1] = "min" if meta["objectives"][0][1] == "max" else "max"
        (root / "campaign.json").write_text(json.dumps(meta, indent=2))
        return "campaign.json: edited by hand (changed: objectives)"

    for damage in (newest_parts_deleted, bit_flipped, truncated, meta_edited):
        copy = tmp_path / damage.__name__
        shutil.copytree(campaign.dir, copy)
        expected = damage(copy)
        before = _files(copy)
        for command in (["run", str(campaign.config), "--dir", str(copy)], ["status", str(copy)]):
            start = len(campaign.log.read_text())
            assert campaign.paretolab(*command) != 0, (damage.__name__, command)
            said = campaign.log.read_text()[start:]
            assert expected in said, (damage.__name__, command, said)
            assert "Traceback" not in said
        assert _files(copy) == before, f"{damage.__name__}: the damaged store was changed"


def test_a_killed_run_leaves_no_prefect_server_and_the_next_run_is_not_disturbed(tmp_path):
    """Without PREFECT_API_URL a run starts Prefect's temporary server; SIGKILL of the run
    must take the server with it (found by pid, through its PREFECT_HOME), and the next
    run on the same PREFECT_HOME completes."""
    config = write_config(tmp_path / "config.yaml", rounds=1)
    home = str(tmp_path / "prefect_home")
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PARETOLAB_KILL_AT")}
    env.update(PREFECT_HOME=home, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    paretolab = str(Path(sys.executable).with_name("paretolab"))
    command = [paretolab, "run", str(config), "--dir", str(tmp_path / "c")]

    def servers() -> list[int]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if b"uvicorn" in (proc / "cmdline").read_bytes() and (
                    f"PREFECT_HOME={home}".encode() in (proc / "environ").read_bytes().split(b"\0")
                ):
                    found.append(int(proc.name))
            except (OSError, ValueError):
                continue
        return found

    def wait_for(condition, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.2)
        return condition()

    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        assert wait_for(lambda: bool(servers()), 120), "the run never started a temporary server"
        started = servers()
        run.kill()
        run.wait()
    finally:
        run.kill()
    assert wait_for(lambda: not servers(), 15), f"servers {started} outlived their killed run"
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert servers() == []
    assert len(_tables(tmp_path / "c")["rounds"]) == 2
