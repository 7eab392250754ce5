"""Plots and tables from the quality suite's records (``benchmarks/suite.py``).

    .venv/bin/python benchmarks/report.py benchmarks/results/quality.jsonl

For each task: a PNG of hypervolume against oracle calls (mean ± standard error over seeds,
every method), written beside the records as ``<task>.png``, and a Markdown table (final
hypervolume, oracle calls, seconds per round, peak memory); then a headline table of the
final hypervolume of each method on each task. Printed to stdout, and written to
``<records>.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

PEERS = ("BoTorch qLogNEHVI, mutation pool", "pymoo NSGA-II")


def load(path: Path) -> dict[str, dict[str, list[dict]]]:
    """task -> method -> records (the last record of a task, method and seed wins)."""
    latest: dict[tuple[str, str, int], dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            latest[(record["task"], record["method"], record["seed"])] = record
    runs: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for (task, method, _), record in sorted(latest.items()):
        runs[task][method].append(record)
    return runs


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.mean(values)
    return mean, (statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0)


def curve(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Oracle calls, mean and standard error of the hypervolume over seeds, per round."""
    length = min(len(r["history"]) for r in records)
    calls = np.array([np.mean([r["history"][i][0] for r in records]) for i in range(length)])
    values = np.array([[r["history"][i][1] for i in range(length)] for r in records])
    se = values.std(0, ddof=1) / np.sqrt(len(records)) if len(records) > 1 else np.zeros(length)
    return calls, values.mean(0), se


def plot(task: str, methods: dict[str, list[dict]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for method, records in sorted(methods.items()):
        calls, mean, se = curve(records)
        style = "--" if method in PEERS else "-"
        axis.plot(calls, mean, style, marker="o", markersize=3, label=f"{method} ({len(records)})")
        axis.fill_between(calls, mean - se, mean + se, alpha=0.15)
    axis.set_xlabel("oracle calls")
    axis.set_ylabel("hypervolume")
    axis.set_title(f"{task}: mean ± standard error over seeds")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def calls_to(records: list[dict], target: float) -> str:
    """Mean oracle calls until the hypervolume first reached ``target`` (seeds that never
    did are counted as not reaching it)."""
    calls = [next((c for c, hv in r["history"] if hv >= target), None) for r in records]
    reached = [c for c in calls if c is not None]
    if not reached:
        return "not reached"
    mean = f"{statistics.mean(reached):.0f}"
    return mean if len(reached) == len(calls) else f"{mean} ({len(reached)} of {len(calls)} seeds)"


def table(methods: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| method | seeds | final hypervolume | at half the rounds | calls to 99 % of the best "
        "| oracle calls | s / round | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    best = max(r["hypervolume"] for records in methods.values() for r in records)
    ranked = sorted(methods.items(), key=lambda item: -_mean_se([r["hypervolume"] for r in item[1]])[0])
    for method, records in ranked:
        hv = _mean_se([r["hypervolume"] for r in records])
        half = _mean_se([r["history"][(len(r["history"]) - 1) // 2][1] for r in records])
        calls = statistics.mean(r["history"][-1][0] for r in records)
        seconds = statistics.mean(statistics.mean(r["round_s"]) if r["round_s"] else 0.0 for r in records)
        memory = max(r.get("peak_rss_mib", float("nan")) for r in records)
        cells = [method, str(len(records)), f"{hv[0]:.4g} ± {hv[1]:.2g}", f"{half[0]:.4g} ± {half[1]:.2g}"]
        cells += [calls_to(records, 0.99 * best), f"{calls:.0f}", f"{seconds:.1f}"]
        lines.append("| " + " | ".join([*cells, f"{memory:.0f}"]) + " |")
    return lines


def headline(runs: dict[str, dict[str, list[dict]]]) -> list[str]:
    methods = sorted({m for task in runs.values() for m in task}, key=lambda m: (m in PEERS, m))
    lines = ["| task | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for task, by_method in sorted(runs.items()):
        cells = []
        for method in methods:
            records = by_method.get(method)
            if not records:
                cells.append("—")
                continue
            mean, se = _mean_se([r["hypervolume"] for r in records])
            cells.append(f"{mean:.4g} ± {se:.2g}")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("records", type=Path)
    args = parser.parse_args()
    runs = load(args.records)
    out: list[str] = ["## Final hypervolume (mean ± standard error over seeds)", "", *headline(runs), ""]
    for task, methods in sorted(runs.items()):
        png = args.records.parent / f"{task}.png"
        plot(task, methods, png)
        out += [f"### {task}", "", f"![{task}]({png.name})", "", *table(methods), ""]
    text = "\n".join(out)
    args.records.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
