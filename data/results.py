"""Lab request and results files: what a scientist receives and sends back.

A request lists the candidates of one round with empty objective columns whose headers
declare the unit (``yield [%]``). A results file is that table with values filled in;
:func:`validate_results` checks all of it before anything is recorded, and a file with any
problem is rejected as a whole with every problem named by file, row and column.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from paretolab.data.objectives import Objective
from paretolab.data.spaces import Check

__all__ = [
    "ID_COLUMN",
    "FAILURE_COLUMN",
    "ExpectedResults",
    "ResultsError",
    "ValidatedResults",
    "candidate_id",
    "read_results_file",
    "request_frame",
    "validate_results",
]

ID_COLUMN = "candidate_id"
FAILURE_COLUMN = "failure_reason"
"""Optional column: a non-empty reason records the candidate as failed (values left blank)."""

_HEADER = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*(?:\[\s*(?P<unit>[^\[\]]*?)\s*\])?\s*$")
_ID = re.compile(r"^(?P<campaign>[0-9a-f]+)-r(?P<round>\d+)-(?P<position>\d+)$")
_MAX_LISTED = 20


def candidate_id(campaign: str, round_: int, position: int) -> str:
    """The id a lab sees for the candidate at ``position`` of round ``round_``'s batch."""
    return f"{campaign}-r{round_}-{position:03d}"


class ResultsError(ValueError):
    """A results file was rejected; ``problems`` lists each one (file, row, column)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown) + (f"\n  - ... and {more} more" if more else "")
        super().__init__(
            f"{source}: rejected, nothing was recorded ({len(self.problems)} problem(s)):\n{lines}"
        )


@dataclass(frozen=True)
class ExpectedResults:
    """What a campaign can accept: its id, objectives, the candidates it sent to the lab
    (id -> (round, canonical candidate)) and those already measured (candidate -> its
    recorded raw values, or None if it was recorded as failed). ``new_round`` is the round
    that results for candidates never requested are recorded in (None: not accepted)."""

    campaign: str
    objectives: tuple[Objective, ...]
    requested: Mapping[str, tuple[int, str]]
    measured: Mapping[str, tuple[float, ...] | None]
    new_round: int | None = None


@dataclass
class ValidatedResults:
    """Rows that passed validation: measured values (raw units) or failure reasons."""

    rounds: list[int] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    pending: int = 0
    unchanged: int = 0
    """Rows that repeat what is recorded (a request file submitted again, more filled in)."""

    def __len__(self) -> int:
        return len(self.candidates)


def request_frame(
    campaign: str,
    round_: int,
    positions: Sequence[int],
    candidates: Sequence[str],
    objectives: Sequence[Objective],
) -> pd.DataFrame:
    """The request table: ids, candidates, round, and blank columns to fill in."""
    frame = pd.DataFrame(
        {
            ID_COLUMN: [candidate_id(campaign, round_, p) for p in positions],
            "candidate": list(candidates),
            "round": round_,
        }
    )
    for objective in objectives:
        frame[objective.column] = pd.Series([math.nan] * len(frame), dtype="float64")
    frame[FAILURE_COLUMN] = pd.Series([""] * len(frame), dtype="string")
    return frame


def read_results_file(path: Path) -> pd.DataFrame:
    """A results file (``.csv`` or ``.parquet``) as a table of strings; ResultsError if unreadable."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                header = [c.strip() for c in next(csv.reader(fh), [])]
            twice = sorted({c for c in header if header.count(c) > 1})
            if twice:
                raise ResultsError(str(path), [f"column {c!r}: appears more than once" for c in twice])
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
            )
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
            frame = frame.astype(object).where(frame.notna(), "").astype(str)
        else:
            raise ResultsError(
                str(path), [f"unsupported file type {suffix or '(none)'!r}; use .csv or .parquet"]
            )
    except ResultsError:
        raise
    except FileNotFoundError:
        raise ResultsError(str(path), ["file not found"]) from None
    except Exception as exc:  # pandas and pyarrow raise many types for malformed files
        raise ResultsError(str(path), [f"unreadable: {type(exc).__name__}: {exc}"]) from None
    frame.columns = [str(c).lstrip("\ufeff").strip() for c in frame.columns]
    return frame


def _objective_columns(frame: pd.DataFrame, expected: ExpectedResults, problems: list[str]) -> dict[str, str]:
    """Map objective name -> the file's column, checking the declared units."""
    found: dict[str, list[tuple[str, str | None]]] = {}
    for column in frame.columns:
        match = _HEADER.match(column)
        if match:
            found.setdefault(match.group("name"), []).append((column, match.group("unit")))
    columns: dict[str, str] = {}
    for objective in expected.objectives:
        given = found.get(objective.name, [])
        if not given:
            problems.append(f"column {objective.column!r}: missing (objective {objective.name})")
            continue
        if len(given) > 1:
            problems.append(
                f"columns {', '.join(repr(c) for c, _ in given)}: objective {objective.name} appears "
                f"{len(given)} times"
            )
            continue
        column, unit = given[0]
        unit = unit or None
        if unit != objective.unit:
            if objective.unit is None:
                problems.append(
                    f"column {column!r}: declares unit {unit!r}, but {objective.name} has no unit"
                )
            elif unit is None:
                problems.append(
                    f"column {column!r}: declares no unit; {objective.name} is measured in "
                    f"{objective.unit} (header {objective.column!r})"
                )
            else:
                problems.append(
                    f"column {column!r}: unit {unit!r}, but {objective.name} is measured in "
                    f"{objective.unit!r}; convert the values and write the header {objective.column!r}"
                )
            continue
        columns[objective.name] = column
    return columns


_NUMBER = re.compile(
    r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$|^[+-]?(?:inf|infinity|nan)$", re.IGNORECASE
)


def _number(text: str) -> float | None:
    """A plain decimal number (or inf/nan, which are then refused as not finite)."""
    return float(text) if _NUMBER.match(text) else None


def validate_results(
    frame: pd.DataFrame,
    source: str,
    expected: ExpectedResults,
    *,
    replace: bool = False,
    row_offset: int = 2,
    blank_rows: Literal["pending", "error"] = "pending",
    check: Callable[[str], Check] | None = None,
    row_names: Sequence[object] | None = None,
) -> ValidatedResults:
    """Check every row of a results table; raise ResultsError listing all problems.

    Rows whose objective cells are all blank (and no failure reason) stay pending, or are
    an error with ``blank_rows="error"``; rows that repeat what is recorded are skipped.
    New values for a candidate that is already measured are an error unless ``replace``
    (the old value stays in the history); a candidate recorded as failed may be measured
    again. ``row_offset`` is the file's row number of the first data row (2 for a CSV with
    its header on row 1); ``row_names`` name the rows instead (a DataFrame's index).

    With ``check`` (the space's candidate check), a row may name its candidate instead of
    its id, and the ``round`` column is optional: a requested candidate is matched to its
    id, any other is a new measurement recorded in ``expected.new_round``.
    """
    problems: list[str] = []
    by_candidate = check is not None
    if not by_candidate and ID_COLUMN not in frame.columns:
        problems.append(f"column {ID_COLUMN!r}: missing (copy it from the request file)")
    if by_candidate and ID_COLUMN not in frame.columns and "candidate" not in frame.columns:
        problems.append(f"columns {ID_COLUMN!r} and 'candidate': both missing; give either")
    if not by_candidate and "round" not in frame.columns:
        problems.append("column 'round': missing (copy it from the request file)")
    columns = _objective_columns(frame, expected, problems)
    if problems:
        raise ResultsError(source, problems)

    ids = {candidate: cid for cid, (_, candidate) in expected.requested.items()}
    out = ValidatedResults()
    first_row: dict[str, object] = {}
    for i, row in enumerate(frame.to_dict("records")):
        label = row_names[i] if row_names is not None else i + row_offset
        where = f"row {label}"
        raw_id = str(row.get(ID_COLUMN, "") or "").strip()
        stated = str(row.get("candidate", "") or "").strip()
        cells = {name: str(row[column]).strip() for name, column in columns.items()}
        failure = str(row.get(FAILURE_COLUMN, "") or "").strip()
        stated_round = str(row.get("round", "") or "").strip()
        if not raw_id and not (by_candidate and stated):
            if any(cells.values()) or failure:
                what = (
                    f"columns {ID_COLUMN!r} and 'candidate': both"
                    if by_candidate
                    else f"column {ID_COLUMN!r}:"
                )
                problems.append(f"{where}: {what} empty")
            continue
        if not raw_id:
            checked = check(stated)  # type: ignore[misc]
            if checked.canonical is None:
                problems.append(
                    f"{where}: column 'candidate': {stated!r} is not in the space ({checked.reason})"
                )
                continue
            candidate = checked.canonical
            if candidate in first_row:
                problems.append(
                    f"{where}: column 'candidate': {stated!r} duplicates row {first_row[candidate]}"
                )
                continue
            first_row[candidate] = label
            if candidate in ids:
                raw_id = ids[candidate]
                round_ = expected.requested[raw_id][0]
                if stated_round and _number(stated_round) != round_:
                    problems.append(
                        f"{where}: column 'round': says {stated_round}, but {stated!r} was requested in "
                        f"round {round_} ({raw_id})"
                    )
                    continue
            elif expected.new_round is None:
                problems.append(f"{where}: column 'candidate': {stated!r} was never requested")
                continue
            else:
                round_ = expected.new_round
        else:
            match = _ID.match(raw_id)
            if match is None:
                problems.append(f"{where}: column {ID_COLUMN!r}: {raw_id!r} is not a paretolab candidate id")
                continue
            if match.group("campaign") != expected.campaign:
                problems.append(
                    f"{where}: column {ID_COLUMN!r}: {raw_id} belongs to another campaign "
                    f"({match.group('campaign')}; this campaign is {expected.campaign})"
                )
                continue
            if raw_id not in expected.requested:
                problems.append(
                    f"{where}: column {ID_COLUMN!r}: unknown candidate id {raw_id} (never requested)"
                )
                continue
            round_, candidate = expected.requested[raw_id]
            if candidate in first_row:
                problems.append(
                    f"{where}: column {ID_COLUMN!r}: {raw_id} duplicates row {first_row[candidate]}"
                )
                continue
            first_row[candidate] = label
            if (stated_round or not by_candidate) and _number(stated_round) != round_:
                problems.append(
                    f"{where}: column 'round': says {stated_round or '(empty)'}, but {raw_id} was "
                    f"requested in round {round_}"
                )
                continue
            if stated and stated != candidate and (check is None or check(stated).canonical != candidate):
                problems.append(f"{where}: column 'candidate': {stated!r}, but {raw_id} is {candidate!r}")
                continue
        filled = [name for name, text in cells.items() if text]
        if not filled and not failure:
            if blank_rows == "error":
                problems.append(
                    f"{where}: columns {', '.join(repr(c) for c in columns.values())}: no values and no "
                    f"{FAILURE_COLUMN!r}; give the values or a reason it failed, or leave the row out "
                    "(the candidate stays pending)"
                )
            else:
                out.pending += candidate not in expected.measured
            continue
        if failure:
            if filled:
                problems.append(
                    f"{where}: column {FAILURE_COLUMN!r}: given together with values in "
                    f"{', '.join(columns[n] for n in filled)}; leave the values blank for a failed candidate"
                )
                continue
            values = [math.nan] * len(columns)
        else:
            values = []
            bad = []
            for objective in expected.objectives:
                text, column = cells[objective.name], columns[objective.name]
                value = _number(text) if text else None
                if not text:
                    bad.append(
                        f"{where}: column {column!r}: empty while other objectives are filled; "
                        "fill every objective, or give a failure_reason"
                    )
                elif value is None:
                    bad.append(f"{where}: column {column!r}: {text!r} is not a number")
                elif not math.isfinite(value):
                    bad.append(f"{where}: column {column!r}: {text!r} is not finite")
                values.append(math.nan if value is None else value)
            if bad:
                problems.extend(bad)
                continue
        if candidate in expected.measured:
            recorded = expected.measured[candidate]
            if (recorded is None and failure) or (recorded is not None and list(recorded) == values):
                out.unchanged += 1
                continue
            if recorded is not None and not replace:
                name = f"{raw_id} ({candidate})" if raw_id else repr(candidate)
                if failure:
                    what = f"column {FAILURE_COLUMN!r}: {name} was measured already"
                else:
                    differ = [
                        f"{columns[o.name]!r} {cells[o.name]} (recorded {r!r})"
                        for o, v, r in zip(expected.objectives, values, recorded, strict=True)
                        if v != r
                    ]
                    what = f"{name} is already measured; new values in {', '.join(differ)}"
                problems.append(
                    f"{where}: {what}; to replace it use --replace (tell(..., replace=True) in Python); "
                    "the old value is kept in the history"
                )
                continue
        out.rounds.append(round_)
        out.candidates.append(candidate)
        out.values.append(values)
        out.reasons.append(failure or None)
        if candidate in expected.measured:
            out.replaced.append(candidate)
    if problems:
        raise ResultsError(source, problems)
    if not out.candidates and not out.unchanged:
        raise ResultsError(source, ["no results: every row's objective cells are blank"])
    return out
