"""Guided discrete diffusion in a campaign: each round the denoiser learns the known
candidates (measured and feasible, plus the space's seeds) and the value heads learn the
proxy on them and on random edits of them (distillation), warm-started from the previous
round; proposals are LaMBO-2 guided edits of the best measured candidates."""

from __future__ import annotations

import copy
import time

import torch
from scipy.stats import spearmanr
from torch import Tensor

from paretolab.data.dataset import Dataset
from paretolab.data.faults import crash_point
from paretolab.data.pareto import pareto_rank
from paretolab.data.spaces import SearchSpace
from paretolab.models.generators.base import Generator
from paretolab.models.generators.diffusion.config import DiffusionSettings
from paretolab.models.generators.diffusion.corruption import AbsorbingCorruption, TokenCodes
from paretolab.models.generators.diffusion.denoiser import Denoiser
from paretolab.models.generators.diffusion.guidance import Guidance, HypervolumeGuidance, ScalarizedGuidance
from paretolab.models.generators.diffusion.sampler import GuidedSampler
from paretolab.models.rewards import ProxyReward, failure_floor

__all__ = ["KNOWN_SEEDS", "DiffusionGenerator"]

KNOWN_SEEDS = 512
"""Most seeds of a space's seed set (molecules) the denoiser learns from each round."""

HOLDOUT_FRACTION = 0.2
"""Share of the distillation rows held out to measure the value heads' fit."""


class DiffusionGenerator(Generator):
    """LaMBO-2 (Gruver et al. 2023, arXiv 2305.20009) as a campaign generator for any token
    space (sequences, SELFIES molecules, grids)."""

    name = "diffusion"

    def __init__(
        self,
        space: SearchSpace,
        num_objectives: int,
        settings: DiffusionSettings | None = None,
        *,
        steps_per_round: int = 100,
        warm_start_steps: int = 200,
        train_seconds: float | None = None,
        kappa: float = 0.0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(space)
        s = self.settings = settings or DiffusionSettings()
        bad = [p for p in s.frozen_positions if not 0 <= p < space.max_length]
        if bad:
            raise ValueError(f"frozen_positions {bad} outside the rows' 0..{space.max_length - 1}")
        if train_seconds is not None and not train_seconds > 0:
            raise ValueError(f"train_seconds must be positive (or None), got {train_seconds}")
        if steps_per_round < 0 or warm_start_steps < 0:
            raise ValueError("steps_per_round and warm_start_steps must be >= 0")
        self.num_objectives = num_objectives
        self.steps_per_round = steps_per_round
        self.warm_start_steps = warm_start_steps
        self.train_seconds = train_seconds
        self.kappa = kappa
        self.device = torch.device(device)
        self.codes = TokenCodes(space.vocab_size)
        self.corruption = AbsorbingCorruption(self.codes, s.schedule)
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)  # CPU only: CUDA's RNG is left alone
            self.denoiser = Denoiser(
                self.codes,
                space.max_length,
                num_objectives,
                hidden=s.hidden,
                layers=s.layers,
                heads=s.heads,
                ensemble=s.ensemble,
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.denoiser.parameters(), lr=s.lr)
        self.sampler = GuidedSampler(
            self.denoiser,
            self.corruption,
            steps=s.guidance_steps,
            step_size=s.step_size,
            kl_weight=s.kl_weight,
        )
        self.frozen = torch.zeros(space.max_length, dtype=torch.bool)
        self.frozen[list(s.frozen_positions)] = True
        self.steps_done = 0
        self._seeds = torch.empty(0, space.max_length, dtype=torch.long)
        self._guidance: Guidance = ScalarizedGuidance(num_objectives, s.alpha)

    # -- data ------------------------------------------------------------------------------
    def _rows(self, candidates: list[str]) -> Tensor:
        return self.codes.from_space(self.space.encode(candidates)).to(self.device)

    def known_rows(self, dataset: Dataset, rng: torch.Generator) -> Tensor:
        """What the denoiser learns: every measured feasible candidate, then up to
        ``KNOWN_SEEDS`` seeds of the space's seed set drawn with ``rng``."""
        known = list(dict.fromkeys(dataset.candidates))
        measured = set(known)
        seeds = [x for x in getattr(self.space, "seeds", ()) if x not in measured]
        if len(seeds) > KNOWN_SEEDS:
            order = torch.randperm(len(seeds), generator=rng)[:KNOWN_SEEDS].sort().values
            seeds = [seeds[i] for i in order.tolist()]
        return self._rows(known + seeds)

    def mutants(self, rows: Tensor, rng: torch.Generator) -> Tensor:
        """``mutants_per_candidate`` random edits of each row, each of 1 to ``max_edits``
        substitutions at editable positions: where guided edits will go."""
        copies = self.settings.mutants_per_candidate
        if copies == 0 or len(rows) == 0 or self.space.vocab_size < 2:
            return rows[:0]
        rows = rows.repeat(copies, 1)
        editable = (rows != self.codes.pad) & ~self.frozen.to(rows.device)
        count = torch.randint(1, self.settings.max_edits + 1, (len(rows),), generator=rng).to(rows.device)
        u = torch.rand(rows.shape, generator=rng).to(rows.device).masked_fill(~editable, 2.0)
        rank = u.argsort(-1).argsort(-1)
        hit = (rank < count[:, None]) & editable
        shift = torch.randint(1, self.space.vocab_size, rows.shape, generator=rng).to(rows.device)
        return torch.where(hit, (rows + shift) % self.space.vocab_size, rows)

    # -- training --------------------------------------------------------------------------
    def update(self, reward: ProxyReward, dataset: Dataset, rng: torch.Generator) -> dict[str, float]:
        """Train the denoiser on the known rows and the value heads on the proxy's scores of
        known rows and their mutants; then set the seeds and guidance of :meth:`propose`."""
        start = time.perf_counter()
        s = self.settings
        if self.kappa:
            reward = reward.with_kappa(self.kappa)
        known = self.known_rows(dataset, rng)
        if len(known) == 0:
            return {}
        value_rows = torch.cat([known, self.mutants(known, rng)])
        scores = reward.from_tokens(self.codes.to_space(value_rows).cpu()).float()
        finite = torch.isfinite(scores).all(-1)
        value_rows, scores = value_rows[finite.to(value_rows.device)], scores[finite]
        if len(scores) >= 2:
            mean, std = scores.mean(0), scores.std(0).nan_to_num(1.0).clamp_min(1e-6)
        else:  # nothing the proxy can score: the heads learn nothing this round
            mean, std = torch.zeros(self.num_objectives), torch.ones(self.num_objectives)
            value_rows, scores = value_rows[:0], scores[:0]
        targets = ((scores - mean) / std).to(self.device)
        order = torch.randperm(len(value_rows), generator=rng).to(self.device)
        held = int(HOLDOUT_FRACTION * len(order)) if len(order) >= 10 else 0
        test, train = order[:held], order[held:]

        steps = self.steps_per_round + (self.warm_start_steps if self.steps_done == 0 else 0)
        left = None if self.train_seconds is None else self.train_seconds - (time.perf_counter() - start)
        history = self.train(known, value_rows[train], targets[train], steps, rng, seconds=left)
        self.history = history
        crash_point("diffusion.trained")  # trained, seeds and guidance not set

        rank = pareto_rank(dataset.Y.cpu())
        if len(dataset):  # the best measured candidates, by Pareto rank (ties: measured order)
            best = rank.argsort(stable=True)[: s.num_seeds]
            self._seeds = self._rows([dataset.candidates[i] for i in best.tolist()])
        else:
            self._seeds = known[: s.num_seeds]
        self._guidance = self._make_guidance(dataset, rank, mean, std)

        done = len(history["loss"])
        tail = max(1, done // 10)
        metrics = {
            "loss": _mean(history["loss"][-tail:]),
            "denoiser_loss": _mean(history["denoiser_loss"][-tail:]),
            "value_loss": _mean(history["value_loss"][-tail:]),
            "steps": float(done),
            "n_known": float(len(known)),
            "n_distilled": float(len(value_rows)),
            "train_seconds": time.perf_counter() - start,
        }
        if held >= 5:
            metrics["value_spearman"] = self._spearman(value_rows[test], targets[test])
        return metrics

    def train(
        self,
        known: Tensor,
        value_rows: Tensor,
        targets: Tensor,
        steps: int,
        rng: torch.Generator,
        *,
        seconds: float | None = None,
    ) -> dict[str, list[float]]:
        """``steps`` optimizer steps (fewer if ``seconds`` run out) on the denoising loss
        over ``known`` rows and the value loss over ``value_rows`` with standardized
        ``targets``; all rows in :class:`TokenCodes`. Returns the per-step curves."""
        s = self.settings
        start = time.perf_counter()
        history: dict[str, list[float]] = {"loss": [], "denoiser_loss": [], "value_loss": []}
        self.denoiser.train()
        for _ in range(steps):
            if seconds is not None and time.perf_counter() - start > seconds:
                break
            denoise, value = self._losses(known, value_rows, targets, rng)
            loss = denoise + s.value_weight * value
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.denoiser.parameters(), 10.0)
            self.optimizer.step()
            self.steps_done += 1
            history["loss"].append(loss.item())
            history["denoiser_loss"].append(denoise.item())
            history["value_loss"].append(value.item())
        self.denoiser.eval()
        return history

    def _losses(
        self, known: Tensor, value_rows: Tensor, targets: Tensor, rng: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """One forward pass over ``batch_size`` rows: half known rows masked at a noise
        level drawn uniformly for the denoising loss (cross-entropy of the clean tokens at
        masked positions: the absorbing ELBO's terms with unit weight, as LaMBO-2's masked-LM
        training), half distillation rows lightly masked (as guided edits see them) for the
        value heads' squared error, each head on its own Bayesian-bootstrap weights so the
        heads differ where data are thin."""
        s, d = self.settings, self.denoiser
        distil = 0 if len(value_rows) == 0 or s.value_weight == 0 else s.batch_size // 2
        half = max(1, s.batch_size - distil)
        x0 = known[torch.randint(0, len(known), (half,), generator=rng).to(self.device)]
        level = torch.rand(half, generator=rng)
        pick = torch.randint(0, max(1, len(value_rows)), (distil,), generator=rng).to(self.device)
        light = torch.rand(distil, generator=rng) * min(1.0, 2.0 * s.max_edits / self.space.max_length)
        clean = torch.cat([x0, value_rows[pick]])
        noisy = self.corruption.corrupt(clean, torch.cat([level, light]), rng)
        hidden = d.hidden_states(noisy)
        masked = noisy[:half] == self.codes.mask
        logits = d.token_logits(hidden[:half])
        denoise = (
            torch.nn.functional.cross_entropy(logits[masked], x0[masked])
            if masked.any()
            else logits.sum() * 0.0
        )
        if distil == 0:
            return denoise, denoise.detach() * 0.0
        predicted = d.values(hidden[half:], noisy[half:])  # ensemble x distil x m
        weights = -torch.log(torch.rand(predicted.shape[:2], generator=rng).clamp_min(1e-12)).to(self.device)
        value = (weights[..., None] * (predicted - targets[pick]) ** 2).sum(1).mean() / distil
        return denoise, value

    @torch.no_grad()
    def _spearman(self, rows: Tensor, targets: Tensor) -> float:
        predicted = self.denoiser.values(self.denoiser.hidden_states(rows), rows).mean(0).cpu()
        targets = targets.cpu()
        rho = [
            spearmanr(predicted[:, j], targets[:, j]).statistic
            for j in range(targets.shape[1])
            if predicted[:, j].std() > 0 and targets[:, j].std() > 0  # else undefined
        ]
        return sum(rho) / len(rho) if rho else float("nan")

    def _make_guidance(self, dataset: Dataset, rank: Tensor, mean: Tensor, std: Tensor) -> Guidance:
        """This round's guidance; ``rank``: the measured candidates' Pareto ranks."""
        s = self.settings
        if s.guidance == "scalarized" or len(dataset) == 0:
            return ScalarizedGuidance(self.num_objectives, s.alpha)
        Y, mean, std = dataset.Y.float().cpu(), mean.cpu(), std.cpu()
        front = ((Y - mean) / std)[rank == 0]
        ref = (failure_floor(Y) - mean) / std
        return HypervolumeGuidance(front, ref)

    # -- proposals -------------------------------------------------------------------------
    def propose(self, n: int, rng: torch.Generator) -> list[str]:
        """Up to ``n`` guided edits of the seeds (best measured candidates, drawn with
        ``rng``): only edits that improve the guidance objective are proposed, so a pool
        can be smaller than ``n``. Before any update there is nothing to edit, and it
        draws from the space (as the genetic generator does)."""
        if len(self._seeds) == 0:
            return self.space.sample(n, rng)
        picks = torch.randint(0, len(self._seeds), (n,), generator=rng).to(self.device)
        seeds = self._seeds[picks]
        self._guidance.draw(n, rng)
        editable = ~self.frozen.to(self.device).expand(n, -1)
        result = self.sampler.improve(
            seeds,
            self._guidance,
            rng,
            max_edits=self.settings.max_edits,
            editable=editable,
            attempts=self.settings.attempts,
        )
        crash_point("diffusion.guided")  # edits made, not returned
        kept = result.rows[result.accepted.to(self.device)]
        edits = (kept != seeds[result.accepted.to(self.device)]).sum(-1).float()
        self.proposal_metrics = {
            "guidance_acceptance": result.acceptance_rate,
            "accepted": float(len(kept)),
            "mean_edits": float(edits.mean()) if len(kept) else 0.0,
        }
        return self.space.decode(self.codes.to_space(kept).cpu())

    def infill(
        self, candidates: list[str], positions: list[list[int]], rng: torch.Generator, *, guided: bool = True
    ) -> list[str]:
        """Fill in the given 0-based token ``positions`` of each candidate (masked, then
        decoded by the denoiser; ``guided`` steers them by this round's guidance)."""
        if len(candidates) != len(positions):
            raise ValueError(f"{len(candidates)} candidates but {len(positions)} position lists")
        rows = self._rows(candidates)
        chosen = torch.zeros_like(rows, dtype=torch.bool)
        for i, where in enumerate(positions):
            length = int((rows[i] != self.codes.pad).sum())
            bad = [p for p in where if not 0 <= p < length]
            if bad:
                raise ValueError(
                    f"candidate {i} ({candidates[i]!r}): positions {bad} outside 0..{length - 1}"
                )
            chosen[i, list(where)] = True
        self._guidance.draw(len(rows), rng)
        with torch.enable_grad():
            filled = self.sampler.edit(rows, chosen, self._guidance, rng, guided=guided)
        return self.space.decode(self.codes.to_space(filled).cpu())

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A copy (the optimizer's moments would otherwise be shared with a restored one)."""
        return copy.deepcopy(
            {
                "denoiser": self.denoiser.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "steps_done": self.steps_done,
                "token_names": self.space.token_names(),
            }
        )

    def load_state_dict(self, state: dict) -> None:
        if state.get("token_names") != self.space.token_names():
            raise ValueError("this diffusion checkpoint was trained on another token alphabet")
        self.denoiser.load_state_dict(state["denoiser"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps_done = int(state["steps_done"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
