"""Lab oracles: measurements that people make and send back hours or days later.

A round's batch becomes a *request*: a CSV and a parquet file with one row per candidate
(id, canonical candidate, round) and blank objective columns whose headers declare the
units. The campaign then waits without holding a process; results come back through
``paretolab submit``, a file dropped into the inbox folder, or the Prefect UI's form, and
are validated by :mod:`data.results` before anything is recorded.

Subclass :class:`LabOracle` and override :meth:`LabOracle.submit` to send requests
somewhere else (a LIMS, an e-mail); keep it idempotent per request id.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import Tensor

from paretolab.data.faults import crash_point
from paretolab.data.objectives import Objective, parse_objectives
from paretolab.data.results import neutralize_formula, request_frame
from paretolab.data.spaces import SearchSpace
from paretolab.data.store import atomic_write
from paretolab.oracles.base import Oracle, OracleError

__all__ = ["LabOracle", "LabRequest"]


@dataclass(frozen=True)
class LabRequest:
    """One round's candidates sent to the lab; ``request_id`` names the files."""

    request_id: str
    campaign: str
    round: int
    positions: list[int]
    candidates: list[str]

    def table(self, objectives: Sequence[Objective]) -> pd.DataFrame:
        """The request as a table with blank columns to fill in."""
        return request_frame(self.campaign, self.round, self.positions, self.candidates, objectives)


class LabOracle(Oracle):
    """Measurements by a lab: each batch is written as a request to a folder.

    ``objectives``: one ``{name, direction, unit}`` per measured quantity, e.g.
    ``{name: yield, direction: max, unit: "%"}``; results files must declare the same units.
    """

    objectives_help = "params.objectives: {name, direction, unit} each"
    asynchronous = True
    isolate_failures = False

    def __init__(
        self, space: SearchSpace, objectives: list[dict[str, str]], ref_point: list[float] | None = None
    ) -> None:
        super().__init__(space)
        self.objectives = parse_objectives(objectives)
        if ref_point is not None:
            if len(ref_point) != len(self.objectives):
                raise ValueError(f"ref_point: {len(ref_point)} values for {len(self.objectives)} objectives")
            self.ref_point = tuple(float(v) for v in ref_point)

    def _evaluate(self, xs: list[str]) -> Tensor:
        raise OracleError("a lab oracle answers asynchronously: its rounds submit requests instead")

    def request_files(self, request: LabRequest, folder: Path) -> tuple[Path, Path]:
        """Where ``request`` is written: ``<folder>/<request_id>.csv`` and ``.parquet``."""
        return folder / f"{request.request_id}.csv", folder / f"{request.request_id}.parquet"

    def submit(self, request: LabRequest, folder: Path) -> bool:
        """Write ``request`` to ``folder``; True if it was sent now, False if it already was.

        Idempotent per request id: the CSV (what the scientist opens) is written last and
        atomically, so once it exists the request counts as submitted and is never sent again.
        """
        csv_path, parquet_path = self.request_files(request, folder)
        if csv_path.exists():
            return False
        folder.mkdir(parents=True, exist_ok=True)
        table = request.table(self.objectives)
        atomic_write(parquet_path, lambda fh: table.to_parquet(fh, index=False))
        crash_point("lab.mid_submit")
        text = io.StringIO()  # for spreadsheets: no text cell may run as a formula
        table.map(lambda v: neutralize_formula(v) if isinstance(v, str) else v).to_csv(text, index=False)
        atomic_write(csv_path, lambda fh: fh.write(text.getvalue().encode()))
        return True
