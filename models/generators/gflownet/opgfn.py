"""Order-preserving GFlowNet (OP-GFN).

Chen & Mauch 2024, "Order-Preserving GFlowNets", ICLR, arXiv 2310.00386: instead of a
hand-made scalar reward, the GFlowNet learns a reward ``R^`` consistent with a given
(partial) order. ``R^`` is parametrized through trajectory balance (their eq. 3), so the
sampler draws ``x`` in proportion to it, and it is trained by the order-preserving loss
(:class:`~models.generators.gflownet.losses.OrderPreserving`): on each batch the softmax
of ``log R^`` is pulled toward the uniform distribution over the batch's maximal
elements. As training proceeds ``R^`` sparsifies onto the maximal states. No preference
vector, scalarization or reward exponent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paretolab.data.dataset import Dataset
from paretolab.models.generators.gflownet.envs import Environment
from paretolab.models.generators.gflownet.generator import GFlowNetGenerator
from paretolab.models.generators.gflownet.losses import OrderPreserving, TrajectoryScores
from paretolab.models.generators.gflownet.sampler import backward_trajectories, trajectory_log_probs
from paretolab.models.generators.gflownet.signals import ParetoOrder
from paretolab.models.generators.gflownet.trainer import GFlowNet, GFlowNetSettings, ObjectiveFn
from paretolab.models.rewards import ProxyReward

__all__ = ["OPGFN", "OPGFNGenerator"]


class OPGFN(GFlowNet):
    """OP-TB on an environment: Pareto dominance on ``num_objectives`` values (a total
    order when there is one); knows nothing of campaigns or proxies.

    As in the reference code, the order is applied to the whole batch for several
    objectives and to random pairs for one, and ``P_B`` is uniform over parents (a
    learned ``P_B`` could lower the order loss on its own; the paper then adds a
    KL(uniform || P_B) regularizer, which this implementation does not offer).
    """

    def __init__(
        self,
        env: Environment,
        num_objectives: int,
        settings: GFlowNetSettings | None = None,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        s = settings or GFlowNetSettings()
        if s.learn_backward:
            raise ValueError("OP-GFN trains with a uniform backward policy; learn_backward must be off")
        loss = OrderPreserving(pairs=num_objectives == 1)
        super().__init__(env, num_objectives, ParetoOrder(), loss, s, seed=seed, device=device)

    @torch.no_grad()
    def learned_log_reward(self, states: Tensor, rng: torch.Generator) -> Tensor:
        """``log R^(x)`` of terminal states along one backward trajectory each (exact on a
        tree, where each state has one trajectory; an estimate on a DAG)."""
        states = states.to(self.device)
        trajectories = backward_trajectories(self.env, states, rng)
        condition = self.signal.encode(None, len(states), self.device)
        log_pf, log_pb = trajectory_log_probs(self.env, self.policy, trajectories, condition)
        return TrajectoryScores(self.log_z(condition), log_pf, log_pb).learned_log_reward


class OPGFNGenerator(GFlowNetGenerator):
    """OP-GFN in a campaign: trained each round against the proxy, warm-started.

    The order is Pareto dominance on values that are the measurements for measured
    candidates and the proxy's predictions (posterior mean, or the optimistic mean +
    kappa * std) for everything else. Measured candidates join the replay buffer, so
    each batch is ordered against them (with a positive ``replay_fraction``).
    Candidates that are not members of the space are below everything.
    """

    name = "opgfn"

    model_class = OPGFN
    model: OPGFN

    def objective(self, reward: ProxyReward, dataset: Dataset) -> ObjectiveFn:
        """Values of terminal states: the measurement for a measured candidate (matched by
        canonical form, so any SELFIES of a measured molecule counts), the optimistic proxy
        prediction otherwise (``-inf`` for non-members)."""
        optimistic = reward.with_kappa(self.kappa)
        position = {candidate: i for i, candidate in enumerate(dataset.candidates)}
        measured = dataset.Y.float().to(self.model.device)

        def values(states: Tensor) -> Tensor:
            tokens = self.env.to_tokens(states)
            out = optimistic.from_tokens(tokens).float().to(self.model.device)
            if position:
                keys = self.space.decode(tokens.cpu())
                index = torch.tensor([position.get(key, -1) for key in keys], dtype=torch.long)
                index = index.to(out.device)
                hit = index >= 0
                out[hit] = measured[index[hit]]
            return out

        return values

    def sample(self, n: int, rng: torch.Generator, start: Tensor | None = None) -> Tensor:
        return self.model.sample_states(n, rng, start=start)
