"""torchgfn side of ``gfn_throughput.py``; runs in the benchmark-only virtual environment.

Trains torchgfn's trajectory-balance GFlowNet on its HyperGrid (original reward) with a
2 x 256 MLP forward policy and a learned backward policy sharing its trunk, times the
training steps, then computes the exact terminal distribution of the trained policy by
dynamic programming over the grid and its total variation to the target. Prints JSON.
"""

from __future__ import annotations

import json
import sys
import time

import torch
from gfn.estimators import DiscretePolicyEstimator
from gfn.gflownet import TBGFlowNet
from gfn.gym import HyperGrid
from gfn.preprocessors import KHotPreprocessor
from gfn.utils.modules import MLP


def exact_distribution(module, preprocessor, env, ndim: int, height: int) -> torch.Tensor:
    """Probability of ending in each grid state (index = mixed-radix coordinates)."""
    import itertools

    states = torch.tensor(list(itertools.product(range(height), repeat=ndim)), dtype=torch.long)
    order = torch.argsort(states.sum(-1), stable=True)
    states = states[order]
    with torch.no_grad():
        logits = module(preprocessor(env.states_from_tensor(states)))
    mask = torch.ones(len(states), ndim + 1, dtype=torch.bool)
    mask[:, :ndim] = states < height - 1
    probs = torch.softmax(logits.double().masked_fill(~mask, float("-inf")), -1)
    radix = height ** torch.arange(ndim - 1, -1, -1)
    index = {int(i): k for k, i in enumerate((states * radix).sum(-1))}
    reach = torch.zeros(len(states), dtype=torch.double)
    reach[0] = 1.0
    for k in range(len(states)):
        for d in range(ndim):
            if states[k, d] < height - 1:
                reach[index[int((states[k] * radix).sum()) + int(radix[d])]] += reach[k] * probs[k, d]
    terminal = reach * probs[:, ndim]
    out = torch.empty_like(terminal)
    out[(states * radix).sum(-1)] = terminal
    return out, states


def main() -> None:
    ndim, height, batch, steps, seed = (int(v) for v in sys.argv[1:6])
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    env = HyperGrid(ndim=ndim, height=height)
    preprocessor = KHotPreprocessor(height=height, ndim=ndim)
    pf_module = MLP(preprocessor.output_dim, env.n_actions, hidden_dim=256, n_hidden_layers=2)
    pb_module = MLP(preprocessor.output_dim, env.n_actions - 1, trunk=pf_module.trunk)
    pf = DiscretePolicyEstimator(pf_module, env.n_actions, preprocessor=preprocessor, is_backward=False)
    pb = DiscretePolicyEstimator(pb_module, env.n_actions, preprocessor=preprocessor, is_backward=True)
    gflownet = TBGFlowNet(pf=pf, pb=pb, init_logZ=0.0)
    optimizer = torch.optim.Adam(gflownet.pf_pb_parameters(), lr=1e-3)
    optimizer.add_param_group({"params": gflownet.logz_parameters(), "lr": 1e-1})
    start = time.perf_counter()
    for _ in range(steps):
        trajectories = gflownet.sample_trajectories(env, n=batch, save_logprobs=True)
        optimizer.zero_grad()
        loss = gflownet.loss(env, trajectories, recalculate_all_logprobs=False)
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - start
    p, states = exact_distribution(pf_module, preprocessor, env, ndim, height)
    radix = height ** torch.arange(ndim - 1, -1, -1)
    rewards = torch.empty(len(states), dtype=torch.double)
    rewards[(states * radix).sum(-1)] = env.reward(env.states_from_tensor(states)).double()
    target = rewards / rewards.sum()
    tv = 0.5 * float((p - target).abs().sum())
    print(
        json.dumps({"steps_per_second": steps / elapsed, "seconds": elapsed, "tv": tv, "loss": loss.item()})
    )


if __name__ == "__main__":
    main()
