import pytest
import torch
from botorch.test_functions.multi_objective import BraninCurrin

from paretolab.data.spaces import GridSpace, SequenceSpace
from paretolab.oracles.base import OracleError
from paretolab.oracles.registry import UnknownOracleError, available_oracles, oracle_class
from paretolab.oracles.synthetic import BraninCurrinOracle, DTLZ2Oracle
from tests.helpers.oracles import FlakyOracle, WrongShapeOracle


def test_branin_currin_matches_botorch_at_grid_points():
    space = GridSpace(2, 32)
    result = BraninCurrinOracle(space)(["0,0", "31,31", "10,20"])
    unit = torch.tensor([[0, 0], [31, 31], [10, 20]], dtype=torch.double) / 31
    assert torch.allclose(result.values, BraninCurrin()(unit))
    assert result.reasons == [None] * 3
    assert [o.direction for o in BraninCurrinOracle(space).objectives] == ["min", "min"]


def test_dtlz2_objectives_and_space_checks():
    oracle = DTLZ2Oracle(GridSpace(4, 8), num_objectives=3)
    assert oracle.num_objectives == 3 and oracle.ref_point == (1.1, 1.1, 1.1)
    assert oracle(["1,2,3,4"]).values.shape == (1, 3)
    with pytest.raises(ValueError, match="grid space with 2 dims"):
        BraninCurrinOracle(GridSpace(3, 8))
    with pytest.raises(ValueError, match="grid space"):
        BraninCurrinOracle(SequenceSpace("AB", 1, 2))


def test_invalid_and_non_finite_candidates_are_rows_with_reasons():
    oracle = FlakyOracle(GridSpace(2, 8))
    result = oracle(["0,0", "1,0", "2,0", "9,9", "4,4"])
    assert result.valid.tolist() == [True, False, False, False, True]
    assert "non-finite value for branin" in result.reasons[1]
    assert "non-finite value for currin" in result.reasons[2]
    assert "invalid candidate" in result.reasons[3]
    assert torch.isnan(result.values[1:4]).all() and torch.isfinite(result.values[[0, 4]]).all()


def test_a_call_that_raises_or_returns_the_wrong_shape_fails_as_a_whole():
    with pytest.raises(OracleError, match="RuntimeError: instrument error"):
        FlakyOracle(GridSpace(2, 8))(["0,0", "3,1"])
    with pytest.raises(OracleError, match=r"shape \(1, 2\), expected \(2, 2\)"):
        WrongShapeOracle(GridSpace(2, 8))(["0,0", "1,1"])


def test_registry_by_name_import_path_and_unknown():
    assert oracle_class("branin_currin") is BraninCurrinOracle
    assert oracle_class("tests.helpers.oracles:FlakyOracle") is FlakyOracle
    assert {"branin_currin", "dtlz2"} <= set(available_oracles())
    with pytest.raises(UnknownOracleError, match="unknown oracle 'nope'; available: branin_currin"):
        oracle_class("nope")
    with pytest.raises(UnknownOracleError, match="cannot import"):
        oracle_class("no_such_module:Thing")
    with pytest.raises(UnknownOracleError, match="not an Oracle subclass"):
        oracle_class("math:sqrt")


def test_hypergrid_oracle_matches_the_papers_normalized_functions():
    from paretolab.oracles.hypergrid import HyperGridOracle

    space = GridSpace(2, 32)
    oracle = HyperGridOracle(space, ["branin", "currin", "shubert", "beale"])
    everything = [f"{i},{j}" for i in range(32) for j in range(32)]
    values = oracle(everything).values
    assert values.shape == (1024, 4) and torch.isfinite(values).all()
    assert values.min() > -0.01 and values.max() < 1.01  # normalized by the papers' maxima
    # Branin's three global minima map to maxima near 1 on the grid
    assert values[:, 0].max() > 0.99
    assert [o.direction for o in oracle.objectives] == ["max"] * 4
    with pytest.raises(ValueError, match="unknown functions"):
        HyperGridOracle(space, ["rosenbrock"])


def test_ngram_oracle_counts_overlapping_motifs():
    from paretolab.data.spaces import SequenceSpace
    from paretolab.oracles.ngram import NGramOracle

    space = SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 4, 36)
    oracle = NGramOracle(space)
    values = oracle(["AVCAVC", "AVAVAVAV", "GGGG"]).values * 8
    assert values.tolist() == [[2, 2, 1], [4, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="not in it"):
        NGramOracle(space, motifs=["AB"])


def test_ngram_hypervolume_is_informative_without_a_sequence_holding_every_motif():
    from paretolab.data.pareto import hypervolume
    from paretolab.data.spaces import SequenceSpace
    from paretolab.oracles.ngram import NGramOracle

    oracle = NGramOracle(SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 4, 36))
    ref = torch.tensor(oracle.ref_point)
    none = hypervolume(oracle(["GGGG"]).values, ref)
    one_motif = hypervolume(oracle(["GAVG"]).values, ref)
    two_motifs = hypervolume(oracle(["GAVG", "GVCG"]).values, ref)
    assert 0 < none < one_motif < two_motifs
