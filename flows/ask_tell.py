"""A campaign driven from Python: ``ask`` for a batch, ``tell`` what was measured.

The same store, steps and MLflow logging as ``paretolab run``, without Prefect: ``ask``
runs the science steps of a round (:func:`paretolab.flows.steps.choose_batch`, the functions the
Prefect flow runs as tasks) and records the batch as a request; ``tell`` validates
results like a lab's results file (:mod:`data.results`) and records them. Every call
opens the campaign's store, holds its lock while it writes, and lets go, so a campaign
can be continued from another process, a notebook or the command line in turn.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from pydantic import BaseModel

from paretolab.data.dataset import REPLICATES, latest_observations, raw_values, valid_observations
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.results import FAILURE_COLUMN, ID_COLUMN, candidate_id
from paretolab.data.store import CampaignStore, atomic_write
from paretolab.flows import steps
from paretolab.flows.campaign_dir import (
    CampaignMismatchError,
    Prepared,
    open_store,
    prepare,
    stored_config_path,
)
from paretolab.flows.config import CampaignConfig, ConfigError, parse_config
from paretolab.flows.engine import (
    MIN_VALID_TO_FIT,
    CampaignState,
    NotEnoughDataError,
    close_ready_rounds,
    pareto_table,
)
from paretolab.flows.ingest import Ingested, campaign_id, ingest_inbox, ingest_table, results_table
from paretolab.flows.lab import SUSPENDED_META, submit_request
from paretolab.flows.runtime import configure_environment, pick_device
from paretolab.models.reference_point import infer_ref_point

__all__ = ["BudgetSpentError", "Campaign", "CampaignExistsError", "Told"]

logger = logging.getLogger(__name__)

_LOGGED_META = "mlflow_logged_through"
"""Meta field: the last round the Python API logged to MLflow."""

CONFIG_FILE = "campaign.yaml"
"""The config of a campaign created from Python, written into its directory."""


class CampaignExistsError(ConfigError):
    """``Campaign.create`` found a campaign in the directory already."""


class BudgetSpentError(RuntimeError):
    """The campaign's ``budget`` of selected candidates is used up."""


@dataclass(frozen=True)
class Told:
    """What :meth:`Campaign.tell` recorded: ``recorded`` rows (``replaced`` of them new
    values for measured candidates), ``unchanged`` rows that repeat what is recorded, and
    the rounds that are now complete (``closed_rounds``)."""

    recorded: int
    replaced: int
    unchanged: int
    closed_rounds: tuple[int, ...]
    already: bool = False


def _config_data(
    directory: Path,
    space: Any,
    objectives: Sequence[Objective | Mapping[str, Any]],
    generator: Any,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The campaign config that :meth:`Campaign.create`'s arguments describe."""
    specs = []
    for objective in objectives:
        objective = Objective.from_spec(dict(objective) if isinstance(objective, Mapping) else objective)
        specs.append({"name": objective.name, "direction": objective.direction, "unit": objective.unit})
    generators = [generator] if isinstance(generator, str | Mapping | BaseModel) else list(generator)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", directory.resolve().name) or "campaign"
    space = space.model_dump(mode="json") if isinstance(space, BaseModel) else space
    if isinstance(space, Mapping) and space.get("kind") == "molecule" and space.get("seeds", "nci") != "nci":
        space = dict(space)
        # the config is written into the campaign directory: keep the seed file findable
        space["seeds"] = str(Path(space["seeds"]).resolve())
    return {
        "name": name,
        "rounds": 10,
        **settings,
        "space": space,
        "oracle": {"name": "external", "params": {"objectives": specs}},
        "generators": [
            {"kind": g}
            if isinstance(g, str)
            else g.model_dump(mode="json")
            if isinstance(g, BaseModel)
            else g
            for g in generators
        ],
    }


class Campaign:
    """A multi-objective campaign driven from Python; its results come from outside.

    Make one with :meth:`create`, :meth:`from_yaml` or :meth:`open`. :meth:`ask` proposes
    the next batch; :meth:`tell` records measurements (of asked candidates or any others);
    :meth:`pending`, :meth:`measurements`, :meth:`pareto_front`, :meth:`history` and
    :meth:`hypervolume` read the campaign; :meth:`infill` fills in positions of candidates
    with a diffusion generator's latest state. The state is the campaign directory, which
    ``paretolab status``, ``paretolab submit`` and ``paretolab run DIR`` read too.
    """

    def __init__(self, prepared: Prepared) -> None:
        """Use :meth:`create`, :meth:`from_yaml` or :meth:`open`."""
        self._prepared = prepared
        self._device = pick_device(prepared.config.runtime.device)
        self._tracker: Any = None

    # -- making one --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        space: Any,
        objectives: Sequence[Objective | Mapping[str, Any]],
        generator: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] = "genetic",
        batch_size: int = 8,
        seed: int = 0,
        exist_ok: bool = False,
        **settings: Any,
    ) -> Campaign:
        """Start a campaign in ``directory`` whose results you tell it.

        ``space``: :class:`SequenceSpace`, :class:`GridSpace` or :class:`MoleculeSpace`.
        ``objectives``: :class:`Objective` s (or ``{name, direction, unit}`` mappings).
        ``generator``: a generator kind (``"random"``, ``"genetic"``, ``"mogfn"``,
        ``"opgfn"``), a mapping with its settings (``{"kind": "mogfn", "steps_per_round":
        100}``), or a list of them. Any other field of a campaign config may be given as a
        keyword (``initial_design``, ``ref_point``, ``budget``, ``proxy``, ``acquisition``,
        ``runtime``, ``tracking``, ``rounds`` for ``paretolab run``, ``name``); see the
        README's "Campaign config". The config is written to ``directory/campaign.yaml``.

        With ``exist_ok`` a campaign already in ``directory`` with the same config is
        opened instead; otherwise it is an error (:class:`CampaignExistsError`), as is a
        different config there (:class:`CampaignMismatchError`). ConfigError names the
        argument that is wrong.
        """
        directory = Path(directory)
        taken = sorted(set(settings) & {"space", "objectives", "oracle", "generators"})
        if taken:
            raise TypeError(f"Campaign.create: unexpected argument(s) {', '.join(taken)}; see its docstring")
        data = _config_data(directory, space, objectives, generator, settings)
        data |= {"batch_size": batch_size, "seed": seed}
        config = parse_config(data, "Campaign.create")
        config_path = directory / CONFIG_FILE
        if CampaignStore.exists(directory):
            if not exist_ok:
                raise CampaignExistsError(
                    f"{directory}: holds a campaign already; open it with Campaign.open({str(directory)!r}), "
                    "or pass exist_ok=True"
                )
            opened = cls.open(directory)
            if opened.config.identity_hash() != config.identity_hash():
                raise CampaignMismatchError(
                    f"{directory}: holds a campaign created with a different config; open it with "
                    "Campaign.open, or choose another directory"
                )
            return opened
        directory.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
        atomic_write(config_path, lambda fh: fh.write(text.encode()))
        return cls._start(config_path, directory)

    @classmethod
    def from_yaml(cls, config_path: str | Path, directory: str | Path | None = None) -> Campaign:
        """The campaign of a YAML config in ``directory`` (default ``runs/<name>``): created
        there, or opened if it is there already with the same config. :meth:`ask` and
        :meth:`tell` need an oracle whose results come from outside (``external`` or
        ``lab``); any campaign can be read."""
        return cls._start(Path(config_path), Path(directory) if directory is not None else None)

    @classmethod
    def open(cls, directory: str | Path) -> Campaign:
        """The campaign in ``directory``, made by :meth:`create`, :meth:`from_yaml` or
        ``paretolab run``; its config file must still be where it was."""
        directory = Path(directory)
        return cls(prepare(stored_config_path(directory), directory, force_new=False))

    @classmethod
    def _start(cls, config_path: Path, directory: Path | None) -> Campaign:
        configure_environment()
        prepared = prepare(config_path.resolve(), directory, force_new=False)
        with open_store(prepared, force_new=False):
            pass
        return cls(prepared)

    # -- what it is --------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """The campaign directory (its store, requests and inbox)."""
        return self._prepared.campaign_dir

    @property
    def config(self) -> CampaignConfig:
        """The validated campaign config."""
        return self._prepared.config

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """The objectives, in the order of every table's value columns."""
        return self._prepared.setup.objectives

    def __repr__(self) -> str:
        names = ", ".join(f"{o.name} ({o.direction})" for o in self.objectives)
        return f"Campaign({str(self.directory)!r}, objectives: {names})"

    # -- asking and telling -----------------------------------------------------------
    def ask(self, batch_size: int | None = None) -> pd.DataFrame:
        """Propose the next batch of candidates to measure, and record it as pending.

        Fits the proxy on everything measured, refreshes the generators, pools their
        proposals and picks the batch with the acquisition, counting the pending
        candidates (asked, not told) as pending points; pending and measured candidates
        are never proposed again. The first batch is ``initial_design`` random candidates,
        unless two valid measurements were told before it; after that, too few valid
        measurements raise NotEnoughDataError (tell more, or failure reasons are all
        there is).

        Returns one row per candidate: ``candidate_id`` (for :meth:`tell` and lab files),
        ``round``, ``candidate``, ``generator``, ``acquisition`` (the greedy value of
        each pick: log-EHVI with ``acquisition.kind: qlognehvi``, the expected hypervolume
        improvement with ``sampled_hvi``) and the proxy's ``<objective>_mean`` and ``<objective>_std``
        in the objective's units (NaN for a random batch). ``batch_size`` defaults to the
        config's. The same campaign and seed given the same measurements ask the same
        batch. Raises BudgetSpentError once ``budget`` candidates have been asked for.
        """
        config, setup = self.config, self._prepared.setup
        self._require_outside_results("ask")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        threads = torch.get_num_threads()
        if config.runtime.torch_threads is not None:
            torch.set_num_threads(config.runtime.torch_threads)
        try:
            with CampaignStore.open(self.directory) as store:
                self._resend(store)
                for outcome in ingest_inbox(store, store.root / config.lab.inbox_dir):
                    logger.info(outcome.describe())
                close_ready_rounds(store, setup)
                self._publish(store)
                state = CampaignState.read(store)
                round_ = state.next_round
                initial = state.needs_initial_design(round_)
                if not initial and not state.can_fit_proxy:
                    raise NotEnoughDataError(
                        f"{self.directory}: the proxy needs {MIN_VALID_TO_FIT} valid measurements before "
                        f"round {round_} can be chosen; tell the results of the pending candidates (or "
                        "measurements you have) first"
                    )
                size = state.batch_size(config, round_, batch_size)
                if size <= 0:
                    raise BudgetSpentError(
                        f"{self.directory}: the budget of {config.budget} candidates is spent"
                    )
                if initial:
                    steps.initial_design(store, setup, size, round_)
                else:
                    steps.choose_batch(store, setup, round_, size, self._device)
                if (store.read("batches")["round"] == round_).any():
                    lab = config.lab
                    submit_request(
                        store, setup.oracle, round_, store.root / lab.request_dir, store.root / lab.inbox_dir
                    )
                return self._candidates(store, rounds={round_})
        finally:
            torch.set_num_threads(threads)

    def tell(
        self, results: pd.DataFrame | str | Path, *, replace: bool = False, replicates: bool = False
    ) -> Told:
        """Record measurements: a DataFrame, or a ``.csv``/``.parquet`` file.

        Each row names a candidate by ``candidate_id`` (from :meth:`ask`) or by
        ``candidate`` (any member of the space: measurements you already have), and gives
        one value per objective (columns named like the objectives, ``name [unit]`` for
        one with a unit) or a ``failure_reason`` for a candidate that could not be
        measured. Other columns are ignored, so the table :meth:`ask` returned, with
        values filled in, is fine. Asked candidates left out stay pending.

        The whole table is checked first: unknown or another campaign's ids, duplicate
        rows, missing or non-numeric objective columns, missing values without a failure
        reason, or new values for a measured candidate (unless ``replace``; the old value
        stays in the history) reject it as a whole with a ResultsError that names each
        row and column, and nothing is recorded. Telling the same table twice records it
        once. Rounds whose results are all in are then closed and logged to MLflow.

        With ``replicates`` (or a ``replicate`` column in the table), rows naming the same
        candidate are replicate measurements, each recorded; a candidate measured before
        gains them as more replicates. The proxy fits each candidate's mean, with the noise
        its replicates show (README, "Replicates").
        """
        self._require_outside_results("tell")
        frame, source, sha, first_row, labels = results_table(results)
        with CampaignStore.open(self.directory) as store:
            self._resend(store)
            outcome: Ingested = ingest_table(
                store,
                frame,
                source,
                sha,
                self._prepared.setup.space.check,
                replace=replace,
                new_round=CampaignState.read(store).next_round,
                row_offset=first_row,
                row_names=labels,
                replicates=replicates,
            )
            closed = close_ready_rounds(store, self._prepared.setup)
            self._publish(store)
            waiting = store.meta.get(SUSPENDED_META) if outcome.recorded else None
        logger.info(outcome.describe())
        if waiting:  # a deployment's flow run suspended for these results goes on
            from paretolab.flows.waiting import resume_suspended

            try:
                logger.info("resumed flow run %s", resume_suspended(waiting))
            except Exception as exc:  # already resumed, API unreachable, ...
                logger.warning(
                    "could not resume flow run %s (%s: %s); the results are recorded: resume it in "
                    "the Prefect UI or run the campaign again",
                    waiting["flow_run_id"],
                    type(exc).__name__,
                    exc,
                )
        return Told(outcome.recorded, outcome.replaced, outcome.unchanged, tuple(closed), outcome.already)

    # -- reading -----------------------------------------------------------------------
    def pending(self) -> pd.DataFrame:
        """Candidates asked for and not told yet, in the columns :meth:`ask` returns."""
        with CampaignStore.open(self.directory, lock=False) as store:
            return self._candidates(store, pending_only=True)

    def measurements(self) -> pd.DataFrame:
        """Every measured candidate, its latest result: ``candidate_id`` (empty for one
        told without being asked for), ``round``, ``candidate``, one column per objective
        (NaN for a failure; the mean of its replicates), ``failure_reason``, ``replicates``
        (valid measurements behind the values) and ``measured_at``."""
        with CampaignStore.open(self.directory, lock=False) as store:
            latest = latest_observations(store.read("observations"))
            ids = self._ids(store)
        table = pd.DataFrame(
            {
                ID_COLUMN: [
                    ids.get((int(r), c), "")
                    for r, c in zip(latest["round"], latest["candidate"], strict=True)
                ],
                "round": latest["round"].to_numpy(),
                "candidate": latest["candidate"].to_numpy(),
            }
        )
        for objective in self.objectives:
            table[objective.name] = latest.reindex(columns=[objective.name])[objective.name].to_numpy(
                dtype=float
            )
        table[FAILURE_COLUMN] = latest["reason"].fillna("").to_numpy()
        table["replicates"] = latest[REPLICATES].to_numpy()
        table["measured_at"] = latest["measured_at"].to_numpy()
        return table

    def pareto_front(self) -> pd.DataFrame:
        """The measured candidates no other measured candidate beats on every objective:
        ``round``, ``candidate`` and the objective values."""
        with CampaignStore.open(self.directory, lock=False) as store:
            return pareto_table(store, self.objectives)

    def history(self) -> pd.DataFrame:
        """One row per closed round: ``round``, ``hypervolume`` (of everything measured up
        to that round), ``n_pareto``, ``n_observations`` and ``completed_at``."""
        with CampaignStore.open(self.directory, lock=False) as store:
            rounds = store.read("rounds")
        columns = ["round", "hypervolume", "n_pareto", "n_observations", "completed_at"]
        return rounds[columns].sort_values("round").reset_index(drop=True)

    def hypervolume(self) -> float:
        """Hypervolume of everything measured so far, against the campaign's reference
        point. That point is fixed by the first model-based ask or the first closed round
        (the config's, else inferred from the measurements then); until then it is
        inferred from what is measured now, by the same rule."""
        with CampaignStore.open(self.directory, lock=False) as store:
            ref = store.meta.get("ref_point")
            valid = valid_observations(store.read("observations"))
        Y = to_max_space(raw_values(valid, self.objectives), self.objectives)
        if ref is not None:
            return hypervolume(Y, torch.tensor(ref, dtype=torch.double))
        if self._prepared.setup.config_ref_point is not None:
            return hypervolume(Y, self._prepared.setup.config_ref_point)
        return hypervolume(Y, infer_ref_point(Y)) if len(Y) else 0.0

    def infill(
        self,
        candidates: Sequence[str],
        positions: Sequence[Sequence[int]],
        *,
        guided: bool = True,
        seed: int | None = None,
    ) -> list[str]:
        """Fill in the given 0-based token ``positions`` of each candidate with the
        campaign's ``diffusion`` generator as its latest round trained it: the positions
        are masked and decoded again, steered by the value heads (``guided``) or by the
        denoiser alone. Tokens are letters for sequences and the SELFIES tokens of the
        canonical SMILES for molecules; every other position keeps its token. Nothing is
        recorded; the result is reproducible from ``seed`` (default: the campaign's)."""
        setup = self._prepared.setup
        generator = next((g for g in setup.generators if g.name == "diffusion"), None)
        if generator is None:
            raise ValueError("infill needs a generator of kind diffusion in the campaign's generators")
        canonical = setup.space.canonicalize(list(candidates))
        bad = [
            f"{x!r} ({setup.space.check(x).reason})"
            for x, c in zip(candidates, canonical, strict=True)
            if not c
        ]
        if bad:
            raise ValueError(f"not members of the space: {', '.join(bad[:5])}")
        with CampaignStore.open(self.directory, lock=False) as store:
            trained = steps.load_latest_state(store, generator)
        if trained is None or trained < 0:
            raise NotEnoughDataError(
                f"{self.directory}: the diffusion generator has not trained yet; ask a model-based batch"
            )
        rng = torch.Generator().manual_seed(self.config.seed if seed is None else seed)
        return generator.infill(
            [c for c in canonical if c is not None], [list(p) for p in positions], rng, guided=guided
        )

    # -- internals ---------------------------------------------------------------------
    def _require_outside_results(self, method: str) -> None:
        oracle = self.config.oracle
        if not self._prepared.setup.oracle.asynchronous:
            raise ConfigError(
                f"{self.directory}: {method}() needs a campaign whose results come from outside "
                f"(oracle: external or lab); this one measures with oracle {oracle.label!r} itself: "
                f"run it with `paretolab run {self.directory}`"
            )

    def _resend(self, store: CampaignStore) -> None:
        """Send the requests of batches a crash cut off before they were sent (each request
        is sent once: :func:`paretolab.flows.lab.submit_request` is idempotent)."""
        folder, inbox = store.root / self.config.lab.request_dir, store.root / self.config.lab.inbox_dir
        for round_ in sorted(set(store.read("batches")["round"].tolist())):
            submit_request(store, self._prepared.setup.oracle, int(round_), folder, inbox)

    def _ids(self, store: CampaignStore) -> dict[tuple[int, str], str]:
        """The candidate id of every selected candidate, by (round, candidate)."""
        batches = store.read("batches")
        cid = campaign_id(store) if "campaign_id" in store.meta else ""
        return {
            (int(r), str(c)): candidate_id(cid, int(r), int(p))
            for r, c, p in zip(batches["round"], batches["candidate"], batches["position"], strict=True)
        }

    def _candidates(
        self, store: CampaignStore, rounds: set[int] | None = None, pending_only: bool = False
    ) -> pd.DataFrame:
        batches = store.read("batches")
        if rounds is not None:
            batches = batches[batches["round"].isin(rounds)]
        if pending_only:
            batches = batches[~batches["candidate"].isin(CampaignState.read(store).measured)]
        ids = self._ids(store)
        table = pd.DataFrame(
            {
                ID_COLUMN: [
                    ids[(int(r), c)] for r, c in zip(batches["round"], batches["candidate"], strict=True)
                ],
                "round": batches["round"].to_numpy(),
                "candidate": batches["candidate"].to_numpy(),
                "generator": batches["generator"].to_numpy(),
                "acquisition": batches["acquisition_value"].to_numpy(dtype=float),
            }
        )
        predictions = store.read("predictions")
        for objective in self.objectives:
            mine = predictions[predictions["objective"] == objective.name].drop_duplicates(
                ["round", "candidate"], keep="last"
            )
            lookup = mine.set_index(["round", "candidate"])
            keys = pd.MultiIndex.from_arrays([table["round"], table["candidate"]])
            for stat in ("mean", "std"):
                table[f"{objective.name}_{stat}"] = lookup[stat].reindex(keys).to_numpy(dtype=float)
        return table.reset_index(drop=True)

    def _publish(self, store: CampaignStore) -> None:
        """Log closed rounds that MLflow lacks to the campaign's run (as ``paretolab run``
        does); one whose logging failed or was cut off is logged by the next call."""
        rounds = store.read("rounds")["round"]
        if not len(rounds) or int(rounds.max()) <= store.meta.get(_LOGGED_META, -1):
            return
        from paretolab.flows.tracking import CampaignTracker, default_tracking_uri

        config = self.config
        try:
            if self._tracker is None:
                uri = default_tracking_uri(store.root, config.tracking.tracking_uri)
                tracker = CampaignTracker(
                    uri, config.tracking.experiment, store.root.resolve().parent / "mlartifacts"
                )
                tracker.start(store, config)
                self._tracker = tracker
            self._tracker.publish(store, self._prepared.setup)
            self._tracker.wait()
            store.update_meta(**{_LOGGED_META: int(rounds.max())})
        except Exception as exc:  # what is recorded matters more; the next call logs it
            logger.warning(
                "logging rounds up to %d to MLflow failed (%s: %s)",
                int(rounds.max()),
                type(exc).__name__,
                exc,
            )
