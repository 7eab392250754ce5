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
import pyarrow.parquet as pq

from paretolab.data.objectives import Objective
from paretolab.data.spaces import Check

__all__ = [
    "ID_COLUMN",
    "FAILURE_COLUMN",
    "FORMULA_STARTS",
    "REPLICATE_COLUMN",
    "ExpectedResults",
    "ResultsError",
    "ValidatedResults",
    "candidate_id",
    "neutralize_formula",
    "read_results_file",
    "request_frame",
    "restore_formula",
    "validate_results",
]

ID_COLUMN = "candidate_id"
FAILURE_COLUMN = "failure_reason"
"""Optional column: a non-empty reason records the candidate as failed (values left blank)."""
REPLICATE_COLUMN = "replicate"
"""Optional column (any content, e.g. 1, 2, 3): rows naming one candidate are replicates."""

_HEADER = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*(?:\[\s*(?P<unit>[^\[\]]*?)\s*\])?\s*$")
_ID = re.compile(r"^(?P<campaign>[0-9a-f]+)-r(?P<round>\d+)-(?P<position>\d+)$")
_MAX_LISTED = 20
_REPLICATES_HINT = (
    f" (replicate measurements? add a {REPLICATE_COLUMN!r} column, or pass --replicates / replicates=True)"
)


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
    replicate_labels: Mapping[str, Mapping[str, tuple[float, ...] | None]] = field(default_factory=dict)
    """Per candidate, the labelled replicates of its current measurement (label -> values,
    or None if that replicate failed): a row repeating one is not recorded again."""


@dataclass
class ValidatedResults:
    """Rows that passed validation: measured values (raw units) or failure reasons."""

    rounds: list[int] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    replicate: list[bool] = field(default_factory=list)
    """Per row: it adds a replicate to the candidate's measurement instead of replacing it."""
    labels: list[str] = field(default_factory=list)
    """Per row: the lab's label of the replicate (its ``replicate`` cell), "" if none."""
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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, "CSV injection")."""


def neutralize_formula(cell: str) -> str:
    """A text cell safe to open in a spreadsheet: one starting like a formula, or with a
    quote, gets a leading ``'`` (shown as text, not run); :func:`restore_formula` undoes it."""
    return "'" + cell if cell.startswith((*FORMULA_STARTS, "'")) else cell


def restore_formula(cell: str) -> str:
    """The cell :func:`neutralize_formula` was given (a spreadsheet that drops the quote
    on export gives it back as well)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith((*FORMULA_STARTS, "'")) else cell


def _refuse_repeated_columns(path: Path, header: list[str]) -> None:
    """A results file naming a column twice is ambiguous: refuse it, naming the column."""
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ResultsError(str(path), [f"column {c!r}: appears more than once" for c in twice])


def read_results_file(path: Path) -> pd.DataFrame:
    """A results file (``.csv`` or ``.parquet``) as a table of strings; ResultsError if unreadable."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as fh:
                _refuse_repeated_columns(path, [c.strip() for c in next(csv.reader(fh), [])])
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, skipinitialspace=True, skip_blank_lines=False
            ).map(restore_formula)
        elif suffix == ".parquet":
            _refuse_repeated_columns(path, [str(c).strip() for c in pq.read_schema(path).names])
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


@dataclass(frozen=True)
class _Row:
    """One row of a results table, as text, with its name in messages."""

    where: str
    label: object
    raw_id: str
    stated: str
    stated_round: str
    cells: dict[str, str]
    failure: str

    @classmethod
    def of(cls, row: Mapping[str, object], label: object, columns: Mapping[str, str]) -> _Row:
        return cls(
            f"row {label}",
            label,
            str(row.get(ID_COLUMN, "") or "").strip(),
            str(row.get("candidate", "") or "").strip(),
            str(row.get("round", "") or "").strip(),
            {name: str(row[column]).strip() for name, column in columns.items()},
            str(row.get(FAILURE_COLUMN, "") or "").strip(),
        )


@dataclass
class _Identified:
    """Which candidate a row is about: its round, canonical candidate and id ("" if it
    was never requested)."""

    round: int
    candidate: str
    raw_id: str


def _header_problems(frame: pd.DataFrame, by_candidate: bool) -> list[str]:
    """Missing identifying columns: ``candidate_id`` and ``round`` for a lab's file; either
    ``candidate_id`` or ``candidate`` for a program's table."""
    problems = []
    if not by_candidate and ID_COLUMN not in frame.columns:
        problems.append(f"column {ID_COLUMN!r}: missing (copy it from the request file)")
    if by_candidate and ID_COLUMN not in frame.columns and "candidate" not in frame.columns:
        problems.append(f"columns {ID_COLUMN!r} and 'candidate': both missing; give either")
    if not by_candidate and "round" not in frame.columns:
        problems.append("column 'round': missing (copy it from the request file)")
    return problems


def _by_candidate(
    row: _Row,
    expected: ExpectedResults,
    check: Callable[[str], Check],
    ids: Mapping[str, str],
    first_row: dict[str, object],
) -> _Identified | str:
    """A row that names its candidate (a program's table): a requested candidate gets its
    id, any other is a new measurement in ``expected.new_round``. A problem as text."""
    checked = check(row.stated)
    if checked.canonical is None:
        return f"{row.where}: column 'candidate': {row.stated!r} is not in the space ({checked.reason})"
    candidate = checked.canonical
    if candidate in first_row:
        duplicate = f"{row.stated!r} duplicates row {first_row[candidate]}"
        return f"{row.where}: column 'candidate': {duplicate}{_REPLICATES_HINT}"
    first_row[candidate] = row.label
    if candidate in ids:
        raw_id = ids[candidate]
        round_ = expected.requested[raw_id][0]
        if row.stated_round and _number(row.stated_round) != round_:
            return (
                f"{row.where}: column 'round': says {row.stated_round}, but {row.stated!r} was requested in "
                f"round {round_} ({raw_id})"
            )
        return _Identified(round_, candidate, raw_id)
    if expected.new_round is None:
        return f"{row.where}: column 'candidate': {row.stated!r} was never requested"
    return _Identified(expected.new_round, candidate, "")


def _by_id(
    row: _Row,
    expected: ExpectedResults,
    check: Callable[[str], Check] | None,
    first_row: dict[str, object],
) -> _Identified | str:
    """A row that names its candidate id (a lab's file, or a program's table copied from
    :meth:`ask`); ``round`` must agree (a lab's file must give it). A problem as text."""
    where, raw_id = row.where, row.raw_id
    match = _ID.match(raw_id)
    if match is None:
        return f"{where}: column {ID_COLUMN!r}: {raw_id!r} is not a paretolab candidate id"
    if match.group("campaign") != expected.campaign:
        return (
            f"{where}: column {ID_COLUMN!r}: {raw_id} belongs to another campaign "
            f"({match.group('campaign')}; this campaign is {expected.campaign})"
        )
    if raw_id not in expected.requested:
        return f"{where}: column {ID_COLUMN!r}: unknown candidate id {raw_id} (never requested)"
    round_, candidate = expected.requested[raw_id]
    if candidate in first_row:
        return (
            f"{where}: column {ID_COLUMN!r}: {raw_id} duplicates row {first_row[candidate]}{_REPLICATES_HINT}"
        )
    first_row[candidate] = row.label
    if (row.stated_round or check is None) and _number(row.stated_round) != round_:
        return (
            f"{where}: column 'round': says {row.stated_round or '(empty)'}, but {raw_id} was "
            f"requested in round {round_}"
        )
    if row.stated and row.stated != candidate and (check is None or check(row.stated).canonical != candidate):
        return f"{where}: column 'candidate': {row.stated!r}, but {raw_id} is {candidate!r}"
    return _Identified(round_, candidate, raw_id)


def _identify(
    row: _Row,
    expected: ExpectedResults,
    check: Callable[[str], Check] | None,
    ids: Mapping[str, str],
    first_row: dict[str, object],
) -> _Identified | str | None:
    """The candidate a row is about, a problem as text, or None for a row that names no
    candidate and gives nothing (an empty line)."""
    if not row.raw_id and not (check is not None and row.stated):
        if any(row.cells.values()) or row.failure:
            what = (
                f"columns {ID_COLUMN!r} and 'candidate': both"
                if check is not None
                else f"column {ID_COLUMN!r}:"
            )
            return f"{row.where}: {what} empty"
        return None
    if row.raw_id:
        return _by_id(row, expected, check, first_row)
    return _by_candidate(row, expected, check, ids, first_row)  # type: ignore[arg-type]


def _blank_row_problem(row: _Row, columns: Mapping[str, str]) -> str:
    return (
        f"{row.where}: columns {', '.join(repr(c) for c in columns.values())}: no values and no "
        f"{FAILURE_COLUMN!r}; give the values or a reason it failed, or leave the row out "
        "(the candidate stays pending)"
    )


def _row_values(
    row: _Row, expected: ExpectedResults, columns: Mapping[str, str]
) -> tuple[list[float], list[str]]:
    """The row's values in objective order (NaN for a failure), and its problems."""
    filled = [name for name, text in row.cells.items() if text]
    if row.failure:
        if filled:
            return [], [
                f"{row.where}: column {FAILURE_COLUMN!r}: given together with values in "
                f"{', '.join(columns[n] for n in filled)}; leave the values blank for a failed candidate"
            ]
        return [math.nan] * len(columns), []
    values, bad = [], []
    for objective in expected.objectives:
        text, column = row.cells[objective.name], columns[objective.name]
        value = _number(text) if text else None
        if not text:
            bad.append(
                f"{row.where}: column {column!r}: empty while other objectives are filled; "
                "fill every objective, or give a failure_reason"
            )
        elif value is None:
            bad.append(f"{row.where}: column {column!r}: {text!r} is not a number")
        elif not math.isfinite(value):
            bad.append(f"{row.where}: column {column!r}: {text!r} is not finite")
        values.append(math.nan if value is None else value)
    return values, bad


def _repeat_or_conflict(
    row: _Row,
    found: _Identified,
    values: list[float],
    expected: ExpectedResults,
    columns: Mapping[str, str],
    replace: bool,
) -> str | None:
    """For a candidate measured already: ``"unchanged"`` if the row repeats what is
    recorded, a problem if it brings new values without ``replace``, else None."""
    if found.candidate not in expected.measured:
        return None
    recorded = expected.measured[found.candidate]
    if (recorded is None and row.failure) or (recorded is not None and list(recorded) == values):
        return "unchanged"
    if recorded is None or replace:
        return None  # a failed candidate may be measured again; replace keeps the old as history
    name = f"{found.raw_id} ({found.candidate})" if found.raw_id else repr(found.candidate)
    if row.failure:
        what = f"column {FAILURE_COLUMN!r}: {name} was measured already"
    else:
        differ = [
            f"{columns[o.name]!r} {row.cells[o.name]} (recorded {r!r})"
            for o, v, r in zip(expected.objectives, values, recorded, strict=True)
            if v != r
        ]
        what = f"{name} is already measured; new values in {', '.join(differ)}"
    return (
        f"{row.where}: {what}; to replace it use --replace (tell(..., replace=True) in Python); "
        "the old value is kept in the history"
    )


def _cell_text(value: object) -> str:
    """A table cell as text: "" for an empty cell (None, NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _repeated_replicate(
    row: _Row,
    found: _Identified,
    label: str,
    values: list[float],
    expected: ExpectedResults,
    labelled: set[tuple[str, str]],
    replace: bool,
) -> str | None:
    """For a labelled replicate: a problem if the table gives the label twice, or if it is
    recorded with other values (without ``replace``); ``"unchanged"`` if recorded alike."""
    name = f"{found.raw_id} ({found.candidate})" if found.raw_id else repr(found.candidate)
    if (found.candidate, label) in labelled:
        return f"{row.where}: column {REPLICATE_COLUMN!r}: replicate {label!r} of {name} is given twice"
    labelled.add((found.candidate, label))
    recorded_labels = expected.replicate_labels.get(found.candidate, {})
    if replace or label not in recorded_labels:
        return None
    recorded = recorded_labels[label]
    if (recorded is None and row.failure) or (recorded is not None and list(recorded) == values):
        return "unchanged"
    return (
        f"{row.where}: column {REPLICATE_COLUMN!r}: replicate {label!r} of {name} is recorded already "
        "with other values; to replace the measurement use --replace (tell(..., replace=True) in Python)"
    )


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
    replicates: bool = False,
) -> ValidatedResults:
    """Check every row of a results table; raise ResultsError listing all problems.

    With ``replicates`` (or a ``replicate`` column in the table), several rows for one
    candidate are replicate measurements, each recorded; rows for a candidate measured
    before add to its replicates (with ``replace``, they replace its measurement). A
    replicate's label (its ``replicate`` cell) is kept: a row repeating a recorded label
    with the same values is skipped (a growing file sent again), with other values it is
    an error (unless ``replace``). Without the option or column, a candidate named twice
    is an error.

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
    by_candidate = check is not None
    problems = _header_problems(frame, by_candidate)
    columns = _objective_columns(frame, expected, problems)
    if problems:
        raise ResultsError(source, problems)
    ids = {candidate: cid for cid, (_, candidate) in expected.requested.items()}
    out = ValidatedResults()
    replicates = replicates or REPLICATE_COLUMN in frame.columns
    first_row: dict[str, object] = {}
    in_table: set[str] = set()
    labelled: set[tuple[str, str]] = set()
    for i, record in enumerate(frame.to_dict("records")):
        row = _Row.of(record, row_names[i] if row_names is not None else i + row_offset, columns)
        found = _identify(row, expected, check, ids, {} if replicates else first_row)
        if isinstance(found, str) or found is None:
            problems.extend([found] if found else [])
            continue
        if not any(row.cells.values()) and not row.failure:
            if blank_rows == "error":
                problems.append(_blank_row_problem(row, columns))
            else:
                out.pending += found.candidate not in expected.measured
            continue
        values, bad = _row_values(row, expected, columns)
        conflict = None
        if not bad and not replicates:
            conflict = _repeat_or_conflict(row, found, values, expected, columns, replace)
        if bad or conflict not in (None, "unchanged"):
            problems.extend(bad or [conflict])  # type: ignore[list-item]
            continue
        label = _cell_text(record.get(REPLICATE_COLUMN)) if replicates else ""
        if label:
            repeat = _repeated_replicate(row, found, label, values, expected, labelled, replace)
            if repeat not in (None, "unchanged"):
                problems.append(repeat)  # type: ignore[arg-type]
                continue
            conflict = repeat
        if conflict == "unchanged":
            out.unchanged += 1
            continue
        adds = found.candidate in in_table or (
            replicates and not replace and found.candidate in expected.measured
        )
        in_table.add(found.candidate)
        out.rounds.append(found.round)
        out.candidates.append(found.candidate)
        out.values.append(values)
        out.reasons.append(row.failure or None)
        out.replicate.append(adds)
        out.labels.append(label)
        if found.candidate in expected.measured and not adds and found.candidate not in out.replaced:
            out.replaced.append(found.candidate)
    if problems:
        raise ResultsError(source, problems)
    if not out.candidates and not out.unchanged:
        raise ResultsError(source, ["no results: every row's objective cells are blank"])
    return out
