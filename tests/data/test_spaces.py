import pytest
import torch

from paretolab.data.spaces import PAD, GridSpace, SequenceSpace


def test_grid_canonicalizes_and_rejects_with_reasons():
    space = GridSpace(dims=2, levels=32)
    assert space.canonicalize(["3, 17", "03,7", "31,31"]) == ["3,17", "3,7", "31,31"]
    cases = [
        ("32,1", "outside"),
        ("1", "expected 2"),
        ("a,b", "integers"),
        ("-1,2", "integers"),
        ("²,1", "integers"),
    ]
    for bad, reason in cases:
        check = space.check(bad)
        assert check.canonical is None and reason in check.reason


def test_grid_features_are_unit_coordinates():
    space = GridSpace(dims=3, levels=5)
    X = space.featurize(["0,2,4"])
    assert torch.equal(X, torch.tensor([[0.0, 0.5, 1.0]], dtype=torch.double))


def test_sequence_space_checks_length_and_alphabet():
    space = SequenceSpace("ACGT", min_length=2, max_length=4)
    assert space.check("ACG").canonical == "ACG"
    assert "length 5" in space.check("ACGTA").reason
    assert "length 1" in space.check("A").reason
    assert "'X'" in space.check("AXG").reason
    assert "not a string" in space.check(None).reason  # type: ignore[arg-type]


def test_sequence_one_hot_pads_with_zeros():
    space = SequenceSpace("AB", min_length=1, max_length=3)
    X = space.featurize(["AB", "B"])
    assert X.shape == (2, 6)
    assert X[0].tolist() == [1, 0, 0, 1, 0, 0]
    assert X[1].tolist() == [0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize("space", [GridSpace(3, 7), SequenceSpace("ACDE", 2, 6)])
def test_sampling_is_valid_seeded_and_round_trips(space):
    xs = space.sample(200, torch.Generator().manual_seed(0))
    assert xs == space.sample(200, torch.Generator().manual_seed(0))
    assert xs != space.sample(200, torch.Generator().manual_seed(1))
    assert all(space.check(x).canonical == x for x in xs)
    tokens = space.encode(xs)
    assert tokens.shape == (200, space.max_length)
    assert space.decode(tokens) == xs
    lengths = (tokens != PAD).sum(1)
    assert lengths.min() >= space.min_length and lengths.max() <= space.max_length


def test_sequence_space_rejects_bad_definitions():
    with pytest.raises(ValueError, match="distinct"):
        SequenceSpace("AA", 1, 2)
    with pytest.raises(ValueError, match="min_length"):
        SequenceSpace("AB", 3, 2)
