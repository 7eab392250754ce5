"""Where a round's time goes: science (proxy, generation, selection, oracle) vs
orchestration and tracking (Prefect, MLflow, the store).

Runs a campaign config (default: the demo) in a temporary directory through the real
``run_campaign`` flow and, for every round after the initial design, compares the wall
time of the round (Prefect subflow, all tasks, store writes, MLflow publishing) with the
time spent inside the science steps, as timed by the steps themselves.

    python benchmarks/round_overhead.py [campaigns/branin_currin.yaml]

Target (issue 2): orchestration + tracking under 10% of round time.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paretolab.flows.runtime import configure_environment  # noqa: E402

configure_environment()

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from paretolab.data.store import CampaignStore  # noqa: E402
from paretolab.flows.campaign import PROGRESS_LOGGER, run_campaign  # noqa: E402
from paretolab.flows.round import SCIENCE_STEPS  # noqa: E402


class _RoundTimes(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[int, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "paretolab", {})
        if event.get("event") == "round":
            self.seconds[event["round"]] = event["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "campaigns" / "branin_currin.yaml"))
    args = parser.parse_args()
    times = _RoundTimes()
    progress = logging.getLogger(PROGRESS_LOGGER)
    progress.addHandler(times)
    progress.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_campaign(args.config, str(Path(tmp) / "campaign"))
        with CampaignStore.open(Path(tmp) / "campaign", lock=False) as store:
            rounds = store.read("rounds")
    table = Table(title="round time: science vs orchestration + tracking")
    for column in ("round", "wall s", *SCIENCE_STEPS, "science s", "overhead s", "overhead %"):
        table.add_column(column, justify="right")
    shares, walls, sciences = [], [], []
    for row in rounds.itertuples():
        if row.round == 0 or row.round not in times.seconds:
            continue
        metrics = json.loads(row.metrics)
        wall = times.seconds[row.round]
        science = metrics["time/science"]
        overhead = wall - science
        shares.append(overhead / wall)
        walls.append(wall)
        sciences.append(science)
        steps = [f"{metrics.get(f'time/{s}', 0.0):.3f}" for s in SCIENCE_STEPS]
        table.add_row(
            str(row.round),
            f"{wall:.2f}",
            *steps,
            f"{science:.2f}",
            f"{overhead:.2f}",
            f"{100 * overhead / wall:.1f}",
        )
    console = Console()
    console.print(table)
    total_share = 1 - sum(sciences) / sum(walls)
    console.print(
        f"orchestration + tracking: {100 * total_share:.1f}% of round time over {len(walls)} rounds "
        f"(median per round {100 * statistics.median(shares):.1f}%, "
        f"mean overhead {(sum(walls) - sum(sciences)) / len(walls):.2f} s/round); target < 10%"
    )
    background = result["mlflow_background_seconds"] / len(rounds)
    console.print(
        f"MLflow logging on the tracker's background thread (overlapping the next round, "
        f"not in the overhead above): {background:.2f} s/round"
    )


if __name__ == "__main__":
    main()
