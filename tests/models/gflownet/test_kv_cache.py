"""Key/value-cached sampling from the causal transformer is the uncached sampler, faster.

The cached path evaluates attention by hand, so its logits may differ from PyTorch's fused
layers in the last bits: sampled trajectories must be identical for the same seed, and
log-probabilities equal within 1e-5, with and without conditioning, for sequences that stop
at different steps.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from paretolab.data.spaces import SequenceSpace
from paretolab.models.generators.gflownet import (
    CausalTransformerPolicy,
    ConditionSampler,
    MLPPolicy,
    SequenceEnvironment,
    Trajectories,
    sample_trajectories,
    trajectory_log_probs,
)
from paretolab.models.generators.gflownet.sampler import NO_ACTION

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SEEDS = range(5)
TOLERANCE = 1e-5


def _setup(condition_size: int, device: str, n: int = 64) -> tuple:
    """A variable-length sequence space, a transformer with sharpened random weights (so
    its distribution is far from uniform) and ``n`` encoded conditionings."""
    env = SequenceEnvironment(SequenceSpace("ACDEF", 2, 9))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        policy = CausalTransformerPolicy(env, condition_size, hidden=32, layers=2, heads=4)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    policy.to(device)
    if condition_size:
        conditions = ConditionSampler(2, (1.0, 16.0), bins=condition_size // 3)
        assert conditions.encoding_size == condition_size
        condition = conditions.encode(conditions.sample(n, g))
    else:
        condition = torch.empty(n, 0)
    return env, policy, condition.to(device)


def _stepwise_log_probs(env, policy, trajectories: Trajectories, condition: Tensor, cache: bool) -> Tensor:
    """``log P_F`` of each taken action ``T x n`` (0 after stop), evaluated step by step as
    the sampler does: through the policy's rollout, or by recomputing each prefix."""
    states, actions = trajectories.states, trajectories.actions
    out = torch.zeros(actions.shape, device=actions.device)
    rollout = policy.start_rollout(condition) if cache else None
    with torch.no_grad():
        for t in range(actions.shape[0]):
            rows = (actions[t] != NO_ACTION).nonzero().squeeze(-1)
            if not len(rows):
                break
            current = states[t, rows]
            if rollout is None:
                logits, _ = policy.logits(current, condition[rows])
            else:
                logits = rollout.logits(rows, current)
            logits = logits.masked_fill(~env.forward_mask(current), float("-inf"))
            log_p = torch.log_softmax(logits, -1).gather(-1, actions[t, rows, None]).squeeze(-1)
            out[t, rows] = log_p
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("condition_size", [0, 30], ids=["unconditional OP-GFN", "conditioned MOGFN"])
@pytest.mark.parametrize("epsilon", [0.0, 0.2])
def test_cached_sampling_draws_the_same_trajectories_as_recomputing_every_prefix(
    device, condition_size, epsilon
):
    env, policy, condition = _setup(condition_size, device)
    lengths = set()
    for seed in SEEDS:
        cached = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(seed), epsilon)
        plain = sample_trajectories(
            env, policy, condition, torch.Generator().manual_seed(seed), epsilon, cache=False
        )
        assert torch.equal(cached.states, plain.states) and torch.equal(cached.actions, plain.actions)
        lengths |= set(env.depth(cached.terminal).tolist())
    assert len(lengths) >= 4, f"sequences should stop at different steps, got lengths {lengths}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("condition_size", [0, 30], ids=["unconditional OP-GFN", "conditioned MOGFN"])
def test_cached_log_probabilities_equal_the_uncached_ones_and_the_training_pass(device, condition_size):
    env, policy, condition = _setup(condition_size, device)
    for seed in SEEDS:
        trajectories = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(seed))
        cached = _stepwise_log_probs(env, policy, trajectories, condition, cache=True)
        plain = _stepwise_log_probs(env, policy, trajectories, condition, cache=False)
        assert (cached < -1e-3).any(), "the test needs a policy that is not deterministic"
        assert torch.allclose(cached, plain, rtol=0, atol=TOLERANCE)
        with torch.no_grad():
            log_pf, _ = trajectory_log_probs(env, policy, trajectories, condition)
        assert torch.allclose(cached.sum(0), log_pf, rtol=0, atol=TOLERANCE)


def test_a_fixed_length_space_fills_the_cache_to_the_last_position():
    env = SequenceEnvironment(SequenceSpace("ACDEF", 6, 6))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        policy = CausalTransformerPolicy(env, 0, hidden=16, layers=1, heads=2)
    condition = torch.empty(20, 0)
    cached = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(0))
    plain = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(0), cache=False)
    assert torch.equal(cached.actions, plain.actions)
    assert (env.depth(cached.terminal) == 6).all() and (cached.actions[6] == env.stop).all()


def test_an_empty_batch_samples_nothing_with_the_cache():
    env, policy, condition = _setup(0, "cpu", n=0)
    trajectories = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(0))
    assert trajectories.states.shape[1] == 0 and trajectories.actions.shape[1] == 0


def test_a_rollout_cannot_resume_rows_that_stopped():
    env, policy, condition = _setup(0, "cpu", n=4)
    rollout = policy.start_rollout(condition)
    states = env.initial(4)
    rollout.logits(torch.arange(4), states)
    rollout.logits(torch.tensor([0, 2]), env.step(states[[0, 2]], torch.tensor([1, 1])))
    with pytest.raises(ValueError, match="cannot resume"):
        rollout.logits(torch.arange(4), states)


def test_the_mlp_policy_has_no_rollout_and_samples_the_same_either_way():
    env = SequenceEnvironment(SequenceSpace("ACDEF", 2, 6))
    policy = MLPPolicy(env, 0, hidden=16)
    assert policy.start_rollout(torch.empty(3, 0)) is None
    condition = torch.empty(16, 0)
    cached = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(0))
    plain = sample_trajectories(env, policy, condition, torch.Generator().manual_seed(0), cache=False)
    assert torch.equal(cached.actions, plain.actions)
