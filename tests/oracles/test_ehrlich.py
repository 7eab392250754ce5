"""The multi-objective Ehrlich task: feasibility by banned transitions, spaced motifs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from paretolab.data.spaces import SequenceSpace
from paretolab.oracles.ehrlich import EhrlichOracle
from paretolab.oracles.registry import oracle_class

SPACE = SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 32, 32)


def test_the_constructed_optimum_is_feasible_and_scores_one_on_every_motif():
    oracle = EhrlichOracle(SPACE, num_motifs=3, motif_length=4, seed=3)
    result = oracle([oracle.optimum])
    assert result.reasons == [None]
    assert result.values.tolist() == [[1.0, 1.0, 1.0]]


def test_chain_samples_are_feasible_while_uniform_sequences_almost_never_are():
    oracle = EhrlichOracle(SPACE, seed=0)
    rng = torch.Generator().manual_seed(0)
    assert oracle(oracle.sample_feasible(200, rng)).valid.all()
    assert oracle(SPACE.sample(200, rng)).valid.float().mean() < 0.05


def test_a_banned_pair_is_a_failure_that_names_the_pair():
    oracle = EhrlichOracle(SPACE, seed=0)
    a, b = (oracle.allowed == 0).nonzero()[0].tolist()
    x = SPACE.alphabet[a] * 16 + SPACE.alphabet[b] * 16  # self-loops are allowed: one banned pair
    result = oracle([x])
    assert math.isnan(result.values[0, 0])
    assert result.reasons == [f"infeasible: {SPACE.alphabet[a]!r} may not precede {SPACE.alphabet[b]!r}"]


def test_motif_presence_is_the_best_quantized_share_of_the_spaced_motif():
    space = SequenceSpace("ABCD", 8, 8)
    oracle = EhrlichOracle(space, num_motifs=1, motif_length=2, banned_fraction=0.0, seed=0)
    oracle.motifs = torch.tensor([[0, 1]])  # A then B two places later
    oracle.spacings = torch.tensor([[0, 2]])
    values = oracle(["ACBDDDDD", "DDDDDACD", "DDDDDDDA", "DDDDDADB"]).values[:, 0].tolist()
    assert values == [1.0, 0.5, 0.0, 1.0]


def test_same_seed_same_task_and_the_registry_knows_it():
    one, two = EhrlichOracle(SPACE, seed=5), EhrlichOracle(SPACE, seed=5)
    assert torch.equal(one.allowed, two.allowed) and one.optimum == two.optimum
    assert oracle_class("ehrlich") is EhrlichOracle
    with pytest.raises(ValueError, match="fixed-length"):
        EhrlichOracle(SequenceSpace("ABCD", 4, 8))


def test_a_shipped_ehrlich_campaign_draws_its_initial_design_from_the_feasible_chain(tmp_path):
    from paretolab.campaigns import __file__ as campaigns_init
    from paretolab.data.store import CampaignStore
    from paretolab.flows.config import load_config
    from paretolab.flows.factories import build_setup
    from paretolab.flows.steps import initial_design

    setup = build_setup(load_config(str(Path(campaigns_init).parent / "ehrlich.yaml")))
    assert setup.proxy_kernel == "kmer"
    with CampaignStore.create(tmp_path / "c", {"objectives": [["a", "max", None]]}) as store:
        batch = initial_design(store, setup, 32)
    assert len(batch) == 32 and batch["candidate"].is_unique
    assert setup.oracle(batch["candidate"].tolist()).valid.all()
