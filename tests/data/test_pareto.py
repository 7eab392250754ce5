import pytest
import torch
from botorch.utils.multi_objective.hypervolume import Hypervolume
from botorch.utils.multi_objective.pareto import is_non_dominated

from paretolab.data.pareto import hypervolume, pareto_mask, pareto_rank
from paretolab.models.reference_point import infer_ref_point


def test_pareto_mask_matches_botorch():
    Y = torch.rand(300, 3, generator=torch.Generator().manual_seed(0), dtype=torch.double)
    assert torch.equal(pareto_mask(Y), is_non_dominated(Y, deduplicate=False))


def test_hypervolume_known_value_and_botorch_agreement():
    Y = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [0.5, 0.5]], dtype=torch.double)
    assert hypervolume(Y, torch.zeros(2, dtype=torch.double)) == pytest.approx(6.0)
    Z = torch.rand(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    ref = torch.full((3,), 0.1, dtype=torch.double)
    expected = Hypervolume(ref).compute(Z[is_non_dominated(Z)])
    assert hypervolume(Z, ref) == pytest.approx(expected, rel=1e-12)


def test_points_below_the_reference_point_add_nothing():
    Y = torch.tensor([[-1.0, 5.0], [2.0, 2.0]], dtype=torch.double)
    assert hypervolume(Y, torch.zeros(2)) == pytest.approx(4.0)
    assert hypervolume(Y[:1], torch.zeros(2)) == 0.0


def test_reference_point_length_is_checked():
    with pytest.raises(ValueError, match="3 values"):
        hypervolume(torch.rand(4, 2), torch.zeros(3))


def test_pareto_rank_orders_fronts():
    Y = torch.tensor([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0], [3.0, 0.0]], dtype=torch.double)
    assert pareto_rank(Y).tolist() == [0, 1, 2, 1]


def test_infer_ref_point_lies_below_the_front():
    Y = torch.tensor([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]], dtype=torch.double)
    ref = infer_ref_point(Y)
    assert (ref < Y.min(0).values).all()
    with pytest.raises(ValueError, match="finite"):
        infer_ref_point(torch.empty(0, 2))
