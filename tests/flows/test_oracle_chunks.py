"""Oracle chunks and their receipts: a chunk measured once is never charged again."""

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
    receipt_paths,
)
from paretolab.oracles.base import Objective, Oracle, OracleResult


class Tally(Oracle):
    """Counts the candidates it measures; a candidate named in ``bad`` fails (NaN)."""

    objectives = (Objective("a", "max", unit="g"), Objective("b", "min"))

    def __init__(self, space, bad=()) -> None:
        super().__init__(space)
        self.calls: list[str] = []
        self.bad = set(bad)

    def _evaluate(self, xs):
        self.calls += xs
        values = torch.tensor([[float(len(x)), 1.0] for x in xs], dtype=torch.double)
        values[[x in self.bad for x in xs]] = float("nan")
        return values


SPACE = GridSpace(2, 8)


def test_a_batch_is_split_into_chunks_in_order():
    assert chunks_of(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert chunks_of(list("abc"), None) == [["a", "b", "c"]] == chunks_of(list("abc"), 5)


def test_a_measured_chunk_is_returned_from_its_receipt_without_calling_the_oracle(tmp_path):
    oracle = Tally(SPACE, bad={"1,1"})
    xs = ["0,1", "1,1"]
    receipt = receipt_paths(tmp_path, "round3-attempt1", 1)[0]
    first = measure_chunk(oracle, xs, receipt)
    assert receipt.is_file() and oracle.calls == xs and first.reasons[1] is not None
    again = measure_chunk(oracle, xs, receipt)  # Dask ran the finished task again
    assert oracle.calls == xs  # not charged twice
    assert torch.equal(again.values.isnan(), first.values.isnan())
    assert torch.equal(again.values.nan_to_num(), first.values.nan_to_num())
    assert again.reasons == first.reasons
    # a receipt for other candidates, or a torn one, is not taken for this chunk
    measure_chunk(oracle, ["2,2"], receipt)
    receipt.write_text('{"candidates": ["2,')
    measure_chunk(oracle, ["2,2"], receipt)
    assert oracle.calls == [*xs, "2,2", "2,2"]


def test_chunks_join_in_order_and_receipts_go_once_recorded(tmp_path):
    oracle = Tally(SPACE)
    chunks = chunks_of(["0,0", "1,1", "2,2"], 2)
    receipts = receipt_paths(tmp_path, "round1-attempt1", len(chunks))
    joined = join_results(measure_here(oracle, chunks, receipts))
    assert isinstance(joined, OracleResult) and joined.values[:, 0].tolist() == [3.0, 3.0, 3.0]
    other = receipt_paths(tmp_path, "round10-attempt1", 1)[0]
    measure_chunk(oracle, ["3,3"], other)
    forget_receipts(tmp_path, "round1-")
    assert not receipts[0].parent.exists() and other.is_file()


def test_a_dask_address_needs_the_dask_runner():
    with pytest.raises(ValueError, match="set kind: dask"):
        TaskRunnerConfig(address="tcp://127.0.0.1:8786")
    assert TaskRunnerConfig(kind="dask", address="tcp://127.0.0.1:8786").oracle_chunk is None
