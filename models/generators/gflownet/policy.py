"""How a GFlowNet is parametrized: forward (and optionally backward) policies and the
conditional log-partition function ``log Z(w, beta)``, as torch modules that run on any
device."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from paretolab.models.generators.gflownet.envs import Environment

__all__ = ["CausalTransformerPolicy", "LogPartition", "MLPPolicy", "Policy", "Rollout", "mlp"]


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes`` with LeakyReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


class Policy(nn.Module):
    """Unmasked action logits of states given an encoded conditioning ``n x c``."""

    learns_backward: bool = False

    def __init__(self, env: Environment, condition_size: int) -> None:
        super().__init__()
        self.env = env
        self.condition_size = condition_size

    def logits(self, states: Tensor, condition: Tensor) -> tuple[Tensor, Tensor | None]:
        """Forward logits ``n x n_actions`` and backward logits ``n x n_backward_actions``
        (``None`` unless the policy learns ``P_B``)."""
        raise NotImplementedError

    def start_rollout(self, condition: Tensor) -> Rollout | None:
        """An incremental evaluator of forward logits along rollouts from the initial state
        under ``condition`` (``n x c``), or ``None`` when the policy has none (the sampler
        then calls :meth:`logits` on every state)."""
        return None

    def trajectory_logits(
        self, states: Tensor, condition: Tensor, needed: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Logits at the states of trajectories ``(T + 1) x n x state_size``:
        ``(T + 1) x n x n_actions`` forward, and backward or ``None``. Only the states in
        the ``needed`` mask ``(T + 1) x n`` are evaluated (others get zeros)."""
        steps, n = states.shape[:2]
        if needed is None:
            needed = torch.ones(steps, n, dtype=torch.bool, device=states.device)
        rows, columns = needed.nonzero(as_tuple=True)
        forward, backward = self.logits(states[rows, columns], condition[columns])
        out_forward = forward.new_zeros(steps, n, forward.shape[-1]).index_put((rows, columns), forward)
        if backward is None:
            return out_forward, None
        return out_forward, backward.new_zeros(steps, n, backward.shape[-1]).index_put(
            (rows, columns), backward
        )


class Rollout:
    """Forward logits along a batch of rollouts, one step at a time, reusing what earlier
    steps computed (a key/value cache for a transformer).

    Each call to :meth:`logits` advances every rollout still going by one action; a rollout
    that stops leaves the batch and never comes back. For sampling only (no gradients:
    training scores whole trajectories with :meth:`Policy.trajectory_logits`).
    """

    def logits(self, rows: Tensor, states: Tensor) -> Tensor:
        """Forward logits ``m x n_actions`` of the current ``states`` (``m x state_size``) of
        rollouts ``rows`` (``m``, sorted indices into the starting ``condition``, a subset of
        the previous call's rows); each state is one action past its previous one."""
        raise NotImplementedError


class MLPPolicy(Policy):
    """An MLP on the one-hot state and the conditioning (the paper's grid policy)."""

    def __init__(
        self,
        env: Environment,
        condition_size: int,
        hidden: int = 64,
        layers: int = 3,
        learn_backward: bool = False,
    ) -> None:
        super().__init__(env, condition_size)
        self.learns_backward = learn_backward
        outputs = env.n_actions + (env.n_backward_actions if learn_backward else 0)
        self.net = mlp([env.feature_size + condition_size] + [hidden] * layers + [outputs])

    def logits(self, states: Tensor, condition: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.net(torch.cat([self.env.features(states), condition], dim=-1))
        if not self.learns_backward:
            return out, None
        return out[:, : self.env.n_actions], out[:, self.env.n_actions :]


class CausalTransformerPolicy(Policy):
    """A causal transformer over ``[condition, token_1, ..., token_t]``: the output at
    position ``t`` gives the next action after a prefix of ``t`` tokens, so one pass over a
    finished sequence scores every step of its trajectory."""

    def __init__(
        self,
        env: Environment,
        condition_size: int,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__(env, condition_size)
        if not env.is_tree:
            raise ValueError("a causal policy needs an autoregressive (tree) environment")
        if hidden % heads:
            raise ValueError(f"the transformer's width ({hidden}) must be a multiple of its {heads} heads")
        length = env.space.max_length
        # the first position carries the conditioning (a learned start token when empty)
        self.condition = nn.Linear(condition_size, hidden) if condition_size else None
        self.start = nn.Parameter(torch.zeros(hidden))
        self.tokens = nn.Embedding(env.space.vocab_size, hidden)
        self.positions = nn.Parameter(torch.randn(length + 1, hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, env.n_actions))

    def _first(self, condition: Tensor) -> Tensor:
        """The input at position 0 (``n x hidden``): the start token plus the conditioning."""
        first = self.start.expand(len(condition), -1)
        if self.condition is not None:
            first = first + self.condition(condition)
        return first

    def _outputs(self, tokens: Tensor, condition: Tensor) -> Tensor:
        """Logits at positions ``0..tokens.shape[1]`` (``n x (t + 1) x n_actions``)."""
        embedded = self.tokens(tokens.clamp_min(0))
        x = torch.cat([self._first(condition).unsqueeze(1), embedded], dim=1)
        x = x + self.positions[: x.shape[1]]
        mask = nn.Transformer.generate_square_subsequent_mask(x.shape[1], device=x.device, dtype=x.dtype)
        return self.head(self.encoder(x, mask=mask, is_causal=True))

    def logits(self, states: Tensor, condition: Tensor) -> tuple[Tensor, None]:
        depth = self.env.depth(states)
        width = int(depth.max()) if len(states) else 0
        out = self._outputs(states[:, :width], condition)
        return out[torch.arange(len(states), device=states.device), depth], None

    def start_rollout(self, condition: Tensor) -> Rollout:
        return _CachedDecoding(self, condition)

    def trajectory_logits(
        self, states: Tensor, condition: Tensor, needed: Tensor | None = None
    ) -> tuple[Tensor, None]:
        # every state of a trajectory is a prefix of its last state: one pass scores all
        final = states[-1]
        out = self._outputs(final, condition)  # n x (L + 1) x A
        steps = states.shape[0]
        depth = self.env.depth(states)  # (T + 1) x n
        index = depth.T.unsqueeze(-1).expand(-1, -1, out.shape[-1])  # n x (T + 1) x A
        return out.gather(1, index).transpose(0, 1)[:steps], None


class _CachedDecoding(Rollout):
    """Incremental decoding of a :class:`CausalTransformerPolicy`: each step runs only the
    new position through the pre-norm layers, attending to the keys and values cached at
    earlier positions, so a rollout of length ``L`` costs ``O(L)`` layer passes instead of
    ``O(L^2)``. Same parameters and maths as the full pass (up to floating-point rounding
    of the fused kernels); rows that stopped are dropped from the cache."""

    def __init__(self, policy: CausalTransformerPolicy, condition: Tensor) -> None:
        self.policy = policy
        self.condition = condition
        self.layers = list(policy.encoder.layers)
        attention = self.layers[0].self_attn
        self.heads, self.width = attention.num_heads, attention.embed_dim
        n, positions = len(condition), policy.positions
        self.head_size = self.width // self.heads
        shape = (positions.shape[0], n, self.heads, self.head_size)
        # per layer: keys and values (L + 1) x n x heads x head_size, filled position by position
        self.keys = [positions.new_empty(shape) for _ in self.layers]
        self.values = [positions.new_empty(shape) for _ in self.layers]
        self.rows = torch.arange(n, device=condition.device)
        self.length = 0  # positions cached so far

    def logits(self, rows: Tensor, states: Tensor) -> Tensor:
        policy, t, m = self.policy, self.length, len(rows)
        if m > len(self.rows):
            raise ValueError(
                f"{m} rollouts asked for, {len(self.rows)} still going: stopped ones cannot resume"
            )
        if m != len(self.rows):  # some rollouts stopped: keep the cache of the others
            keep = torch.searchsorted(self.rows, rows)
            self.keys = [_select(k, keep, t) for k in self.keys]
            self.values = [_select(v, keep, t) for v in self.values]
            self.rows = rows
        # 1. the input at position t: the conditioning, then the token added last
        if t == 0:
            x = policy._first(self.condition[rows])
        else:
            x = policy.tokens(states[:, t - 1].clamp_min(0))
        x = x + policy.positions[t]
        # 2. each pre-norm layer on the new position (nn.TransformerEncoderLayer, norm_first)
        for layer, keys, values in zip(self.layers, self.keys, self.values, strict=True):
            attention = layer.self_attn
            qkv = F.linear(layer.norm1(x), attention.in_proj_weight, attention.in_proj_bias)
            q, k, v = qkv.view(m, 3, self.heads, self.head_size).unbind(1)  # each m x heads x head_size
            keys[t] = k
            values[t] = v
            scores = (keys[: t + 1] * (q / math.sqrt(self.head_size))).sum(-1)  # (t + 1) x m x heads
            mixed = (torch.softmax(scores, dim=0).unsqueeze(-1) * values[: t + 1]).sum(0)
            x = x + attention.out_proj(mixed.reshape(m, self.width))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        self.length = t + 1
        return policy.head(x)


def _select(cache: Tensor, keep: Tensor, length: int) -> Tensor:
    """Rows ``keep`` of a cache ``(L + 1) x n x heads x head_size``, copying only the
    ``length`` positions filled so far."""
    out = cache.new_empty((cache.shape[0], len(keep), *cache.shape[2:]))
    out[:length] = cache[:length, keep]
    return out


class LogPartition(nn.Module):
    """``log Z(w, beta)``: an MLP of the encoded conditioning (Jain et al. 2023, sec. 3),
    or one learned number when nothing is conditioned on (an empty encoding)."""

    def __init__(self, condition_size: int, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        if condition_size == 0:
            self.constant = nn.Parameter(torch.zeros(1))
        else:
            self.net = mlp([condition_size] + [hidden] * layers + [1])

    def forward(self, condition: Tensor) -> Tensor:
        if hasattr(self, "constant"):
            return self.constant.expand(len(condition))
        return self.net(condition).squeeze(-1)
