"""MLflow tracking of a campaign: the only module that imports mlflow.

One MLflow run per campaign (its id is kept in the campaign store, so a resumed campaign
logs into the same run). ``publish`` logs every round that the store has recorded and
MLflow has not, which makes it idempotent and self-healing after a crash.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from paretolab.data.dataset import pareto_rows
from paretolab.data.faults import crash_point
from paretolab.data.spaces import MoleculeSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.commands import command
from paretolab.flows.plots import molecule_grid, pareto_figure

__all__ = ["CampaignTracker", "check_tracking_uri", "default_tracking_uri", "flatten", "training_curves"]

logger = logging.getLogger(__name__)

_MAX_PARAM_LENGTH = 6000


def default_tracking_uri(campaign_dir: Path, configured: str | None) -> str:
    """``MLFLOW_TRACKING_URI``, else the config's, else a SQLite store beside the campaign."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if configured:
        return configured
    return f"sqlite:///{Path(campaign_dir).resolve().parent / 'mlflow.db'}"


def check_tracking_uri(campaign_dir: Path, configured: str | None) -> None:
    """Refuse, before anything is written, a tracking URI that MLflow has no store for
    (a ValueError naming where the URI came from)."""
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    uri = default_tracking_uri(campaign_dir, configured)
    try:
        _tracking_store_registry.get_store_builder(uri)
    except Exception:  # MLflow's UnsupportedModelRegistryStoreURIException, or a parse error
        source = "MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "tracking.tracking_uri"
        schemes = ", ".join(sorted(s for s in _tracking_store_registry._registry if s))
        raise ValueError(
            f"{source}: MLflow cannot store runs at {uri!r} (known schemes: {schemes})"
        ) from None


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"a.b.c": "value"}`` for MLflow params."""
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, value in enumerate(data):
            out |= flatten(value, f"{prefix}{i}.")
        return out
    return {prefix.rstrip("."): json.dumps(data) if not isinstance(data, str) else data}


def training_curves(training: pd.DataFrame) -> pd.DataFrame:
    """Generator training curves with MLflow keys and steps counted across rounds.

    A round whose update ran twice (a resumed crash) keeps its last curve.
    """
    columns = ["round", "key", "global_step", "value"]
    if training.empty:
        return pd.DataFrame(columns=columns)
    frame = training.drop_duplicates(["round", "generator", "metric", "step"], keep="last")
    frame = frame.sort_values(["generator", "metric", "round", "step"]).reset_index(drop=True)
    frame["key"] = "generator/" + frame["generator"] + "/train/" + frame["metric"]
    frame["global_step"] = frame.groupby("key").cumcount()
    return frame[columns]


class CampaignTracker:
    """Logs a campaign's config, per-round metrics, Pareto plots and tables to MLflow."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_root = Path(artifact_root).resolve()
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id: str | None = None
        self._experiment_id: str | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paretolab-mlflow")
        self._pending: list[Future[None]] = []
        self._published: set[int] | None = None
        self.background_seconds = 0.0
        """Time the background thread spent logging rounds (overlaps the next round)."""

    def start(self, store: CampaignStore, config: dict[str, Any], name: str) -> str:
        """Open the campaign's run (the stored one if it still exists) and mark it running."""
        run_id = store.meta.get("mlflow_run_id")
        if run_id:
            try:
                run = self.client.get_run(run_id)
                self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                if "paretolab.error" in run.data.tags:
                    self.client.delete_tag(run_id, "paretolab.error")
                self.run_id = run_id
                return run_id
            except MlflowException:
                logger.warning("MLflow run %s not found at %s; starting a new one", run_id, self.tracking_uri)
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment:
            experiment_id = experiment.experiment_id
        elif self.tracking_uri.startswith(("sqlite:", "file:")) or "://" not in self.tracking_uri:
            # a local store: keep artifacts beside it, not wherever the process was started
            location = self.artifact_root.as_uri()
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=location)
        else:  # a tracking server decides where artifacts go
            experiment_id = self.client.create_experiment(self.experiment)
        run = self.client.create_run(
            experiment_id,
            run_name=name,
            tags={
                "paretolab.campaign_dir": str(store.root.resolve()),
                "paretolab.config_hash": str(store.meta.get("config_hash")),
            },
        )
        self.run_id = run.info.run_id
        store.update_meta(mlflow_run_id=self.run_id, mlflow_tracking_uri=self.tracking_uri)
        params = [Param(k, v[:_MAX_PARAM_LENGTH]) for k, v in flatten(config).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return self.run_id

    def publish(self, store: CampaignStore, setup: Any) -> None:
        """Queue the logging of every recorded round that MLflow lacks.

        The store is read now; the MLflow writes and plots run on the tracker's one
        background thread, off the critical path of the next round. :meth:`wait`
        surfaces their errors.
        """
        assert self.run_id, "start() first"
        job = self._executor.submit(
            self._publish_rounds,
            store.read("rounds"),
            store.read("observations"),
            store.read("training"),
            tuple(setup.objectives),
            setup.config.name,
            isinstance(setup.space, MoleculeSpace),
        )
        self._pending.append(job)

    def wait(self) -> None:
        """Block until queued publishing is done; re-raise its first error."""
        pending, self._pending = self._pending, []
        for job in pending:
            job.result()

    def _publish_rounds(
        self,
        rounds: pd.DataFrame,
        observations: pd.DataFrame,
        training: pd.DataFrame,
        objectives: tuple,
        name: str,
        molecules: bool,
    ) -> None:
        start = time.perf_counter()
        try:
            self._log_rounds(rounds, observations, training_curves(training), objectives, name, molecules)
        finally:
            self.background_seconds += time.perf_counter() - start

    def _log_rounds(
        self,
        rounds: pd.DataFrame,
        observations: pd.DataFrame,
        curves: pd.DataFrame,
        objectives: tuple,
        name: str,
        molecules: bool,
    ) -> None:
        if self._published is None:
            history = self.client.get_metric_history(self.run_id, "hypervolume")
            self._published = {m.step for m in history}
        for row in rounds.itertuples():
            if row.round in self._published:
                continue
            values = {
                "hypervolume": row.hypervolume,
                "n_pareto": row.n_pareto,
                "n_observations": row.n_observations,
                "oracle_calls": row.oracle_calls,
                **json.loads(row.metrics),
            }
            timestamp = int(1000 * datetime.fromisoformat(row.completed_at).timestamp())
            metrics = [Metric(k, float(v), timestamp, int(row.round)) for k, v in values.items() if v == v]
            metrics += [
                Metric(c.key, float(c.value), timestamp, int(c.global_step))
                for c in curves[curves["round"] == row.round].itertuples()
                if c.value == c.value
            ]
            # hypervolume last: its presence marks the round as published
            metrics.sort(key=lambda m: m.key == "hypervolume")
            seen = observations[observations["round"] <= row.round]
            fig = pareto_figure(seen, objectives, f"{name}: round {row.round}")
            self.client.log_figure(self.run_id, fig, f"pareto/round_{row.round:04d}.png")
            crash_point("publish.figure_logged")  # the round's metrics not yet logged
            front = pareto_rows(seen, objectives)
            self.client.log_table(self.run_id, front, f"pareto/front_round_{row.round:04d}.json")
            if molecules and len(front):
                grid = molecule_grid(front, objectives)
                self.client.log_image(self.run_id, grid, f"pareto/molecules_round_{row.round:04d}.png")
            for i in range(0, len(metrics), 200):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + 200])
            self._published.add(int(row.round))

    def finish(self, store: CampaignStore, setup: Any, pareto: Any) -> None:
        """Final artifacts: Pareto plot, observation and Pareto tables; mark the run finished."""
        assert self.run_id, "start() first"
        self.publish(store, setup)
        self.wait()
        observations = store.read("observations")
        fig = pareto_figure(observations, setup.objectives, f"{setup.config.name}: final")
        self.client.log_figure(self.run_id, fig, "pareto/final.png")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "observations.parquet"
            observations.to_parquet(path, index=False)
            self.client.log_artifact(self.run_id, str(path), "tables")
        self.client.log_table(self.run_id, observations, "tables/observations.json")
        self.client.log_table(self.run_id, pareto, "tables/pareto_front.json")
        self.client.set_tag(self.run_id, "paretolab.status", "finished")
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def awaiting(self, message: str) -> None:
        """Mark the run as waiting for lab results (it stays running; a rerun goes on)."""
        self.wait()
        if self.run_id:
            self.client.set_tag(self.run_id, "paretolab.status", message[:5000])

    def fail(self, reason: str) -> None:
        """Mark the run failed (a rerun resumes it)."""
        try:
            self.wait()
        except Exception as exc:  # the failure being reported matters more
            logger.warning("publishing to MLflow failed too: %s", exc)
        if self.run_id:
            self.client.log_batch(self.run_id, tags=[RunTag("paretolab.error", reason[:5000])])
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))

    def run_url(self) -> str:
        """The run's page in the MLflow UI: on the tracking server, or on a local `mlflow ui`
        (default port 5000) for a local store. Opens in the runs view, not GenAI mode."""
        if self.run_id is None:
            return ""
        if self._experiment_id is None:
            self._experiment_id = self.client.get_run(self.run_id).info.experiment_id
        experiment_id = self._experiment_id
        base = (
            self.tracking_uri.rstrip("/")
            if self.tracking_uri.startswith(("http://", "https://"))
            else ("http://127.0.0.1:5000")
        )
        return f"{base}/#/experiments/{experiment_id}/runs/{self.run_id}?workflowType=machine_learning"

    def run_url_hint(self) -> str:
        """The command that opens this tracking store in the MLflow UI."""
        uri = self.tracking_uri
        if uri.startswith(("http://", "https://")):
            return f"open {uri}"
        return f"{command('mlflow')} ui --backend-store-uri {uri}"
