"""The measured data of a campaign as tensors in maximization space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import Tensor

from paretolab.data.objectives import Objective, to_max_space
from paretolab.data.pareto import pareto_mask
from paretolab.data.spaces import SearchSpace
from paretolab.data.store import TABLES

__all__ = [
    "Dataset",
    "dataset_from_observations",
    "latest_observations",
    "REPLICATE",
    "REPLICATES",
    "REPLICATE_LABEL",
    "current_rows",
    "pareto_rows",
    "raw_values",
    "replicate_noise",
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
    Yvar: Tensor | None = None
    """Noise variance of each ``Y`` ``n x m`` (the pooled replicate noise over the number of
    replicates), or ``None`` when no replicates show it (the proxy learns the noise)."""

    def __len__(self) -> int:
        return len(self.candidates)

    def subset(self, rows: Tensor) -> Dataset:
        """The measurements at ``rows`` (indices), failed candidates unchanged."""
        index = rows.tolist()
        return replace(
            self,
            candidates=[self.candidates[i] for i in index],
            X=self.X[rows.to(self.X.device)],
            Y=self.Y[rows.to(self.Y.device)],
            Yvar=None if self.Yvar is None else self.Yvar[rows.to(self.Yvar.device)],
        )


_RECORD_COLUMNS = frozenset(TABLES["observations"])
REPLICATE = "[replicate]"
"""Observation column: the row adds a replicate to the candidate's measurement."""
REPLICATE_LABEL = "[replicate label]"
"""Observation column: the lab's label of a replicate ("" if none)."""
REPLICATES = "[replicates]"
"""Column of :func:`latest_observations`: how many valid replicates its values average."""


def _has_replicates(observations: pd.DataFrame) -> bool:
    return REPLICATE in observations.columns and bool(observations[REPLICATE].any())


def current_rows(observations: pd.DataFrame) -> pd.DataFrame:
    """The rows of each candidate's current measurement: its latest row that is not a
    replicate, and the replicates recorded after it (earlier rows are history)."""
    if not _has_replicates(observations):
        return observations.drop_duplicates("candidate", keep="last")
    position = pd.Series(range(len(observations)), index=observations.index)
    starts = position[~observations[REPLICATE].astype(bool)].groupby(observations["candidate"]).max()
    start = observations["candidate"].map(starts).fillna(-1)
    return observations[position >= start]


def latest_observations(observations: pd.DataFrame) -> pd.DataFrame:
    """One row per measured candidate (a replaced value stays as history): its latest row,
    with replicates averaged: the objective values are the mean of the valid rows of its
    current measurement, valid if any is, and ``[replicates]`` counts the valid rows."""
    rows = current_rows(observations)
    if not _has_replicates(observations):  # one row a candidate already (one hashing pass)
        return rows.assign(**{REPLICATES: rows["valid"].astype(int)})
    latest = rows.drop_duplicates("candidate", keep="last")
    if len(rows) == len(latest):
        return latest.assign(**{REPLICATES: latest["valid"].astype(int)})
    latest = latest.set_index("candidate", drop=False)
    valid = rows[rows["valid"].astype(bool)]
    objectives = [c for c in rows.columns if c not in _RECORD_COLUMNS]
    means = valid.groupby("candidate")[objectives].mean()
    counts = valid.groupby("candidate").size()
    measured = latest.index.isin(means.index)
    latest.loc[measured, objectives] = means.loc[latest.index[measured]].to_numpy()
    latest.loc[measured, "valid"] = True
    latest.loc[measured, "reason"] = pd.NA
    latest[REPLICATES] = counts.reindex(latest.index).fillna(0).astype(int).to_numpy()
    return latest.reset_index(drop=True)


MIN_REPLICATE_DOF = 3
"""Fewest degrees of freedom (replicates beyond the first, summed over candidates) from which
the noise is taken as known; with fewer, the proxy learns it."""


def replicate_noise(observations: pd.DataFrame, objectives: Sequence[Objective]) -> Tensor | None:
    """The measurement noise variance ``m`` that replicates show, pooled over candidates
    (within-candidate mean square, sum (y - mean)^2 / sum (n_i - 1)), or ``None`` when no
    candidate has two valid replicates or they give fewer than ``MIN_REPLICATE_DOF`` degrees
    of freedom. Pooling assumes one noise level per objective: with
    two or three replicates a candidate's own variance is too noisy to use."""
    rows = current_rows(observations)
    valid = rows[rows["valid"].astype(bool)]
    names = [o.name for o in objectives]
    sizes = valid.groupby("candidate")["candidate"].transform("size")
    valid = valid[sizes >= 2]
    if valid.empty:
        return None
    groups = valid.groupby("candidate")[names]
    squares = ((valid[names] - groups.transform("mean")) ** 2).sum()
    dof = int((groups.size() - 1).sum())
    if dof < MIN_REPLICATE_DOF:
        return None
    return torch.tensor((squares / dof).to_numpy(dtype=float), dtype=torch.double)


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
    """Valid observations as a :class:`Dataset` (each candidate's current value: its latest,
    or the mean of its replicates), and the candidates whose latest measurement failed."""
    latest = latest_observations(observations)
    ok = latest["valid"].astype(bool)
    valid = latest[ok]
    raw = raw_values(valid, objectives)
    candidates = valid["candidate"].tolist()
    X = space.featurize(candidates).to(device) if candidates else torch.empty(0, 0, dtype=torch.double)
    failed = tuple(latest.loc[~ok, "candidate"])
    X_failed = space.featurize(list(failed)).to(device) if failed else None
    noise = replicate_noise(observations, objectives)
    Yvar = None
    if noise is not None and len(valid):
        counts = torch.tensor(valid[REPLICATES].to_numpy(dtype=float), dtype=torch.double)
        Yvar = (noise[None, :] / counts[:, None]).to(device)
    return Dataset(candidates, X, to_max_space(raw, objectives).to(device), failed, X_failed, Yvar)


def pareto_rows(observations: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """Valid observations on the Pareto front: round, candidate and raw objective values."""
    valid = valid_observations(observations)
    mask = pareto_mask(to_max_space(raw_values(valid, objectives), objectives)).numpy()
    columns = ["round", "candidate", *(o.name for o in objectives)]
    return valid.reindex(columns=columns).loc[mask].reset_index(drop=True)
