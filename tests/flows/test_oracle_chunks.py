"""Oracle chunks and their receipts: a candidate measured once is never charged again,
however it is sent again (a re-run chunk, a resend one by one, a new attempt)."""

from __future__ import annotations

import pytest
import torch

from paretolab.data.spaces import GridSpace
from paretolab.flows.config import TaskRunnerConfig
from paretolab.flows.oracle_chunks import (
    chunks_of,
    forget_receipts,
    join_results,
    measure_chunk,
    measure_here,
    receipt_folder,
)
from paretolab.oracles.base import Objective, Oracle, OracleResult


class Tally(Oracle):
    """Counts the candidates it measures; a candidate named in ``bad`` fails (NaN)."""

    objectives = (Objective("a", "max", unit="g"), Objective("b", "min"))

    def __init__(self, space, bad=()) -> None:
        super().__init__(space)
        self.calls: list[list[str]] = []
        self.bad = set(bad)

    def _evaluate(self, xs):
        self.calls.append(list(xs))
        values = torch.tensor([[float(len(x)), 1.0] for x in xs], dtype=torch.double)
        values[[x in self.bad for x in xs]] = float("nan")
        return values


SPACE = GridSpace(2, 8)


def test_a_batch_is_split_into_chunks_in_order():
    assert chunks_of(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert chunks_of(list("abc"), None) == [["a", "b", "c"]] == chunks_of(list("abc"), 5)


def test_a_measured_candidate_is_returned_from_its_receipt_without_calling_the_oracle(tmp_path):
    oracle = Tally(SPACE, bad={"1,1"})
    folder = receipt_folder(tmp_path, 3)
    xs = ["0,1", "1,1"]
    first = measure_chunk(oracle, xs, folder)
    assert oracle.calls == [xs] and first.reasons[1] is not None
    again = measure_chunk(oracle, xs, folder)  # Dask ran the finished task again
    assert oracle.calls == [xs]  # not charged twice
    assert torch.equal(again.values.isnan(), first.values.isnan())
    assert torch.equal(again.values.nan_to_num(), first.values.nan_to_num())
    assert again.reasons == first.reasons
    # resent one by one, or with new candidates: only the new ones are measured
    measure_chunk(oracle, ["1,1"], folder)
    mixed = measure_chunk(oracle, ["2,2", "0,1"], folder)
    assert oracle.calls == [xs, ["2,2"]] and mixed.values[1].tolist() == first.values[0].tolist()
    # a torn receipt is not taken for a measurement
    torn = next(p for p in folder.iterdir() if '"2,2"' in p.read_text())
    torn.write_text('{"candidate": "2,')
    measure_chunk(oracle, ["2,2"], folder)
    assert oracle.calls[-1] == ["2,2"]


def test_chunks_join_in_order_and_a_rounds_receipts_go_once_recorded(tmp_path):
    oracle = Tally(SPACE)
    joined = join_results(
        measure_here(oracle, chunks_of(["0,0", "1,1", "2,2"], 2), receipt_folder(tmp_path, 1))
    )
    assert isinstance(joined, OracleResult) and joined.values[:, 0].tolist() == [3.0, 3.0, 3.0]
    assert oracle.calls == [["0,0", "1,1"], ["2,2"]]
    measure_chunk(oracle, ["3,3"], receipt_folder(tmp_path, 10))
    forget_receipts(tmp_path, 1)
    assert not receipt_folder(tmp_path, 1).exists() and any(receipt_folder(tmp_path, 10).iterdir())
    assert receipt_folder("relative", 1).is_absolute()  # what workers elsewhere can reach


def test_a_dask_address_needs_the_dask_runner():
    with pytest.raises(ValueError, match="set kind: dask"):
        TaskRunnerConfig(address="tcp://127.0.0.1:8786")
    assert TaskRunnerConfig(kind="dask", address="tcp://127.0.0.1:8786").oracle_chunk is None
