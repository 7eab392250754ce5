"""Exact terminal distributions of a GFlowNet by dynamic programming over its DAG.

Used to prove a sampler right on small spaces: the probability of reaching each state is
summed over all its parents layer by layer (depth = number of actions), never estimated
by sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paretolab.models.generators.gflownet.envs import Environment
from paretolab.models.generators.gflownet.policy import Policy

__all__ = ["terminal_distribution", "total_variation"]


@torch.no_grad()
def terminal_distribution(
    env: Environment, policy: Policy, condition: Tensor, start: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """All terminal states ``k x state_size`` reachable under one encoded condition
    (``c`` or ``1 x c``) from the initial state, or from the state ``start`` when given,
    and the probability (double) that the policy ends in each."""
    condition = condition.reshape(1, -1)
    layer = env.initial(1, condition.device) if start is None else start.reshape(1, -1).to(condition.device)
    reach = torch.ones(1, dtype=torch.double, device=condition.device)
    terminals, probabilities = [], []
    for _ in range(env.max_steps):
        if len(layer) == 0:
            break
        mask = env.forward_mask(layer)
        logits, _ = policy.logits(layer, condition.expand(len(layer), -1))
        probs = torch.softmax(logits.double().masked_fill(~mask, float("-inf")), dim=-1)
        stop_mass = reach * probs[:, env.stop]
        keep = mask[:, env.stop]
        terminals.append(layer[keep])
        probabilities.append(stop_mass[keep])
        rows, actions = (mask[:, : env.stop]).nonzero(as_tuple=True)
        children = env.step(layer[rows], actions)
        mass = reach[rows] * probs[rows, actions]
        layer, inverse = torch.unique(children, dim=0, return_inverse=True)
        reach = torch.zeros(len(layer), dtype=torch.double, device=layer.device).index_add_(0, inverse, mass)
    return torch.cat(terminals), torch.cat(probabilities)


def total_variation(p: Tensor, q: Tensor) -> float:
    """``1/2 sum |p - q|`` of two distributions over the same support."""
    return 0.5 * float((p.double() - q.double()).abs().sum())
