"""MLflow tracking of a campaign: the only module that imports mlflow.

One MLflow run per campaign (its id is kept in the campaign store, so a resumed campaign
logs into the same run). ``publish`` logs every round that the store has recorded and
MLflow has not, which makes it idempotent and self-healing after a crash. Per round:
metrics, the front as a step-indexed image (the UI's round slider) and as an interactive
plotly page, the surrogate's predictions against what was measured, and what the campaign
learned (each learned generator's checkpoint and the proxy), which
:mod:`paretolab.flows.shared_models` loads back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from PIL import Image

from paretolab.data.dataset import pareto_rows, raw_values, valid_observations
from paretolab.data.faults import crash_point
from paretolab.data.spaces import MoleculeSpace
from paretolab.data.store import CampaignStore
from paretolab.flows.commands import command
from paretolab.flows.config import CampaignConfig
from paretolab.flows.mlflow_ui import MODEL_TRAINING_VIEW
from paretolab.flows.pareto_explorer import pareto_explorer_html
from paretolab.flows.plots import PlotWindow, molecule_grid, pareto_figure, surrogate_figure

__all__ = [
    "CONFIG_ARTIFACT",
    "CampaignTracker",
    "LoggedRun",
    "MissingRunError",
    "check_tracking_uri",
    "checkpoint_artifact",
    "default_tracking_uri",
    "flatten",
    "run_name",
    "training_curves",
]

logger = logging.getLogger(__name__)

_MAX_PARAM_LENGTH = 6000
_WINDOW_TAG = "paretolab.plot_window"

CONFIG_ARTIFACT = "campaign/config.json"
"""The campaign's config and objectives as JSON: what a logged model is rebuilt from."""


def checkpoint_artifact(name: str, round_: int) -> str:
    """Where a learned model's state after ``round_`` is logged in the run."""
    return f"checkpoints/{name}/round_{round_:04d}.pt"


def run_name(name: str, campaign_dir: Path) -> str:
    """``<campaign>-<folder>-<hash>``: unique per campaign directory, so runs of one config in
    different folders are told apart (the folder is left out when it is the campaign's name)."""
    root = Path(campaign_dir).resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:6]
    return f"{name}-{digest}" if root.name == name else f"{name}-{root.name}-{digest}"


def _git_commit(folder: Path) -> str | None:
    """The commit checked out in the git repository holding ``folder``, if any."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _prefect_flow_run() -> tuple[str, str | None] | None:
    """The Prefect flow run this process is in (its id and UI page), if any. Prefect is
    not imported for it: the Python API runs without it."""
    if "prefect" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    from prefect.runtime import flow_run

    url = flow_run.ui_url  # built from PREFECT_UI_URL: meaningless without a Prefect server UI
    return str(context.flow_run.id), url if url and url.startswith(("http://", "https://")) else None


def _image(fig: Figure) -> Image.Image:
    """A matplotlib figure as a PIL image (``log_image``'s input)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


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


class MissingRunError(LookupError):
    """A run, or an artifact, that the tracking store does not hold."""


class LoggedRun:
    """Read access to one logged run's artifacts (what :mod:`~paretolab.flows.shared_models`
    loads models from); the tracking URI defaults to MLflow's (``MLFLOW_TRACKING_URI``)."""

    def __init__(self, run_id: str, tracking_uri: str | None = None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id
        try:
            self.experiment_id = self.client.get_run(run_id).info.experiment_id
        except MlflowException as exc:
            raise MissingRunError(
                f"MLflow run {run_id} at {self.client.tracking_uri}: {_first_line(exc)}"
            ) from None

    def download(self, path: str, folder: Path) -> Path:
        """The artifact ``path``, downloaded into ``folder``."""
        try:
            return Path(self.client.download_artifacts(self.run_id, path, str(folder)))
        except (MlflowException, OSError) as exc:
            raise MissingRunError(f"MLflow run {self.run_id} lacks {path} ({_first_line(exc)})") from None

    def listing(self, path: str) -> list[tuple[str, bool]]:
        """``(path, is_dir)`` of each artifact under ``path``."""
        return [(f.path, f.is_dir) for f in self.client.list_artifacts(self.run_id, path)]


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


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
        self._window: PlotWindow | None = None
        self._finished = False
        """The stored run was finished: it is reopened only when a round is logged to it."""
        self._tags: dict[str, str] = {}
        self._images: set[tuple[str, int]] | None = None
        """The (key, step) images the run holds: a round published again adds none."""
        self._logged_here = False
        self.background_seconds = 0.0
        """Time the background thread spent logging rounds (overlaps the next round)."""

    def start(self, store: CampaignStore, config: CampaignConfig) -> str:
        """Open the campaign's run (the stored one if it still exists) and mark it running;
        a finished run stays finished until a round is logged to it."""
        run_id = store.meta.get("mlflow_run_id")
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except MlflowException:
                logger.warning("MLflow run %s not found at %s; starting a new one", run_id, self.tracking_uri)
            else:
                self.run_id = run_id
                self._finished = run.info.status == RunStatus.to_string(RunStatus.FINISHED)
                if not self._finished:
                    self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                if "paretolab.error" in run.data.tags:
                    self.client.delete_tag(run_id, "paretolab.error")
                if not any(a.path == CONFIG_ARTIFACT for a in self.client.list_artifacts(run_id, "campaign")):
                    self._log_config(store, config)  # cut off between creating the run and this
                self._tags = self._describe(store, config)
                if not self._finished:  # a finished run gets them when a new round reopens it
                    self._set_tags()
                return run_id
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment:
            experiment_id = experiment.experiment_id
        elif self.tracking_uri.startswith(("sqlite:", "file:")) or "://" not in self.tracking_uri:
            # a local store: keep artifacts beside it, not wherever the process was started
            location = self.artifact_root.as_uri()
            experiment_id = self.client.create_experiment(self.experiment, artifact_location=location)
        else:  # a tracking server decides where artifacts go
            experiment_id = self.client.create_experiment(self.experiment)
        run = self.client.create_run(experiment_id, run_name=run_name(config.name, store.root))
        self.run_id = run.info.run_id
        store.update_meta(mlflow_run_id=self.run_id, mlflow_tracking_uri=self.tracking_uri)
        dumped = config.model_dump(mode="json")
        params = [Param(k, v[:_MAX_PARAM_LENGTH]) for k, v in flatten(dumped).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        self._log_config(store, config)
        self._tags = self._describe(store, config)
        self._set_tags()
        return self.run_id

    def _log_config(self, store: CampaignStore, config: CampaignConfig) -> None:
        """The config and objectives (what :mod:`~paretolab.flows.shared_models` rebuilds a
        logged generator from), and a molecule space's seed file, which its vocabulary needs."""
        spec = {"config": config.model_dump(mode="json"), "objectives": store.meta.get("objectives")}
        seeds = getattr(config.space, "seeds", None)
        if seeds is not None and seeds != "nci":
            path = config.base_dir / seeds
            self.client.log_artifact(self.run_id, str(path), "campaign")
            spec["seed_file"] = f"campaign/{path.name}"
        self.client.log_text(self.run_id, json.dumps(spec, indent=1), CONFIG_ARTIFACT)

    def _set_tags(self) -> None:
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in self._tags.items()])

    def _describe(self, store: CampaignStore, config: CampaignConfig) -> dict[str, str]:
        """Tags saying what the run is (space, oracle, generators, code version) and which
        Prefect flow run last advanced it, also as the run's description (markdown, with
        a link)."""
        import paretolab

        tags = {
            "paretolab.campaign_dir": str(store.root.resolve()),
            "paretolab.config_hash": str(store.meta.get("config_hash")),
            "paretolab.space": config.space.kind,
            "paretolab.oracle": config.oracle.label,
            "paretolab.generators": ",".join(g.kind for g in config.generators),
            "paretolab.version": paretolab.__version__,
        }
        commit = _git_commit(config.base_dir)
        if commit:
            tags["mlflow.source.git.commit"] = commit
        lines = [
            f"**{config.name}**: {config.space.kind} space, oracle `{config.oracle.label}`, "
            f"generators {', '.join(g.kind for g in config.generators)}.",
            "",
            f"Campaign directory: `{store.root.resolve()}`",
        ]
        flow_run = _prefect_flow_run()
        if flow_run is not None:
            tags["paretolab.prefect_flow_run_id"] = flow_run[0]
            if flow_run[1]:
                tags["paretolab.prefect_flow_run_url"] = flow_run[1]
                lines.append(f"Last advanced by Prefect flow run [{flow_run[0]}]({flow_run[1]}).")
            else:
                lines.append(f"Last advanced by Prefect flow run `{flow_run[0]}`.")
        tags["mlflow.note.content"] = "\n".join(lines)
        return tags

    def publish(self, store: CampaignStore, setup: Any) -> None:
        """Queue the logging of every recorded round that MLflow lacks.

        The store is read now; the MLflow writes and plots run on the tracker's one
        background thread, off the critical path of the next round. :meth:`wait`
        surfaces their errors.
        """
        assert self.run_id, "start() first"
        job = self._executor.submit(
            self._publish_rounds,
            _Snapshot(
                rounds=store.read("rounds"),
                observations=store.read("observations"),
                batches=store.read("batches"),
                predictions=store.read("predictions"),
                curves=training_curves(store.read("training")),
                checkpoints=store.root / "checkpoints",
                ref_point=store.meta.get("ref_point"),
            ),
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

    def _publish_rounds(self, snapshot: _Snapshot, objectives: tuple, name: str, molecules: bool) -> None:
        start = time.perf_counter()
        try:
            self._log_rounds(snapshot, objectives, name, molecules)
        finally:
            self.background_seconds += time.perf_counter() - start

    def _log_rounds(self, snapshot: _Snapshot, objectives: tuple, name: str, molecules: bool) -> None:
        if self._published is None:
            history = self.client.get_metric_history(self.run_id, "hypervolume")
            self._published = {m.step for m in history}
            window = self.client.get_run(self.run_id).data.tags.get(_WINDOW_TAG)
            self._window = PlotWindow.from_json(json.loads(window)) if window else None
        observations, curves = snapshot.observations, snapshot.curves
        for row in snapshot.rounds.itertuples():
            if row.round in self._published:
                continue
            if self._finished:  # new rounds for a finished run: it runs again
                self.client.update_run(self.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                self._set_tags()
                self._finished = False
            self._logged_here = True
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
            seen = observations[observations["round"] <= row.round]
            metrics += self._log_round_pictures(snapshot, seen, objectives, name, int(row.round), timestamp)
            # hypervolume last: its presence marks the round as published
            metrics.sort(key=lambda m: m.key == "hypervolume")
            crash_point("publish.figure_logged")  # the round's metrics not yet logged
            self._log_checkpoints(snapshot.checkpoints, int(row.round))
            front = pareto_rows(seen, objectives)
            self._log_table(front, f"pareto/front_round_{row.round:04d}.json")
            if molecules and len(front):
                grid = molecule_grid(front, objectives)
                self.client.log_image(self.run_id, grid, f"pareto/molecules_round_{row.round:04d}.png")
            for i in range(0, len(metrics), 200):
                self.client.log_batch(self.run_id, metrics=metrics[i : i + 200])
            self._published.add(int(row.round))

    def _log_round_pictures(
        self,
        snapshot: _Snapshot,
        seen: pd.DataFrame,
        objectives: tuple,
        name: str,
        round_: int,
        timestamp: int,
    ) -> list[Metric]:
        """The front as a step image (the UI's slider) and as an interactive page, in the
        campaign's fixed window; the surrogate's predictions for the round's batch against
        what was measured. Returns the surrogate's metrics."""
        ref = snapshot.ref_point
        window = self._plot_window(seen, objectives, ref)
        title = f"{name}: round {round_}"
        figure = pareto_figure(seen, objectives, title, ref_point=ref, window=window, batch_round=round_)
        self._log_step_image(figure, "pareto_front", round_)
        page = pareto_explorer_html(
            seen, snapshot.batches, objectives, ref_point=ref, window=window, batch_round=round_, title=title
        )
        self.client.log_text(self.run_id, page, f"pareto/round_{round_:04d}.html")
        predictions = snapshot.predictions[snapshot.predictions["round"] == round_]
        measured = seen[seen["round"] == round_]
        drawn = surrogate_figure(predictions, measured, objectives, f"{name}: surrogate, round {round_}")
        if drawn is None:
            return []
        self._log_step_image(drawn[0], "surrogate", round_)
        return [Metric(k, v, timestamp, round_) for k, v in drawn[1].items() if v == v]

    def _log_step_image(self, figure: Figure, key: str, step: int) -> None:
        """``log_image`` at ``step`` unless the run holds that image already (each call adds
        a file, so a round published again after a crash would show twice on the slider)."""
        if self._images is None:
            names = [a.path.rsplit("/", 1)[-1] for a in self.client.list_artifacts(self.run_id, "images")]
            self._images = {
                (n.split("+step+")[0], int(n.split("+step+")[1].split("+")[0]))
                for n in names
                if "+step+" in n
            }
        if (key, step) in self._images:
            return
        self.client.log_image(self.run_id, _image(figure), key=key, step=step)
        self._images.add((key, step))

    def _log_table(self, frame: pd.DataFrame, path: str) -> None:
        """A table written whole (MLflow's ``log_table`` appends to a table logged before)."""
        self.client.log_text(self.run_id, frame.to_json(orient="split", index=False, date_format="iso"), path)

    def _plot_window(self, seen: pd.DataFrame, objectives: tuple, ref: list[float] | None) -> PlotWindow:
        """The campaign's axes: kept from round to round, widened (and remembered in a run
        tag, for a resumed campaign) only when a value falls outside."""
        raw = raw_values(valid_observations(seen), objectives).numpy()
        if ref is None:  # no reference point yet: the worst value seen stands in for it
            sign = [1.0 if o.direction == "max" else -1.0 for o in objectives]
            ref = [float((raw[:, k] * s).min()) if len(raw) else 0.0 for k, s in enumerate(sign)]
        window = PlotWindow.fit(raw, ref, objectives, self._window)
        if window != self._window:
            self.client.set_tag(self.run_id, _WINDOW_TAG, json.dumps(window.to_json()))
            self._window = window
        return window

    def _log_checkpoints(self, folder: Path, round_: int) -> None:
        """Each learned generator's state after ``round_``, and the proxy's (when stored)."""
        if not folder.is_dir():
            return
        for path in sorted(folder.glob(f"*/round_{round_:04d}.pt")):
            artifact = checkpoint_artifact(path.parent.name, round_)
            self.client.log_artifact(self.run_id, str(path), str(Path(artifact).parent))

    def finish(self, store: CampaignStore, setup: Any, pareto: Any) -> None:
        """Final artifacts: Pareto plot, observation and Pareto tables; mark the run finished.
        A run that was finished and got no new round is left as it was."""
        assert self.run_id, "start() first"
        self.publish(store, setup)
        self.wait()
        if self._finished and not self._logged_here:
            return
        observations = store.read("observations")
        fig = pareto_figure(
            observations,
            setup.objectives,
            f"{setup.config.name}: final",
            ref_point=store.meta.get("ref_point"),
            window=self._window,
        )
        self.client.log_figure(self.run_id, fig, "pareto/final.png")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "observations.parquet"
            observations.to_parquet(path, index=False)
            self.client.log_artifact(self.run_id, str(path), "tables")
        self._log_table(observations, "tables/observations.json")
        self._log_table(pareto, "tables/pareto_front.json")
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
        return f"{base}/#/experiments/{experiment_id}/runs/{self.run_id}?{MODEL_TRAINING_VIEW}"

    def run_url_hint(self, campaign_dir: Path) -> str:
        """How to open the run: its address on a tracking server, else the command that
        serves the local store (``paretolab ui``)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return self.run_url()
        return f"{command('paretolab')} ui {campaign_dir}"


@dataclass(frozen=True)
class _Snapshot:
    """What publishing reads from the store, read on the caller's thread."""

    rounds: pd.DataFrame
    observations: pd.DataFrame
    batches: pd.DataFrame
    predictions: pd.DataFrame
    curves: pd.DataFrame
    checkpoints: Path
    ref_point: list[float] | None
