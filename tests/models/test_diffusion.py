"""Guided discrete diffusion (LaMBO-2): the corruption process against its closed form,
the denoiser against its training data, the edit constraints as properties, guidance
against the unguided sampler over seeds, and state that restores exactly. Real fits on
small sizes, no mocks."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binomtest

from paretolab.data.dataset import Dataset
from paretolab.data.spaces import SequenceSpace
from paretolab.models.generators.diffusion import (
    AbsorbingCorruption,
    DiffusionGenerator,
    DiffusionSettings,
    HypervolumeGuidance,
    ScalarizedGuidance,
    TokenCodes,
)
from paretolab.models.proxies.gp import fit_gp_proxy
from paretolab.models.rewards import ProxyReward
from paretolab.oracles.ngram import NGramOracle

SMALL = {"hidden": 32, "layers": 2, "heads": 4, "ensemble": 3}


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_corruption_marginals_match_their_closed_form(schedule):
    codes = TokenCodes(5)
    corruption = AbsorbingCorruption(codes, schedule)
    x0 = torch.tensor([[0, 1, 2, 3, 4, codes.pad]]).repeat(20_000, 1)
    for level in (0.0, 0.2, 0.5, 0.9, 1.0):
        t = torch.full((len(x0),), level)
        gamma = float(corruption.mask_probability(torch.tensor(level)))
        assert gamma == pytest.approx(level if schedule == "linear" else 1 - math.cos(math.pi * level / 2))
        draws = corruption.corrupt(x0, t, torch.Generator().manual_seed(1))
        closed = corruption.marginal(x0[:1], t[:1])[0]  # L x (V + 2)
        empirical = torch.nn.functional.one_hot(draws, codes.size).double().mean(0)
        sigma = math.sqrt(max(gamma * (1 - gamma), 1e-12) / len(x0))
        assert (empirical - closed).abs().max() <= 5 * sigma + 1e-12
        assert closed.sum(-1).tolist() == pytest.approx([1.0] * 6)
        assert (draws[:, -1] == codes.pad).all()  # pad is never masked
    # the reverse process: a position masked at t is still masked at s with gamma(s)/gamma(t)
    t, s = 0.8, 0.3
    still = 1 - corruption.unmask_probability(t, s)
    ratio = corruption.mask_probability(torch.tensor(s)) / corruption.mask_probability(torch.tensor(t))
    assert still == pytest.approx(float(ratio))
    assert corruption.unmask_probability(1 / 32, 0.0) == 1.0


def test_frozen_positions_are_never_corrupted():
    codes = TokenCodes(4)
    corruption = AbsorbingCorruption(codes)
    x0 = torch.randint(0, 4, (500, 8), generator=torch.Generator().manual_seed(0))
    editable = torch.ones_like(x0, dtype=torch.bool)
    editable[:, [0, 5]] = False
    draws = corruption.corrupt(x0, torch.ones(500), torch.Generator().manual_seed(1), editable)
    assert (draws[:, [0, 5]] == x0[:, [0, 5]]).all() and (draws[:, 1] == codes.mask).all()


def test_unguided_samples_match_the_training_datas_per_position_token_frequencies():
    """Six positions over four letters, each position with its own distribution; after
    training, reverse-process samples reproduce every position's frequencies (total
    variation 0.048-0.078 over three seeds; the bound is 0.1; untrained: 0.56-0.66)."""
    space = SequenceSpace("ABCD", 6, 6)
    probs = torch.tensor(
        [
            [0.7, 0.1, 0.1, 0.1],
            [0.1, 0.7, 0.1, 0.1],
            [0.25] * 4,
            [0.5, 0.5, 0.0, 0.0],
            [0.0, 0.0, 0.1, 0.9],
            [0.4, 0.3, 0.2, 0.1],
        ]
    )
    rng = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.multinomial(p, 5000, replacement=True, generator=rng) for p in probs], 1)
    generator = DiffusionGenerator(space, 1, DiffusionSettings(**SMALL, lr=3e-4), seed=0)
    lengths = torch.full((4000,), 6)

    def distance() -> float:
        samples = generator.sampler.sample(lengths, 6, torch.Generator().manual_seed(5), steps=6)
        freq = torch.nn.functional.one_hot(samples, 4 + 2).double().mean(0)[:, :4]
        truth = torch.nn.functional.one_hot(rows, 4).double().mean(0)
        return float(0.5 * (freq - truth).abs().sum(-1).max())

    untrained = distance()
    history = generator.train(rows, rows[:0], torch.empty(0, 1), 400, rng)
    trained = distance()
    assert history["denoiser_loss"][-50:] < history["denoiser_loss"][:50]
    assert trained <= 0.1 < untrained, (trained, untrained)


def _ngram_task(seed: int, n: int = 96) -> tuple[SequenceSpace, Dataset, ProxyReward]:
    space = SequenceSpace("ACDEFGHIKLMNPQRSTVWY", 24, 24)
    oracle = NGramOracle(space, motifs=["AV", "VC", "CA"], max_score=6)
    rng = torch.Generator().manual_seed(seed)
    xs = list(dict.fromkeys(space.sample(n, rng)))
    X, Y = space.featurize(xs), oracle(xs).values
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=rng, kernel="kmer", vocab_size=20)
    return space, Dataset(xs, X, Y), ProxyReward(model, space)


def _molecule_task(seed: int, n: int = 96) -> tuple[object, Dataset, ProxyReward]:
    from paretolab.data.molecules import nci_seed_path, read_seed_file
    from paretolab.data.spaces import MoleculeSpace
    from paretolab.oracles.molecular import MolecularOracle

    space = MoleculeSpace(read_seed_file(nci_seed_path()).smiles[:250], 40)
    oracle = MolecularOracle(
        space, [{"name": "qed", "property": "qed"}, {"name": "logp", "property": "logp", "direction": "max"}]
    )
    xs = space.sample(n, torch.Generator().manual_seed(seed))
    X, Y = space.featurize(xs), oracle(xs).values
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=torch.Generator(), kernel="minmax")
    return space, Dataset(xs, X, Y), ProxyReward(model, space)


@pytest.fixture(scope="module")
def trained() -> tuple[DiffusionGenerator, Dataset, ProxyReward]:
    space, dataset, reward = _ngram_task(0, 64)
    generator = DiffusionGenerator(
        space, 3, DiffusionSettings(**SMALL), steps_per_round=20, warm_start_steps=40
    )
    generator.update(reward, dataset, torch.Generator().manual_seed(1))
    return generator, dataset, reward


def _scalarized(reward: ProxyReward, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    scores = reward.from_tokens(rows)
    return (scores * weights.to(scores)).sum(-1)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ngram", "molecules"])
def test_guided_edits_score_higher_on_the_proxy_than_unguided_edits_of_the_same_seeds(task):
    """Over five independent seeds (data, proxy, denoiser, draws), the guided sampler's
    proposals gain more proxy score over their seed rows (the proxy's mean under each row's
    preference) than the unguided sampler's edits of the same seed rows at the same edit
    budget: a one-sided sign test over the seeds, and a positive mean difference."""
    differences = []
    for seed in range(5):
        space, dataset, reward = (_ngram_task if task == "ngram" else _molecule_task)(seed)
        m = reward.model.num_outputs
        generator = DiffusionGenerator(space, m, DiffusionSettings(**SMALL), warm_start_steps=200, seed=seed)
        generator.update(reward, dataset, torch.Generator().manual_seed(seed))
        rng = torch.Generator().manual_seed(100 + seed)
        seeds = generator._seeds[torch.randint(0, len(generator._seeds), (160,), generator=rng)]
        guidance = ScalarizedGuidance(m)
        guidance.draw(len(seeds), rng)
        before = _scalarized(reward, generator.codes.to_space(seeds), guidance.weights)
        editable = torch.ones_like(seeds, dtype=torch.bool)
        gains = {}
        for guided in (True, False):
            result = generator.sampler.improve(
                seeds,
                guidance,
                torch.Generator().manual_seed(seed),
                max_edits=3,
                editable=editable,
                guided=guided,
            )
            kept = result.accepted
            after = _scalarized(reward, generator.codes.to_space(result.rows[kept]), guidance.weights[kept])
            gain = after - before[kept]
            gains[guided] = gain[torch.isfinite(gain)].mean()  # invalid molecules never reach a pool
        differences.append(float(gains[True] - gains[False]))
    wins = sum(d > 0 for d in differences)
    assert binomtest(wins, len(differences), alternative="greater").pvalue < 0.05, differences
    assert sum(differences) > 0


@pytest.mark.parametrize("case", range(12))
def test_edits_respect_the_edit_budget_frozen_positions_and_pads(trained, case):
    generator, _, _ = trained
    rng = torch.Generator().manual_seed(case)
    max_edits = int(torch.randint(1, 6, (1,), generator=rng))
    frozen = torch.rand(24, generator=rng) < 0.3
    seeds = generator._seeds[torch.randint(0, len(generator._seeds), (64,), generator=rng)].clone()
    seeds[:8, 20:] = generator.codes.pad  # shorter rows: pads must stay pads
    guidance = ScalarizedGuidance(3)
    guidance.draw(64, rng)
    for guided in (True, False):
        result = generator.sampler.improve(
            seeds,
            guidance,
            rng,
            max_edits=max_edits,
            editable=~frozen.expand(64, -1),
            guided=guided,
            attempts=2,
        )
        changed = result.rows != seeds
        assert (changed.sum(-1) <= max_edits).all()
        assert not changed[:, frozen].any()
        assert ((result.rows == generator.codes.pad) == (seeds == generator.codes.pad)).all()
        assert ((result.rows >= 0) & (result.rows <= generator.codes.pad)).all()
        assert (changed.any(-1) == result.accepted).all()


def test_proposals_stay_within_the_edit_budget_of_a_measured_candidate(trained):
    generator, _, _ = trained
    proposals = generator.propose(100, torch.Generator().manual_seed(3))
    assert proposals and 0 < generator.proposal_metrics["guidance_acceptance"] <= 1
    assert generator.proposal_metrics["accepted"] == len(proposals)
    seeds = generator.space.decode(generator.codes.to_space(generator._seeds))
    for proposal in proposals:
        assert min(sum(a != b for a, b in zip(proposal, seed, strict=True)) for seed in seeds) <= 4


def test_configured_frozen_positions_never_change_in_proposals():
    space, dataset, reward = _ngram_task(1, 48)
    frozen = [0, 1, 2, 10, 23]
    generator = DiffusionGenerator(
        space,
        3,
        DiffusionSettings(**SMALL, frozen_positions=frozen, max_edits=2),
        steps_per_round=10,
        warm_start_steps=20,
    )
    generator.update(reward, dataset, torch.Generator().manual_seed(0))
    seeds = set(generator.space.decode(generator.codes.to_space(generator._seeds)))
    for proposal in generator.propose(64, torch.Generator().manual_seed(1)):
        near = [s for s in seeds if sum(a != b for a, b in zip(proposal, s, strict=True)) <= 2]
        assert near and all(all(proposal[p] == s[p] for p in frozen) for s in near)
    with pytest.raises(ValueError, match="frozen_positions"):
        DiffusionGenerator(space, 3, DiffusionSettings(frozen_positions=[24]))


def test_infilling_changes_exactly_the_given_positions(trained):
    generator, dataset, _ = trained
    candidates = dataset.candidates[:6]
    positions = [[0], [3, 4], [], [23], [5, 6, 7], [1, 22]]
    for guided in (True, False):
        filled = generator.infill(candidates, positions, torch.Generator().manual_seed(2), guided=guided)
        for before, after, where in zip(candidates, filled, positions, strict=True):
            assert len(after) == len(before)
            assert all(a == b for i, (a, b) in enumerate(zip(before, after, strict=True)) if i not in where)
    with pytest.raises(ValueError, match=r"positions \[24\] outside 0\.\.23"):
        generator.infill(candidates[:1], [[24]], torch.Generator())


def test_a_restored_state_proposes_exactly_the_same_candidates(trained):
    generator, dataset, reward = trained
    state = generator.state_dict()
    clone = DiffusionGenerator(generator.space, 3, DiffusionSettings(**SMALL), steps_per_round=20, seed=9)
    clone.load_state_dict(state)
    # the next round, from the restored state and from the original, is the same
    a = generator.update(reward, dataset, torch.Generator().manual_seed(7))
    b = clone.update(reward, dataset, torch.Generator().manual_seed(7))
    assert a["loss"] == b["loss"] and a["steps"] == b["steps"] == 20
    assert generator.propose(50, torch.Generator().manual_seed(8)) == clone.propose(
        50, torch.Generator().manual_seed(8)
    )
    other = DiffusionGenerator(SequenceSpace("ACDEFGHIKLMNPQRSTVWX", 24, 24), 3, DiffusionSettings(**SMALL))
    with pytest.raises(ValueError, match="another token alphabet"):
        other.load_state_dict(state)


def test_update_reports_the_value_heads_held_out_fit_and_the_denoising_loss(trained):
    generator, dataset, reward = trained
    metrics = generator.update(reward, dataset, torch.Generator().manual_seed(4))
    assert metrics["steps"] == 20 and metrics["n_known"] == len(dataset)
    assert metrics["n_distilled"] == 5 * len(dataset)  # the known rows and four mutants each
    assert -1 <= metrics["value_spearman"] <= 1 and metrics["denoiser_loss"] > 0
    assert len(generator.history["denoiser_loss"]) == 20


def test_hypervolume_guidance_is_the_improvement_over_the_front():
    front = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    guidance = HypervolumeGuidance(front, torch.tensor([-1.0, -1.0]), tie_break=0.0)
    points = torch.tensor([[1.5, 1.5], [0.5, 0.5], [3.0, -1.0]])
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    hv = Hypervolume(torch.tensor([-1.0, -1.0]))
    base = hv.compute(front)
    expected = [hv.compute(torch.cat([front, p[None]])) - base for p in points]
    assert guidance.improvement(points).tolist() == pytest.approx(expected)
    grad = (
        torch.autograd.grad(guidance(points[None].requires_grad_(True)).sum(), [points])[0] if False else None
    )
    assert grad is None
    y = points[:1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(guidance(y[None]).sum(), y)
    assert (g > 0).all()  # more of either objective adds hypervolume


def test_ehvi_guidance_proposes_edits_that_the_heads_expect_to_add_hypervolume():
    space, dataset, reward = _ngram_task(2, 48)
    generator = DiffusionGenerator(
        space, 3, DiffusionSettings(**SMALL, guidance="ehvi"), steps_per_round=20, warm_start_steps=20
    )
    generator.update(reward, dataset, torch.Generator().manual_seed(0))
    assert isinstance(generator._guidance, HypervolumeGuidance)
    proposals = generator.propose(64, torch.Generator().manual_seed(1))
    assert proposals and generator.proposal_metrics["guidance_acceptance"] > 0
    rows = generator.codes.from_space(space.encode(proposals))
    seeds = generator.codes.from_space(space.encode(dataset.candidates))
    assert ((rows[:, None, :] != seeds[None]).sum(-1).min(1).values <= 4).all()
