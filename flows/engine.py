"""The campaign engine: a campaign's state, as its store records it, and every rule that
decides what happens next.

What is measured, pending or continued; the next round; whether a proxy can be fitted;
the next batch's size under the budget; when and how a round closes. The Prefect flow
(``flows/campaign.py``, ``flows/round.py``), the Python API (``flows/ask_tell.py``), the
lab layer (``flows/lab.py``) and ``paretolab status`` ask the engine and never re-derive
a rule. It reads and writes only through the CampaignStore and imports neither Prefect
nor MLflow.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pandas as pd
import torch

from paretolab.data.dataset import pareto_rows, raw_values, valid_observations
from paretolab.data.faults import crash_point
from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import hypervolume, pareto_mask
from paretolab.data.store import CampaignStore
from paretolab.models.reference_point import infer_ref_point

__all__ = [
    "INITIAL_DESIGN",
    "MIN_VALID_TO_FIT",
    "TOLD",
    "CampaignState",
    "NotEnoughDataError",
    "close_ready_rounds",
    "close_round",
    "generator_shares",
    "pareto_table",
    "reference_point",
    "require_valid",
]

logger = logging.getLogger(__name__)

MIN_VALID_TO_FIT = 2
"""Valid measurements a proxy needs; with fewer, round 0 is a random initial design."""

INITIAL_DESIGN = "initial"
"""Generator name recorded for a random initial design (round 0's batch, unless
``MIN_VALID_TO_FIT`` valid measurements were told before it)."""

TOLD = "told"
"""Source credited in :func:`generator_shares` for a candidate measured without having been
selected for any batch (results told from outside without being asked for)."""


class NotEnoughDataError(RuntimeError):
    """Too few valid measurements to go on; rerunning will not help."""


@dataclass(frozen=True)
class CampaignState:
    """One consistent reading of the campaign's ledger, and the rules that follow from it.

    Read it again after a write: it is a snapshot.
    """

    batches: pd.DataFrame
    observations: pd.DataFrame
    rounds: pd.DataFrame
    lab_events: pd.DataFrame

    @classmethod
    def read(cls, store: CampaignStore) -> CampaignState:
        """The state the store records now."""
        return cls(
            store.read("batches"), store.read("observations"), store.read("rounds"), store.read("lab_events")
        )

    # -- what is measured, pending, continued -----------------------------------------
    @cached_property
    def measured(self) -> set[str]:
        """Candidates with a recorded result (a value or a failure)."""
        return set(self.observations["candidate"])

    @cached_property
    def taken(self) -> set[str]:
        """Candidates never to propose again: measured, or selected for a batch."""
        return self.measured | set(self.batches["candidate"])

    @cached_property
    def n_valid(self) -> int:
        """Valid measurements (a replaced value counts once)."""
        return len(valid_observations(self.observations))

    @cached_property
    def continued(self) -> set[int]:
        """Rounds that went on without their missing lab results (``continue_after_hours``)."""
        events = self.lab_events
        return {int(r) for r in events.loc[events["event"] == "continued", "round"]}

    @cached_property
    def closed(self) -> set[int]:
        """Rounds whose summary (hypervolume, Pareto set) is recorded."""
        return {int(r) for r in self.rounds["round"]}

    @cached_property
    def pending(self) -> list[str]:
        """Candidates selected for measurement and not measured yet, except those of rounds
        that went on without them: the acquisition's pending points."""
        return [
            c
            for c, r in zip(self.batches["candidate"], self.batches["round"], strict=True)
            if c not in self.measured and int(r) not in self.continued
        ]

    # -- what comes next ---------------------------------------------------------------
    @cached_property
    def next_round(self) -> int:
        """The round the next batch belongs to: the one after the last batch or closed round.

        Measurements told without being asked for are recorded in it too, so the round
        numbers (and with them every seed) do not depend on how results were told.
        """
        used = [int(t["round"].max()) for t in (self.batches, self.rounds) if len(t)]
        return max(used) + 1 if used else 0

    @property
    def can_fit_proxy(self) -> bool:
        """Whether there are the ``MIN_VALID_TO_FIT`` valid measurements a proxy needs."""
        return self.n_valid >= MIN_VALID_TO_FIT

    def needs_initial_design(self, round_: int) -> bool:
        """Whether round ``round_``'s batch is the random initial design: round 0, without
        the valid measurements a proxy needs (measurements told beforehand may provide them)."""
        return round_ == 0 and not self.can_fit_proxy

    def has_batch(self, round_: int) -> bool:
        """Whether round ``round_``'s batch is selected (a resumed round measures it)."""
        return bool((self.batches["round"] == round_).any())

    def batch_size(self, config: Any, round_: int, requested: int | None = None) -> int:
        """Candidates round ``round_``'s batch gets: ``requested``, else the config's
        ``initial_design`` or ``batch_size``, cut to what the ``budget`` leaves. Zero or less:
        the budget is spent."""
        size = requested or (
            config.initial_design if self.needs_initial_design(round_) else config.batch_size
        )
        if config.budget is not None:
            size = min(size, config.budget - len(self.batches))
        return size

    def budget_spent(self, config: Any) -> bool:
        """Whether no further batch fits the ``budget``."""
        return config.budget is not None and len(self.batches) >= config.budget

    # -- closing rounds ----------------------------------------------------------------
    def round_measured(self, round_: int) -> bool:
        """Whether round ``round_``'s batch has all its results (or went on without them)."""
        batch = self.batches.loc[self.batches["round"] == round_, "candidate"]
        return round_ in self.continued or set(batch) <= self.measured

    def rounds_to_close(self, config: Any, ref_point_fixable: bool) -> list[int]:
        """Open rounds that can close now, in round order: each whose batch is measured, up
        to the first one still waiting; then, once the budget allows no further batch, the
        round that measurements told after the last batch were recorded in."""
        if not ref_point_fixable:
            return []
        ready: list[int] = []
        for round_ in sorted({int(r) for r in self.batches["round"]} - self.closed):
            if not self.round_measured(round_):
                return ready
            ready.append(round_)
        trailing = self.next_round
        if self.budget_spent(config) and (self.observations["round"] == trailing).any():
            ready.append(trailing)  # no batch can follow: close what was told
        return ready

    def batch_metrics(self, round_: int) -> dict[str, float]:
        """The metrics recorded with round ``round_``'s batch (none for a told-only round)."""
        batch = self.batches[self.batches["round"] == round_]
        return json.loads(batch["metrics"].iloc[0]) if len(batch) else {}


def require_valid(observations: pd.DataFrame, n: int, purpose: str) -> None:
    """Raise NotEnoughDataError, with the failure reasons, unless ``n`` rows are valid."""
    valid = len(valid_observations(observations))  # a replaced value counts once
    if valid >= n:
        return
    reasons = observations.loc[~observations["valid"], "reason"].value_counts().head(3)
    why = "; ".join(f"{count} x {reason}" for reason, count in reasons.items()) or "nothing measured"
    raise NotEnoughDataError(
        f"need at least {n} valid measurement(s) to {purpose}, have {valid} ({why}); "
        "check the oracle (or tell more results), or start over with a larger initial_design"
    )


def reference_point(store: CampaignStore, setup: Any, up_to_round: int | None = None) -> torch.Tensor:
    """The campaign's reference point in maximization space, fixed once: the config's or
    oracle's, else inferred (:func:`paretolab.models.reference_point.infer_ref_point`) from
    the valid measurements at that time, of rounds up to ``up_to_round`` if given."""
    if "ref_point" not in store.meta:
        if setup.config_ref_point is not None:
            ref = setup.config_ref_point
        else:
            observations = store.read("observations")
            if up_to_round is not None:
                observations = observations[observations["round"] <= up_to_round]
            require_valid(observations, 1, "infer the reference point")
            Y = to_max_space(raw_values(valid_observations(observations), setup.objectives), setup.objectives)
            ref = infer_ref_point(Y)
            logger.info("inferred reference point %s from the first measurements", ref.tolist())
        store.update_meta(ref_point=ref.tolist())
    return torch.tensor(store.meta["ref_point"], dtype=torch.double)


def generator_shares(
    round_: int,
    batches: pd.DataFrame,
    proposals: pd.DataFrame,
    observations: pd.DataFrame,
    objectives: Sequence[Objective],
) -> dict[str, float]:
    """What each generator supplied in round ``round_``, from the store's tables.

    - ``batch_share/<g>``: the fraction of round ``round_``'s batch whose row names
      generator ``g``. A candidate several generators proposed is credited to the one its
      batch row records: the first in config order to propose it (``steps.build_pool``).
      The random initial design is ``initial``. Every generator that proposed in the round
      gets a key (0 if none of its candidates was picked); a round without a batch (only
      told measurements) gets none.
    - ``n_new_pareto``: the candidates on the measured Pareto front of rounds up to
      ``round_`` that were not on the front of the rounds before it (its new members).
    - ``new_pareto_share/<g>``: the fraction of those new members whose batch row names
      ``g``; a candidate measured without being in any batch counts as :data:`TOLD`. Every
      generator of the round and every credited source gets a key; with no new members,
      none does (a share of nothing is not 0).

    The shares of a round's keys sum to 1. ``batches``, ``proposals`` and ``observations``
    are whole store tables (see ``store.TABLES``).
    """
    batch = batches[batches["round"] == round_]
    names = set(batch["generator"]) | set(proposals.loc[proposals["round"] == round_, "generator"])
    shares: dict[str, float] = {}
    if len(batch):
        picked = Counter(batch["generator"])
        shares |= {f"batch_share/{g}": picked[g] / len(batch) for g in sorted(names)}
    seen = observations[observations["round"] <= round_]
    before = set(pareto_rows(seen[seen["round"] < round_], objectives)["candidate"])
    new = [c for c in pareto_rows(seen, objectives)["candidate"] if c not in before]
    shares["n_new_pareto"] = float(len(new))
    if new:
        source = batches.drop_duplicates("candidate").set_index("candidate")["generator"].to_dict()
        credited = Counter(source.get(c, TOLD) for c in new)
        shares |= {f"new_pareto_share/{g}": credited[g] / len(new) for g in sorted(names | set(credited))}
    return shares


def close_round(store: CampaignStore, setup: Any, round_: int, metrics: dict[str, float]) -> dict[str, float]:
    """Close round ``round_``: the Pareto set and hypervolume of measured values, and the
    round's summary row, whose metrics get what each generator supplied
    (:func:`generator_shares`). The one way a round closes.

    The values are those of rounds up to ``round_`` (a round closed late does not count
    later rounds' results). If the campaign's reference point is not fixed yet, this fixes
    it (see :func:`reference_point`).
    """
    observations = store.read("observations")
    observations = observations[observations["round"] <= round_]
    Y = to_max_space(raw_values(valid_observations(observations), setup.objectives), setup.objectives)
    ref = reference_point(store, setup, round_)
    summary = {
        "hypervolume": hypervolume(Y, ref),
        "n_pareto": int(pareto_mask(Y).sum()),
        "n_observations": int(observations["candidate"].nunique()),
        "oracle_calls": len(store.read("requests")),
    }
    shares = generator_shares(
        round_, store.read("batches"), store.read("proposals"), observations, setup.objectives
    )
    crash_point("step.record")  # round measured, summary not written
    store.append(
        "rounds",
        pd.DataFrame(
            [
                {
                    "round": round_,
                    "completed_at": datetime.now(UTC).isoformat(),
                    **summary,
                    "metrics": json.dumps(metrics | shares),
                }
            ]
        ),
    )
    return {k: float(v) for k, v in summary.items()}


def close_ready_rounds(store: CampaignStore, setup: Any) -> list[int]:
    """Close every open round whose results are all in, in round order (see
    :meth:`CampaignState.rounds_to_close`), with the metrics recorded with its batch.
    Returns the rounds closed now."""
    state = CampaignState.read(store)
    fixable = "ref_point" in store.meta or setup.config_ref_point is not None or state.n_valid > 0
    closed = state.rounds_to_close(setup.config, fixable)
    for round_ in closed:
        close_round(store, setup, round_, state.batch_metrics(round_))
    return closed


def pareto_table(store: CampaignStore, objectives: Sequence[Objective]) -> pd.DataFrame:
    """Measured candidates on the current Pareto front, raw objective values."""
    return pareto_rows(store.read("observations"), objectives)
