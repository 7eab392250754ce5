"""The measured data of a campaign as tensors in maximization space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import pareto_mask
from paretolab.data.spaces import SearchSpace

__all__ = [
    "Dataset",
    "dataset_from_observations",
    "latest_observations",
    "pareto_rows",
    "raw_values",
    "valid_observations",
]


@dataclass(frozen=True)
class Dataset:
    """Finite measurements: ``candidates`` (canonical), ``X`` ``n x d``, ``Y`` ``n x m`` (max);
    and the candidates whose latest measurement failed (``failed``, features ``X_failed``
    ``f x d``), which say where not to look."""

    candidates: list[str]
    X: Tensor
    Y: Tensor
    failed: tuple[str, ...] = ()
    X_failed: Tensor | None = None

    def __len__(self) -> int:
        return len(self.candidates)


def latest_observations(observations: pd.DataFrame) -> pd.DataFrame:
    """One row per measured candidate, its latest (a replaced value stays as history)."""
    return observations.drop_duplicates("candidate", keep="last")


def valid_observations(observations: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finite measurement, one per candidate: its latest row, if that is valid."""
    latest = latest_observations(observations)
    return latest[latest["valid"]]


def raw_values(rows: pd.DataFrame, objectives: Sequence[Objective]) -> Tensor:
    """The objective columns of observation rows, ``n x m`` in raw units (double)."""
    names = [o.name for o in objectives]
    values = rows.reindex(columns=names).to_numpy(dtype=float)  # no rows yet: no objective columns
    return torch.tensor(values, dtype=torch.double).reshape(-1, len(names))


def dataset_from_observations(
    observations: pd.DataFrame,
    space: SearchSpace,
    objectives: Sequence[Objective],
    device: torch.device | None = None,
) -> Dataset:
    """Valid observations as a :class:`Dataset` (the latest value wins for a candidate), and
    the candidates whose latest measurement failed."""
    valid = valid_observations(observations)
    raw = raw_values(valid, objectives)
    candidates = valid["candidate"].tolist()
    X = space.featurize(candidates).to(device) if candidates else torch.empty(0, 0, dtype=torch.double)
    latest = latest_observations(observations)
    failed = tuple(latest.loc[~latest["valid"].astype(bool), "candidate"])
    X_failed = space.featurize(list(failed)).to(device) if failed else None
    return Dataset(candidates, X, to_max_space(raw, objectives).to(device), failed, X_failed)


def pareto_rows(observations: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """Valid observations on the Pareto front: round, candidate and raw objective values."""
    valid = valid_observations(observations)
    mask = pareto_mask(to_max_space(raw_values(valid, objectives), objectives)).numpy()
    columns = ["round", "candidate", *(o.name for o in objectives)]
    return valid.reindex(columns=columns).loc[mask].reset_index(drop=True)
