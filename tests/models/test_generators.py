import pytest
import torch

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import GridSpace, SequenceSpace
from paretolab.models.generators.genetic import GeneticGenerator
from paretolab.models.generators.random import RandomGenerator

SPACES = [GridSpace(2, 16), SequenceSpace("ACDEF", 3, 8)]


def _dataset(space, n=30):
    xs = space.sample(n, torch.Generator().manual_seed(0))
    Y = torch.rand(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    return Dataset(xs, space.featurize(xs), Y)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("cls", [RandomGenerator, GeneticGenerator])
def test_proposals_are_valid_and_seeded(space, cls):
    generator = cls(space)
    generator.update(None, _dataset(space), torch.Generator().manual_seed(0))
    xs = generator.propose(100, torch.Generator().manual_seed(7))
    assert len(xs) == 100 and all(space.check(x).canonical == x for x in xs)
    assert xs == generator.propose(100, torch.Generator().manual_seed(7))


@pytest.mark.parametrize("space", SPACES)
def test_genetic_children_are_one_mutation_from_a_parent(space):
    data = _dataset(space)
    generator = GeneticGenerator(space, mutation_rate=0.0, crossover_rate=0.0)
    metrics = generator.update(None, data, torch.Generator().manual_seed(0))
    assert metrics["n_parents"] == 30 and metrics["front_size"] >= 1
    children = generator.propose(400, torch.Generator().manual_seed(0))
    # one forced mutation per child: a near neighbour of its parent, not a copy (it may
    # still land on another parent by chance)
    parents = space.encode(data.candidates)
    tokens = space.encode(children)
    distance = (tokens[:, None, :] != parents[None, :, :]).sum(-1).min(1).values
    assert (distance <= 1).all()
    assert (distance == 1).float().mean() > 0.75


def test_genetic_tournaments_favour_the_pareto_front():
    space = GridSpace(2, 16)
    data = _dataset(space)
    generator = GeneticGenerator(space)
    generator.update(None, data, torch.Generator().manual_seed(0))
    chosen = generator._tournament(4000, torch.Generator().manual_seed(0))
    share = float((generator._rank[chosen] == 0).float().mean())
    p = float((generator._rank == 0).float().mean())
    assert share == pytest.approx(1 - (1 - p) ** 2, abs=0.02)  # binary tournament


def test_genetic_without_data_samples_uniformly():
    space = GridSpace(2, 16)
    generator = GeneticGenerator(space)
    generator.update(
        None, Dataset([], torch.empty(0, 2), torch.empty(0, 2)), torch.Generator().manual_seed(0)
    )
    assert len(generator.propose(10, torch.Generator().manual_seed(0))) == 10


def test_genetic_rejects_bad_rates():
    with pytest.raises(ValueError, match="mutation_rate"):
        GeneticGenerator(GridSpace(2, 4), mutation_rate=2.0)
