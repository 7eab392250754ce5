"""What a campaign learned, loaded back from its MLflow run: a trained generator that
samples outside the campaign, or a round's proxy that predicts new candidates.

    import paretolab as pl

    generator = pl.load_generator(run_id, round=3)            # the latest round if omitted
    generator.propose(100, torch.Generator().manual_seed(0))  # canonical candidates
    proxy = pl.load_proxy(run_id, round=3)
    proxy.predict(["ACDE..."])                                # mean and std in raw units

Both read the artifacts :class:`~paretolab.flows.tracking.CampaignTracker` logs each round:
``campaign/config.json`` (how to build the space and the generator) and
``checkpoints/<name>/round_<k>.pt``. The tracking URI is the argument, else
``MLFLOW_TRACKING_URI``, else MLflow's default.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from paretolab.data.objectives import Objective
from paretolab.data.spaces import SearchSpace
from paretolab.flows.config import CampaignConfig
from paretolab.flows.factories import build_generator, build_space
from paretolab.flows.runtime import pick_device
from paretolab.flows.steps import PROXY_CHECKPOINT
from paretolab.flows.tracking import CONFIG_ARTIFACT, LoggedRun, MissingRunError
from paretolab.models.generators.base import Generator
from paretolab.models.predictions import prediction_table
from paretolab.models.proxies.gp import build_gp

__all__ = ["LoadedProxy", "SharedModelError", "load_generator", "load_proxy"]

_ROUND_FILE = re.compile(r"round_(\d{4,})\.pt$")


class SharedModelError(LookupError):
    """A run, generator or round that the MLflow run does not hold (the message lists what
    it holds)."""


@dataclass
class LoadedProxy:
    """A round's fitted proxy: a BoTorch ``ModelListGP`` on the features of ``space``, in
    maximization space, with the data it was fitted on."""

    model: Any
    space: SearchSpace
    objectives: tuple[Objective, ...]
    candidates: list[str]
    """The measured candidates the proxy was fitted on."""
    round: int

    def predict(self, candidates: list[str]) -> pd.DataFrame:
        """Posterior mean and standard deviation for each candidate and objective, in the
        objectives' raw units (columns ``candidate, objective, mean, std``)."""
        canonical = self.space.canonicalize(candidates)
        bad = [c for c, k in zip(candidates, canonical, strict=True) if k is None]
        if bad:
            raise ValueError(f"not candidates of this campaign's space: {bad[:5]}")
        X = self.space.featurize(canonical).to(next(iter(self.model.parameters())))
        table = prediction_table(self.model, X, canonical, self.objectives, self.round)
        return table.drop(columns="round")


class _Run:
    """One MLflow run's logged campaign: its config, space and checkpoints."""

    def __init__(self, run_id: str, tracking_uri: str | None, folder: Path) -> None:
        self.run_id = run_id
        self.folder = folder
        try:
            self.logged = LoggedRun(run_id, tracking_uri)
            spec = json.loads(self._download(CONFIG_ARTIFACT).read_text())
        except MissingRunError as exc:
            raise SharedModelError(f"{exc}: no paretolab campaign to load") from None
        config = CampaignConfig.model_validate(spec["config"])
        if spec.get("seed_file"):  # a molecule space's vocabulary comes from its seed file
            seeds = self._download(spec["seed_file"])
            space = config.space.model_copy(update={"seeds": seeds.name})
            config = config.model_copy(update={"space": space})
            config._base_dir = seeds.parent
        self.config = config
        self.objectives = tuple(Objective(*o) for o in spec["objectives"])
        self.space = build_space(config.space, config.base_dir)

    def _download(self, path: str) -> Path:
        return self.logged.download(path, self.folder)

    def checkpoint(self, name: str, round_: int | None) -> tuple[int, dict[str, Any]]:
        """The state ``name`` was left in after ``round_`` (None: its latest round)."""
        held = {
            int(m.group(1)): path
            for path, _ in self.logged.listing(f"checkpoints/{name}")
            if (m := _ROUND_FILE.search(path))
        }
        if not held:
            raise SharedModelError(f"MLflow run {self.run_id} holds no checkpoint of {name!r}")
        chosen = max(held) if round_ is None else round_
        if chosen not in held:
            raise SharedModelError(
                f"MLflow run {self.run_id} holds no checkpoint of {name!r} after round {round_}; "
                f"it has rounds {', '.join(map(str, sorted(held)))}"
            )
        state = torch.load(self._download(held[chosen]), map_location="cpu", weights_only=True)
        return chosen, state

    def learned_generators(self) -> list[str]:
        names = [path.rsplit("/", 1)[-1] for path, is_dir in self.logged.listing("checkpoints") if is_dir]
        return [name for name in names if name != PROXY_CHECKPOINT]


def load_generator(
    run_id: str,
    round: int | None = None,
    *,
    generator: str | None = None,
    tracking_uri: str | None = None,
    device: str | None = None,
) -> Generator:
    """The learned generator a campaign's MLflow run holds, as it was after ``round`` (the
    latest if omitted): built from the run's logged config and loaded with its checkpoint,
    ready to ``propose(n, rng)``. ``generator`` names it (``mogfn``, ``opgfn``,
    ``diffusion``) when the campaign trained several. ``device``: ``cpu``, ``cuda`` or
    ``auto`` (default: ``auto``, the GPU when there is one: a campaign trained on CUDA
    loads on a CPU machine too)."""
    with tempfile.TemporaryDirectory() as folder:
        run = _Run(run_id, tracking_uri, Path(folder))
        learned = run.learned_generators()
        if generator is None:
            if len(learned) != 1:
                found = ", ".join(learned) if learned else "none"
                raise SharedModelError(
                    f"MLflow run {run_id}: name the generator to load (generator=...); learned: {found}"
                )
            generator = learned[0]
        settings = next((g for g in run.config.generators if g.kind == generator), None)
        if settings is None or generator not in learned:
            raise SharedModelError(
                f"MLflow run {run_id} holds no learned generator {generator!r}; "
                f"learned: {', '.join(learned) if learned else 'none'}"
            )
        chosen, state = run.checkpoint(generator, round)
        built = build_generator(
            settings,
            run.space,
            num_objectives=len(run.objectives),
            seed=run.config.seed,
            device=pick_device(device or "auto"),
        )
        built.load_state_dict(state)
        built.trained_round = chosen
        return built


def load_proxy(run_id: str, round: int | None = None, *, tracking_uri: str | None = None) -> LoadedProxy:
    """The proxy a campaign fitted in ``round`` (the latest model-based round if omitted),
    rebuilt on the data it was fitted on with its fitted hyperparameters (no refit)."""
    with tempfile.TemporaryDirectory() as folder:
        run = _Run(run_id, tracking_uri, Path(folder))
        chosen, saved = run.checkpoint(PROXY_CHECKPOINT, round)
    X = run.space.featurize(saved["candidates"]).to(saved["Y"])  # features are not stored
    model = build_gp(X, saved["Y"], saved["kernel"], saved["vocab_size"], saved["Yvar"])
    model.load_state_dict(saved["state_dict"])
    return LoadedProxy(model.eval(), run.space, run.objectives, saved["candidates"], chosen)
