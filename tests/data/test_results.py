"""Lab results files: every rejection names the file, the row and the column; nothing partial."""

from __future__ import annotations

import csv
import math

import pandas as pd
import pytest

from paretolab.data.objectives import Objective
from paretolab.data.results import (
    FAILURE_COLUMN,
    ID_COLUMN,
    ExpectedResults,
    ResultsError,
    candidate_id,
    read_results_file,
    request_frame,
    validate_results,
)

CID = "c0ffee12"
OBJECTIVES = (Objective("branin", "min", "mm"), Objective("currin", "min", "s"))
HEADER = [ID_COLUMN, "candidate", "round", "branin [mm]", "currin [s]", FAILURE_COLUMN]
R0 = [f"{CID}-r0-000", f"{CID}-r0-001", f"{CID}-r0-002"]
R1 = f"{CID}-r1-000"
EXPECTED = ExpectedResults(
    CID,
    OBJECTIVES,
    {R0[0]: (0, "1,2"), R0[1]: (0, "3,4"), R0[2]: (0, "5,6"), R1: (1, "7,8")},
    {"5,6": (3.0, 4.0)},  # R0[2] was measured already
)


def _write(path, rows, header=HEADER):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _load(path, expected=EXPECTED, **kwargs):
    return validate_results(read_results_file(path), str(path), expected, **kwargs)


def _rejected(path, expected=EXPECTED, **kwargs) -> ResultsError:
    with pytest.raises(ResultsError) as info:
        _load(path, expected, **kwargs)
    error = info.value
    assert error.source == str(path)
    assert str(error).startswith(f"{path}: rejected, nothing was recorded")
    return error


def _row(cid=R0[0], candidate="1,2", round_="0", branin="1.5", currin="2.5", failure=""):
    return [cid, candidate, round_, branin, currin, failure]


# One row per rejection kind: (rows, the file row named, the column named, a phrase of the reason).
REJECTIONS = {
    "unknown id": ([_row(cid=f"{CID}-r0-099", candidate="")], 2, ID_COLUMN, "unknown candidate id"),
    "other campaign": ([_row(cid="deadbeef-r0-000")], 2, ID_COLUMN, "belongs to another campaign"),
    "not an id": ([_row(cid="sample 7")], 2, ID_COLUMN, "not a paretolab candidate id"),
    "empty id with values": ([_row(cid="", candidate="")], 2, ID_COLUMN, "empty"),
    "other round": ([_row(round_="1")], 2, "round", "requested in round 0"),
    "blank round": ([_row(round_="")], 2, "round", "says (empty)"),
    "other candidate": ([_row(candidate="9,9")], 2, "candidate", "'9,9'"),
    "duplicate id": ([_row(), _row(branin="3")], 3, ID_COLUMN, "duplicates row 2"),
    "not a number": ([_row(branin="12 mm")], 2, "branin [mm]", "'12 mm' is not a number"),
    "inf": ([_row(currin="inf")], 2, "currin [s]", "'inf' is not finite"),
    "-inf": ([_row(branin="-Infinity")], 2, "branin [mm]", "is not finite"),
    "nan": ([_row(branin="nan")], 2, "branin [mm]", "'nan' is not finite"),
    "NaN": ([_row(currin="NaN")], 2, "currin [s]", "'NaN' is not finite"),
    "values with failure": ([_row(failure="spilled")], 2, FAILURE_COLUMN, "given together with values"),
    "partial row": ([_row(currin="")], 2, "currin [s]", "empty while other objectives are filled"),
    "partial second row": (
        [_row(), _row(cid=R0[1], candidate="3,4", branin="")],
        3,
        "branin [mm]",
        "empty while other objectives are filled",
    ),
}


@pytest.mark.parametrize("kind", REJECTIONS)
def test_each_rejection_names_file_row_and_column(tmp_path, kind):
    rows, row, column, phrase = REJECTIONS[kind]
    error = _rejected(_write(tmp_path / "results.csv", rows))
    assert len(error.problems) == 1, error.problems
    (problem,) = error.problems
    assert problem.startswith(f"row {row}: column {column!r}: "), problem
    assert phrase in problem
    assert problem in str(error)


# Problems with the header: no row to name, but the column and the file.
HEADER_REJECTIONS = {
    "missing objective column": (
        [ID_COLUMN, "round", "branin [mm]"],
        "column 'currin [s]': missing (objective currin)",
    ),
    "wrong unit": (
        [ID_COLUMN, "round", "branin [cm]", "currin [s]"],
        "column 'branin [cm]': unit 'cm', but branin is measured in 'mm'",
    ),
    "no unit": ([ID_COLUMN, "round", "branin [mm]", "currin"], "column 'currin': declares no unit"),
    "empty unit": ([ID_COLUMN, "round", "branin []", "currin [s]"], "column 'branin []': declares no unit"),
    "objective twice": (
        [ID_COLUMN, "round", "branin [mm]", "branin [cm]", "currin [s]"],
        "columns 'branin [mm]', 'branin [cm]': objective branin appears 2 times",
    ),
    "missing id column": (["round", "branin [mm]", "currin [s]"], f"column {ID_COLUMN!r}: missing"),
    "missing round column": ([ID_COLUMN, "branin [mm]", "currin [s]"], "column 'round': missing"),
}


@pytest.mark.parametrize("kind", HEADER_REJECTIONS)
def test_header_problems_name_the_column(tmp_path, kind):
    header, problem = HEADER_REJECTIONS[kind]
    path = _write(tmp_path / "results.csv", [[R0[0], "0", "1", "2", "3"][: len(header)]], header)
    error = _rejected(path)
    assert error.problems == [problem] or problem in error.problems[0], error.problems


def test_unit_declared_for_a_unitless_objective_is_rejected(tmp_path):
    expected = ExpectedResults(CID, (Objective("branin"), OBJECTIVES[1]), EXPECTED.requested, frozenset())
    path = _write(tmp_path / "r.csv", [_row()])
    error = _rejected(path, expected)
    assert error.problems == ["column 'branin [mm]': declares unit 'mm', but branin has no unit"]
    # and without the unit it is accepted; spaces inside the brackets do not matter
    ok = _write(
        tmp_path / "ok.csv", [_row()[:5]], [ID_COLUMN, "candidate", "round", "branin", "currin [ s ]"]
    )
    assert _load(ok, expected).values == [[1.5, 2.5]]


def test_already_measured_is_rejected_unless_replace(tmp_path):
    path = _write(tmp_path / "r.csv", [_row(), _row(cid=R0[2], candidate="5,6", branin="7", currin="8")])
    error = _rejected(path)
    (problem,) = error.problems
    assert problem.startswith(f"row 3: {R0[2]} (5,6) is already measured") and "--replace" in problem
    assert "'branin [mm]' 7 (recorded 3.0)" in problem and "'currin [s]' 8 (recorded 4.0)" in problem

    replaced = _load(path, replace=True)
    assert replaced.candidates == ["1,2", "5,6"]
    assert replaced.values == [[1.5, 2.5], [7.0, 8.0]]
    assert replaced.replaced == ["5,6"]
    assert replaced.rounds == [0, 0]


def test_rows_repeating_recorded_values_are_skipped(tmp_path):
    """A request file submitted again with more rows filled in: the rows already recorded
    are skipped, the new ones taken, and a blank row of a measured candidate is not pending."""
    rows = [
        _row(),
        _row(cid=R0[1], candidate="3,4", branin="", currin=""),
        _row(cid=R0[2], candidate="5,6", branin="3", currin="4.0"),
    ]
    validated = _load(_write(tmp_path / "r.csv", rows))
    assert validated.candidates == ["1,2"] and validated.unchanged == 1 and validated.pending == 1
    again = _write(tmp_path / "again.csv", [_row(cid=R0[2], candidate="5,6", branin="3", currin="4")])
    assert _load(again).unchanged == 1 and not _load(again).candidates


def test_a_failed_candidate_may_be_measured_again(tmp_path):
    expected = ExpectedResults(CID, OBJECTIVES, EXPECTED.requested, {"5,6": None})
    path = _write(tmp_path / "r.csv", [_row(cid=R0[2], candidate="5,6", branin="7", currin="8")])
    validated = _load(path, expected)
    assert validated.values == [[7.0, 8.0]] and validated.replaced == ["5,6"]


def test_blank_rows_stay_pending_and_failures_are_accepted(tmp_path):
    rows = [
        _row(branin=" 1e-3 ", currin="-2"),  # spaces around numbers are fine
        _row(cid=R0[1], candidate="3,4", branin="", currin=""),  # not measured yet
        _row(cid=R1, candidate="", round_="1", branin="", currin="", failure="  clogged column "),
        ["", "", "", "", "", ""],  # a blank line from a spreadsheet
    ]
    validated = _load(_write(tmp_path / "r.csv", rows))
    assert len(validated) == 2
    assert validated.pending == 1
    assert validated.candidates == ["1,2", "7,8"]
    assert validated.rounds == [0, 1]
    assert validated.values[0] == [0.001, -2.0]
    assert all(math.isnan(v) for v in validated.values[1])
    assert validated.reasons == [None, "clogged column"]
    assert validated.replaced == []


def test_a_file_with_only_blank_rows_is_rejected(tmp_path):
    rows = [_row(branin="", currin=""), _row(cid=R0[1], candidate="3,4", branin="", currin="")]
    error = _rejected(_write(tmp_path / "r.csv", rows))
    assert error.problems == ["no results: every row's objective cells are blank"]
    assert _rejected(_write(tmp_path / "empty.csv", [])).problems == error.problems


def test_every_problem_is_reported_together(tmp_path):
    rows = [
        _row(branin="x"),
        _row(cid=R0[1], candidate="3,4"),  # fine, but the file is rejected as a whole
        _row(cid=f"{CID}-r7-000", candidate=""),
        _row(cid=R1, candidate="7,8", round_="0", branin="inf"),
        _row(cid=R0[2], candidate="5,6"),
    ]
    error = _rejected(_write(tmp_path / "r.csv", rows))
    assert [p.split(":")[0] for p in error.problems] == ["row 2", "row 4", "row 5", "row 6"]
    assert "'x' is not a number" in error.problems[0]
    assert "unknown candidate id" in error.problems[1]
    assert "requested in round 1" in error.problems[2]
    assert "already measured" in error.problems[3]
    assert "(4 problem(s))" in str(error)


def test_long_problem_lists_are_shortened(tmp_path):
    rows = [_row(cid=f"{CID}-r0-{i:03d}", candidate="") for i in range(100, 130)]
    error = _rejected(_write(tmp_path / "r.csv", rows))
    assert len(error.problems) == 30
    assert "row 21:" in str(error) and "row 22:" not in str(error)
    assert "... and 10 more" in str(error)


def test_row_numbers_count_blank_lines_in_the_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(",".join(HEADER) + "\n" + f'{R0[0]},"1,2",0,1,2,\n' + "\n" + f'{R0[1]},"3,4",0,abc,2,\n')
    (problem,) = _rejected(path).problems
    assert problem.startswith("row 4: column 'branin [mm]'"), problem


def test_request_frame_round_trips_through_csv_and_parquet(tmp_path):
    frame = request_frame(CID, 0, [0, 1, 2], ["1,2", "3,4", "5,6"], OBJECTIVES)
    assert list(frame.columns) == [
        ID_COLUMN,
        "candidate",
        "round",
        "branin [mm]",
        "currin [s]",
        FAILURE_COLUMN,
    ]
    assert frame[ID_COLUMN].tolist() == R0 == [candidate_id(CID, 0, p) for p in range(3)]
    assert frame["round"].tolist() == [0, 0, 0]
    assert frame["branin [mm]"].isna().all() and (frame[FAILURE_COLUMN] == "").all()
    assert candidate_id(CID, 12, 1234) == f"{CID}-r12-1234"

    frame.loc[0, ["branin [mm]", "currin [s]"]] = [3.25, 0.5]
    frame.loc[1, FAILURE_COLUMN] = "broke"
    expected = ExpectedResults(CID, OBJECTIVES, EXPECTED.requested, frozenset())
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_parquet(tmp_path / "r.parquet", index=False)
    for path in (tmp_path / "r.csv", tmp_path / "r.parquet"):
        validated = _load(path, expected)
        assert validated.candidates == ["1,2", "3,4"], path
        assert validated.values[0] == [3.25, 0.5]
        assert math.isnan(validated.values[1][0]) and validated.reasons == [None, "broke"]
        assert validated.pending == 1

    # parquet has no header row: its first data row is row 1
    frame.loc[2, ["branin [mm]", "currin [s]"]] = [math.inf, 1.0]
    frame.to_parquet(tmp_path / "bad.parquet", index=False)
    table = read_results_file(tmp_path / "bad.parquet")
    with pytest.raises(ResultsError) as info:
        validate_results(table, "bad.parquet", expected, row_offset=1)
    assert info.value.problems == ["row 3: column 'branin [mm]': 'inf' is not finite"]


def test_a_bom_in_the_csv_header_is_tolerated(tmp_path):
    path = tmp_path / "excel.csv"
    text = ",".join(HEADER) + "\r\n" + f'{R0[0]},"1,2",0,1.5,2.5,\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_results_file(path).columns[0] == ID_COLUMN
    assert _load(path).values == [[1.5, 2.5]]


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("garbage.parquet", b"PAR1 this is not a parquet file", "unreadable"),
        ("empty.csv", b"", "unreadable"),
        ("latin1.csv", "candidate_id,branin [\xb5m]\n".encode("latin-1"), "unreadable"),
        ("results.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
        ("results", b"a,b\n", "unsupported file type '(none)'"),
    ],
)
def test_unreadable_files_give_results_error(tmp_path, name, content, phrase):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ResultsError) as info:
        read_results_file(path)
    assert info.value.source == str(path)
    assert phrase in info.value.problems[0]
    assert str(info.value).startswith(str(path))


def test_a_missing_file_gives_results_error(tmp_path):
    with pytest.raises(ResultsError, match="file not found"):
        read_results_file(tmp_path / "nope.csv")


def test_a_csv_that_is_not_a_results_table_is_rejected(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_bytes(b"\x00\x01\x02 hello; world\n\xff\xfe\n")
    with pytest.raises(ResultsError) as info:
        _load(path)
    assert info.value.source == str(path)


def test_parquet_strings_and_numbers_are_read_alike(tmp_path):
    table = pd.DataFrame(
        {ID_COLUMN: [R0[0], R0[1]], "round": [0, 0], "branin [mm]": [1.0, None], "currin [s]": [2.0, None]}
    )
    table.to_parquet(tmp_path / "r.parquet", index=False)
    read = read_results_file(tmp_path / "r.parquet")
    assert read.to_dict("records")[1] == {ID_COLUMN: R0[1], "round": "0", "branin [mm]": "", "currin [s]": ""}
    validated = _load(tmp_path / "r.parquet")
    assert validated.values == [[1.0, 2.0]] and validated.pending == 1


def test_a_column_given_twice_is_refused(tmp_path):
    header = [ID_COLUMN, "candidate", "round", "branin [mm]", "currin [s]", "branin [mm]"]
    error = _rejected(_write(tmp_path / "r.csv", [[R0[0], "1,2", "0", "1", "2", "3"]], header))
    assert error.problems == ["column 'branin [mm]': appears more than once"]


def test_a_column_given_twice_in_parquet_is_refused_by_name(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [[R0[0]], ["1,2"], [0], [1.0], [2.0], [3.0]]
    names = [ID_COLUMN, "candidate", "round", "branin [mm]", "currin [s]", "branin [mm]"]
    pq.write_table(pa.table([pa.array(c) for c in columns], names=names), tmp_path / "r.parquet")
    with pytest.raises(ResultsError) as info:
        read_results_file(tmp_path / "r.parquet")
    assert info.value.problems == ["column 'branin [mm]': appears more than once"]


@pytest.mark.parametrize("text", ["1_000", "١٢", "0x10", "1,5", "--1"])
def test_only_plain_decimal_numbers_are_numbers(tmp_path, text):
    error = _rejected(_write(tmp_path / "r.csv", [_row(branin=text)]))
    assert error.problems == [f"row 2: column 'branin [mm]': {text!r} is not a number"]


def test_request_csvs_neutralize_spreadsheet_formulas_and_read_back_unchanged(tmp_path):
    from paretolab.data.spaces import SequenceSpace
    from paretolab.oracles.lab import LabOracle, LabRequest

    oracle = LabOracle(SequenceSpace("-=+@AB'", 1, 6), [{"name": "kd", "direction": "min", "unit": "nM"}])
    candidates = ["-AB", "=1+2", "+A", "@B", "'=A", "'A", "AB-"]
    request = LabRequest("round0-lab", "c1", 0, list(range(len(candidates))), candidates)
    assert oracle.submit(request, tmp_path)
    csv_path, _ = oracle.request_files(request, tmp_path)
    cells = [row[1] for row in csv.reader(csv_path.read_text().splitlines())][1:]
    assert cells == ["'-AB", "'=1+2", "'+A", "'@B", "''=A", "''A", "AB-"]  # none starts a formula
    assert read_results_file(csv_path)["candidate"].tolist() == candidates
    # a spreadsheet that drops the quotes on export gives the same candidates
    exported = tmp_path / "exported.csv"
    exported.write_text(
        "\n".join(["candidate", *[c.lstrip("'") if c[:1] in "=+-@" else c for c in candidates]])
    )
    assert read_results_file(exported)["candidate"].tolist()[:4] == candidates[:4]
