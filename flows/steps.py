"""The steps of a round as plain functions: no Prefect, no MLflow.

``flows/round.py`` runs each as a Prefect task; anything else that drives a round (tests,
a future Python API) calls the same functions, so the paths cannot drift apart. Every
write goes through the CampaignStore, and every step can be re-run after a crash: what
the store already holds is never recomputed or re-measured.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from botorch.models.model import Model

from paretolab.data.dataset import Dataset, dataset_from_observations
from paretolab.data.faults import crash_point
from paretolab.data.pareto import pareto_mask
from paretolab.data.store import CampaignStore, StoreError
from paretolab.flows.engine import (
    INITIAL_DESIGN,
    MIN_VALID_TO_FIT,
    CampaignState,
    reference_point,
    require_valid,
)
from paretolab.flows.factories import CampaignSetup
from paretolab.flows.lab import evaluate_lab
from paretolab.flows.oracle_chunks import (
    MeasureChunks,
    chunks_of,
    join_results,
    measure_here,
    receipt_folder,
)
from paretolab.models.acquisition import Selector, build_qlognehvi, select_batch
from paretolab.models.feasibility import Feasibility, words_of
from paretolab.models.feasibility import fit_feasibility as fit_feasibility_model
from paretolab.models.generators.base import Generator
from paretolab.models.pool_scoring import ScoreChunks, score_here
from paretolab.models.predictions import prediction_table
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy, fitted_rows, training_inputs
from paretolab.models.rewards import ProxyReward, failure_floor
from paretolab.models.selection import SampledHVISelector
from paretolab.oracles.base import OracleError, OracleResult

__all__ = [
    "GeneratorRound",
    "Pool",
    "RefreshGenerators",
    "build_acquisition",
    "build_pool",
    "choose_batch",
    "evaluate",
    "fit_proxy",
    "fit_feasibility",
    "initial_design",
    "load_dataset",
    "record_generator",
    "recorded_proposals",
    "refresh_generator",
    "refresh_in_turn",
    "restore_generator",
    "round_rng",
    "select",
    "stored_proposals",
    "timed",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _now() -> str:
    return datetime.now(UTC).isoformat()


def round_seed(seed: int, round_: int, stream: str) -> int:
    """Independent, reproducible seed for one purpose (``stream``) in one round."""
    key = [seed, round_, *stream.encode()]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)


def round_rng(seed: int, round_: int, stream: str) -> torch.Generator:
    """A CPU torch random generator (``rng``) seeded for ``stream`` in round ``round_``."""
    return torch.Generator().manual_seed(round_seed(seed, round_, stream))


def timed(fn: F, name: str, timings: dict[str, float]) -> F:
    """``fn``, adding its run time to ``timings[name]``: one timing rule for every step,
    whoever runs it (the Prefect flow wraps the result in a task)."""

    @functools.wraps(fn)
    def body(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    return body  # type: ignore[return-value]


# 1 ---------------------------------------------------------------------------------------
def load_dataset(store: CampaignStore, setup: CampaignSetup, device: torch.device) -> Dataset:
    """Finite measurements so far, in maximization space (at least two, to fit a proxy)."""
    observations = store.read("observations")
    require_valid(observations, MIN_VALID_TO_FIT, "fit the proxy")
    dataset = dataset_from_observations(observations, setup.space, setup.objectives, device)
    crash_point("step.load_dataset")
    return dataset


# 2 ---------------------------------------------------------------------------------------
def fit_proxy(setup: CampaignSetup, dataset: Dataset, round_: int) -> tuple[Model, dict[str, float]]:
    """Fit the proxy on the dataset; metrics are held-out RMSE/NLL/Spearman."""
    torch.manual_seed(round_seed(setup.config.seed, round_, "proxy-internal"))
    fitted = fit_gp_proxy(
        dataset.X,
        dataset.Y,
        holdout_fraction=setup.config.proxy.holdout_fraction,
        rng=round_rng(setup.config.seed, round_, "proxy"),
        kernel=setup.proxy_kernel,
        vocab_size=setup.space.vocab_size,
        Yvar=dataset.Yvar,
        max_points=setup.config.proxy.max_points_for(setup.proxy_kernel),
    )
    crash_point("step.fit_proxy")
    return fitted


def fit_feasibility(
    setup: CampaignSetup, dataset: Dataset, round_: int
) -> tuple[Feasibility | None, dict[str, float]]:
    """Fit the feasibility model on measured and failed candidates (``None`` while nothing
    failed, or when ``proxy.feasibility: off``); metrics: ``n_failed``, and the share of bad
    words (word model) or the held-out quality (latent GP)."""
    if setup.config.proxy.feasibility == "off" or dataset.X_failed is None:
        return None, {"n_failed": float(len(dataset.failed))}
    torch.manual_seed(round_seed(setup.config.seed, round_, "feasibility-internal"))
    return fit_feasibility_model(
        dataset.X,
        dataset.X_failed,
        words=words_of(setup.space),
        kernel=setup.proxy_kernel,
        vocab_size=setup.space.vocab_size,
        rng=round_rng(setup.config.seed, round_, "feasibility"),
        holdout_fraction=setup.config.proxy.holdout_fraction,
        max_points=setup.config.proxy.max_points_for(setup.proxy_kernel),
    )


# 3 ---------------------------------------------------------------------------------------
def _baseline(model: Model, dataset: Dataset) -> torch.Tensor:
    """qLogNEHVI's measured baseline: every measured candidate, or past ``proxy.max_points``
    the proxy's subset and the whole measured Pareto front (the subset's best half may not
    hold all of it, and a front point left out would make its region look unexplored)."""
    if fitted_rows(model) is None:
        return dataset.X
    front = dataset.X[pareto_mask(dataset.Y.cpu()).to(dataset.X.device)]
    return torch.unique(torch.cat([training_inputs(model), front]), dim=0)


def build_acquisition(
    setup: CampaignSetup,
    model: Model,
    dataset: Dataset,
    ref_point: torch.Tensor,
    round_: int,
    pending: Sequence[str] = (),
    feasibility: Feasibility | None = None,
) -> Selector:
    """The campaign's acquisition with its fixed reference point; ``pending`` candidates
    (selected, not yet measured) count as pending points, so the batch complements them;
    a ``feasibility`` model weighs candidates by their chance of not failing."""
    X_pending = setup.space.featurize(list(pending)).to(dataset.X) if pending else None
    acquisition = setup.config.acquisition
    seed = round_seed(setup.config.seed, round_, "acquisition") % (2**31)
    if acquisition.kind == "sampled_hvi":
        acqf: Selector = SampledHVISelector(
            model,
            dataset.Y,
            ref_point.to(dataset.Y),
            n_samples=acquisition.mc_samples,
            seed=seed,
            X_pending=X_pending,
            feasibility=feasibility,
        )
    else:
        with exact_gp():  # pruning the baseline evaluates the posterior
            acqf = build_qlognehvi(
                model,
                _baseline(model, dataset),
                ref_point.to(dataset.X),
                mc_samples=acquisition.mc_samples,
                seed=seed,
                X_pending=X_pending,
                feasibility=feasibility,
            )
    crash_point("step.build_acquisition")
    return acqf


PROXY_CHECKPOINT = "proxy"
"""The proxy's per-round state is stored (and logged) under this name, beside the generators'."""


def proxy_checkpoint(setup: CampaignSetup, dataset: Dataset, model: Model) -> bytes:
    """What a round's proxy is: its fitted state, the data it was fitted on (the candidates
    and their values in max space; their features are recomputed from the space, so a
    checkpoint stays small) and how to build it again
    (:func:`paretolab.models.proxies.gp.build_gp`), as bytes for the store."""
    rows = fitted_rows(model)  # past proxy.max_points: the subset it was fitted on
    if rows is not None:
        dataset = dataset.subset(rows)
    return _state_to_bytes(
        {
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "Y": dataset.Y.detach().cpu(),
            "Yvar": None if dataset.Yvar is None else dataset.Yvar.detach().cpu(),
            "candidates": list(dataset.candidates),
            "kernel": setup.proxy_kernel,
            "vocab_size": setup.space.vocab_size,
            "objectives": [[o.name, o.direction, o.unit] for o in setup.objectives],
        }
    )


# 4 ---------------------------------------------------------------------------------------
def restore_generator(store: CampaignStore, generator: Generator, round_: int) -> None:
    """Bring ``generator`` to the state its update in ``round_`` starts from: its last
    round's, loaded from the store after a restart (so a resumed campaign trains exactly as
    an uninterrupted one); on a first update its untrained state is stored, for a retry to
    start from."""
    if generator.trained_round != round_ - 1:
        checkpoint = store.load_checkpoint(generator.name, round_)
        if checkpoint is not None:
            generator.load_state_dict(_state_from_bytes(*checkpoint[1:]))
        elif state := generator.state_dict():
            store.save_checkpoint(generator.name, None, _state_to_bytes(state))
    generator.trained_round = None  # until this update is stored: a retry reloads


@dataclass
class GeneratorRound:
    """What one generator's update and sampling in a round produced, wherever they ran."""

    name: str
    metrics: dict[str, float]
    """The update's training metrics, the sampler's, and the seconds each took."""
    state: bytes | None
    """The trained state (``None``: the generator keeps none)."""
    history: dict[str, list[float]]
    """Per-step training curves."""
    proposed: list[str]


def refresh_generator(
    generator: Generator, reward: ProxyReward, dataset: Dataset, n: int, seed: int, round_: int
) -> GeneratorRound:
    """Update one generator against this round's reward and sample ``n`` candidates from
    it. Stores nothing, and draws only from its own streams of the campaign ``seed``: the
    generators of a round can run side by side, in threads or on other machines, and give
    what they give one after another."""
    start = time.perf_counter()
    metrics = generator.update(reward, dataset, round_rng(seed, round_, f"update-{generator.name}"))
    crash_point("step.update_generator")  # trained, nothing stored yet
    state = generator.state_dict()
    state_bytes = _state_to_bytes(state) if state else None  # before sampling can touch it
    trained = time.perf_counter()
    generator.proposal_metrics = {}
    proposed = generator.propose(n, round_rng(seed, round_, f"propose-{generator.name}"))
    crash_point("step.propose")  # sampled, not recorded
    return GeneratorRound(
        name=generator.name,
        metrics=metrics
        | generator.proposal_metrics
        | {"update_seconds": trained - start, "propose_seconds": time.perf_counter() - trained},
        state=state_bytes,
        history={key: [float(v) for v in values] for key, values in generator.history.items()},
        proposed=list(proposed),
    )


RefreshGenerators = Callable[[Sequence[tuple[Any, ...]]], list[GeneratorRound | Exception]]
"""``refresh(jobs)``: :func:`refresh_generator` for each job's arguments, run wherever it
chooses (the flow maps them as tasks on its task runner); the results in the jobs' order,
a job that failed as its exception (the jobs after it may be left out)."""


def refresh_in_turn(jobs: Sequence[tuple[Any, ...]]) -> list[GeneratorRound | Exception]:
    """Refresh the generators here, one after another, up to the first that fails."""
    results: list[GeneratorRound | Exception] = []
    for job in jobs:
        try:
            results.append(refresh_generator(*job))
        except Exception as exc:
            results.append(exc)
            break
    return results


def record_generator(
    store: CampaignStore, setup: CampaignSetup, generator: Generator, refreshed: GeneratorRound, round_: int
) -> dict[str, float]:
    """Store a refreshed generator's state, training curves and proposals (checked against
    the space); ``generator`` takes the trained state, wherever it was trained."""
    if refreshed.state is not None:
        generator.load_state_dict(_state_from_bytes(Path(f"<{generator.name} update>"), refreshed.state))
        store.save_checkpoint(generator.name, round_, refreshed.state)
    generator.trained_round = round_
    generator.history = refreshed.history
    curves = [
        {"round": round_, "generator": generator.name, "step": i, "metric": key, "value": v}
        for key, values in refreshed.history.items()
        for i, v in enumerate(values)
    ]
    if curves:
        store.append("training", pd.DataFrame(curves))
    checks = [setup.space.check(x) for x in refreshed.proposed]
    store.append(
        "proposals",
        pd.DataFrame(
            {
                "round": round_,
                "generator": generator.name,
                "candidate": refreshed.proposed,
                "canonical": [c.canonical for c in checks],
                "reason": [c.reason for c in checks],
            }
        ),
    )
    return refreshed.metrics


def load_latest_state(store: CampaignStore, generator: Generator) -> int | None:
    """Load the latest stored state of ``generator`` (its last trained round's; -1: the
    untrained state); ``None`` when nothing is stored. The next update reloads its own."""
    checkpoint = store.load_checkpoint(generator.name, 2**31)
    if checkpoint is None:
        return None
    generator.load_state_dict(_state_from_bytes(*checkpoint[1:]))
    generator.trained_round = None
    return checkpoint[0]


def _state_to_bytes(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _state_from_bytes(path: Path, data: bytes) -> dict[str, Any]:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise StoreError(f"{path}: corrupted or truncated generator checkpoint ({exc})") from None


# 5 ---------------------------------------------------------------------------------------
def stored_proposals(store: CampaignStore, round_: int, generator: str) -> pd.DataFrame:
    """Proposals already recorded for ``generator`` in ``round_`` (after a crash)."""
    proposals = store.read("proposals")
    return proposals[(proposals["round"] == round_) & (proposals["generator"] == generator)]


def recorded_proposals(
    store: CampaignStore, round_: int, generator: str
) -> tuple[list[str], dict[str, float]]:
    """The valid candidates ``generator`` proposed in ``round_`` (as recorded), and the
    shares of valid and distinct ones."""
    stored = stored_proposals(store, round_, generator)
    valid = [c for c in stored["canonical"] if isinstance(c, str)]
    n = len(stored)
    return valid, {
        "n": float(n),
        "valid_fraction": len(valid) / n if n else 0.0,
        "unique_fraction": len(set(valid)) / n if n else 0.0,
    }


# 6 ---------------------------------------------------------------------------------------
@dataclass
class Pool:
    """Distinct, unmeasured candidates and the generator that first proposed each."""

    candidates: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.candidates)


def build_pool(store: CampaignStore, proposals: dict[str, list[str]]) -> Pool:
    """Merge proposals; drop duplicates, measured candidates and pending ones."""
    taken = set(CampaignState.read(store).taken)
    pool = Pool()
    for source, candidates in proposals.items():
        for c in candidates:
            if c not in taken:
                taken.add(c)
                pool.candidates.append(c)
                pool.sources.append(source)
    crash_point("step.build_pool")
    return pool


# 7 ---------------------------------------------------------------------------------------
def select(
    store: CampaignStore,
    setup: CampaignSetup,
    acqf: Selector,
    pool: Pool,
    q: int,
    round_: int,
    device: torch.device,
    metrics: dict[str, float],
    model: Model | None = None,
    score: ScoreChunks = score_here,
) -> pd.DataFrame:
    """Pick the batch from the pool with the acquisition; record it with the round's metrics
    and, given the proxy ``model``, its predictions for the picked candidates. The pool is
    scored in chunks of ``runtime.task_runner.score_chunk`` through ``score``."""
    start = time.perf_counter()
    X = setup.space.featurize(pool.candidates).to(device)
    chunk = setup.config.runtime.task_runner.score_chunk
    with exact_gp():
        indices, values = select_batch(acqf, X, q, chunk=chunk, score=score)
    metrics = metrics | {"time/select_batch": time.perf_counter() - start}
    predictions = (
        prediction_table(model, X[indices], [pool.candidates[i] for i in indices], setup.objectives, round_)
        if model is not None
        else None
    )
    batch = pd.DataFrame(
        {
            "round": round_,
            "position": range(len(indices)),
            "candidate": [pool.candidates[i] for i in indices],
            "generator": [pool.sources[i] for i in indices],
            "acquisition_value": values,
        }
    )
    metrics["acquisition/mean"] = float(batch["acquisition_value"].mean()) if len(batch) else 0.0
    metrics |= {
        f"generator/{name}/selected": float((batch["generator"] == name).sum()) for name in set(pool.sources)
    }
    batch["metrics"] = json.dumps(metrics)
    crash_point("step.select")  # chosen, not recorded
    if predictions is not None and len(predictions):
        store.append("predictions", predictions)
    store.append("batches", batch)
    return batch


def choose_batch(
    store: CampaignStore,
    setup: CampaignSetup,
    round_: int,
    batch_size: int,
    device: torch.device,
    run: Callable[[str, Any], Any] = lambda name, fn: fn,
    *,
    refresh: RefreshGenerators = refresh_in_turn,
    score: ScoreChunks = score_here,
) -> dict[str, float]:
    """Steps 1-7 of a round: fit the proxy, refresh and sample every generator, pool, and
    select and record the batch. Returns the round's metrics so far.

    ``run(step_name, fn)`` wraps each step: the Prefect flow makes each a task, a plain
    caller (the Python API) runs them as they are. ``refresh`` runs the generators'
    updates (side by side, in the flow) and ``score`` the pool's scoring chunks. Candidates
    selected earlier and not measured yet are pending points of the acquisition and never
    enter the pool.
    """
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}

    def step(name: str, fn: Any) -> Any:
        return timed(run(name, fn), name, timings)

    dataset = step("load_dataset", load_dataset)(store, setup, device)
    metrics["n_train"] = float(len(dataset))
    model, proxy_metrics = step("fit_proxy", fit_proxy)(setup, dataset, round_)
    store.save_checkpoint(PROXY_CHECKPOINT, round_, proxy_checkpoint(setup, dataset, model))
    metrics |= {f"proxy/{k}": v for k, v in proxy_metrics.items() if k != "n_train"}
    feasibility, feasibility_metrics = step("fit_feasibility", fit_feasibility)(setup, dataset, round_)
    metrics |= {f"feasibility/{k}": v for k, v in feasibility_metrics.items()}
    ref_point = reference_point(store, setup)
    pending = CampaignState.read(store).pending
    metrics["n_pending"] = float(len(pending))
    acqf = step("build_acquisition", build_acquisition)(
        setup, model, dataset, ref_point, round_, pending, feasibility
    )
    reward = ProxyReward(model, setup.space, feasibility=feasibility, floor=failure_floor(dataset.Y))
    # 4-5: every generator whose proposals are not recorded yet (all, unless resumed)
    # updates and samples; then each one's results are stored, in the configured order
    todo = [
        (generator, gen_config)
        for generator, gen_config in zip(setup.generators, setup.config.generators, strict=True)
        if stored_proposals(store, round_, generator.name).empty
    ]
    for generator, _ in todo:
        restore_generator(store, generator, round_)
    jobs = [(g, reward, dataset, c.pool_size, setup.config.seed, round_) for g, c in todo]
    refreshed = timed(refresh, "update_generator", timings)(jobs) if jobs else []
    for (generator, _), result in zip(todo, refreshed, strict=False):
        if isinstance(result, Exception):  # those before it are stored: a retry skips them
            raise result
        updated = step("propose", record_generator)(store, setup, generator, result, round_)
        metrics |= {f"generator/{generator.name}/{k}": v for k, v in updated.items()}
    proposals: dict[str, list[str]] = {}
    for generator in setup.generators:
        proposals[generator.name], proposed = recorded_proposals(store, round_, generator.name)
        metrics |= {f"generator/{generator.name}/{k}": v for k, v in proposed.items()}
    pool = step("build_pool", build_pool)(store, proposals)
    metrics["pool_size"] = float(len(pool))
    metrics |= {f"time/{k}": v for k, v in timings.items()}
    step("select_batch", select)(store, setup, acqf, pool, batch_size, round_, device, metrics, model, score)
    return metrics | {f"time/{k}": v for k, v in timings.items()}


def initial_design(store: CampaignStore, setup: CampaignSetup, n: int, round_: int = 0) -> pd.DataFrame:
    """``n`` distinct random candidates, none measured or selected before, recorded as the
    batch of ``round_`` (round 0 in a campaign that starts from nothing). They come from the
    oracle's seed distribution where it has one (feasible starting points), else uniformly
    from the space."""
    rng = round_rng(setup.config.seed, round_, "initial-design")
    taken = CampaignState.read(store).taken
    chosen: list[str] = []
    for _ in range(100):
        seeds = setup.oracle.seed_candidates(n, rng)
        draws = setup.space.sample(n, rng) if seeds is None else setup.space.canonicalize(seeds)
        for x in (x for x in draws if x is not None):
            if x not in chosen and x not in taken and len(chosen) < n:
                chosen.append(x)
        if len(chosen) == n:
            break
    batch = pd.DataFrame(
        {
            "round": round_,
            "position": range(len(chosen)),
            "candidate": chosen,
            "generator": INITIAL_DESIGN,
            "acquisition_value": math.nan,
            "metrics": "{}",
        }
    )
    store.append("batches", batch)
    return batch


# 8 ---------------------------------------------------------------------------------------
def _send(
    store: CampaignStore,
    setup: CampaignSetup,
    round_: int,
    request_id: str,
    attempt: int,
    xs: list[str],
    measure: MeasureChunks,
) -> OracleResult:
    """Record a request, then send it in chunks (``runtime.task_runner.oracle_chunk``), each
    candidate's result kept in a receipt as it comes back: the ledger always knows what was
    sent, and a candidate sent again is paid once (:mod:`paretolab.flows.oracle_chunks`)."""
    store.append(
        "requests",
        pd.DataFrame(
            {
                "request_id": request_id,
                "round": round_,
                "attempt": attempt,
                "candidate": xs,
                "sent_at": _now(),
            }
        ),
    )
    crash_point("evaluate.before_oracle")
    chunks = chunks_of(xs, setup.config.runtime.task_runner.oracle_chunk)
    result = join_results(measure(setup.oracle, chunks, receipt_folder(store.root, round_)))
    crash_point("evaluate.after_oracle")
    return result


def evaluate(
    store: CampaignStore, setup: CampaignSetup, round_: int, measure: MeasureChunks = measure_here
) -> dict[str, float]:
    """Measure this round's batch: the only oracle call. ``measure`` runs its chunks (the
    flow maps them as tasks on its task runner; by default they run here, in turn).

    A lab (asynchronous) oracle is sent the batch as a request instead, and the result says
    whether the round waits for it (``awaiting``); see :func:`paretolab.flows.lab.evaluate_lab`.

    Candidates already measured are skipped, so a resumed round never pays twice. Every
    request is recorded before it is sent; one cut off by a crash is sent again as the
    next attempt. If the batch call fails as a whole, its candidates are sent one by one
    (each recorded) so that only the failing ones are marked failed; if every one fails,
    OracleError propagates and the caller retries.
    """
    if setup.oracle.asynchronous:
        return evaluate_lab(store, setup.oracle, round_, setup.config.lab)  # type: ignore[arg-type]
    batch = store.read("batches")
    measured = set(store.read("observations")["candidate"])
    todo = [c for c in batch.loc[batch["round"] == round_, "candidate"] if c not in measured]
    if not todo:
        return {"n_sent": 0.0}
    requests = store.read("requests")
    previous = requests.loc[requests["round"] == round_, "attempt"]
    attempt = int(previous.max()) + 1 if len(previous) else 1
    request_id = f"round{round_}-attempt{attempt}"
    try:
        result = _send(store, setup, round_, request_id, attempt, todo, measure)
    except OracleError as error:
        if not setup.oracle.isolate_failures or len(todo) == 1:
            raise
        logger.warning("round %d: %s; sending the %d candidates one by one", round_, error, len(todo))
        values, reasons = [], []
        for i, x in enumerate(todo):
            try:
                single = _send(store, setup, round_, f"{request_id}-single{i}", attempt, [x], measure)
            except OracleError as failure:
                single = OracleResult(torch.full((1, len(setup.objectives)), math.nan), [str(failure)])
            values.append(single.values)
            reasons.extend(single.reasons)
        if all(r is not None for r in reasons):
            raise OracleError(f"every candidate failed on its own too, e.g. {reasons[0]}") from error
        result = OracleResult(torch.cat(values), reasons)
    rows = pd.DataFrame(
        {
            "round": round_,
            "candidate": todo,
            "request_id": request_id,
            "valid": result.valid.numpy(),
            "reason": result.reasons,
            "measured_at": _now(),
        }
    )
    for j, objective in enumerate(setup.objectives):
        rows[objective.name] = result.values[:, j].numpy()
    store.append("observations", rows)  # the record now; its receipts go when the run ends
    n_valid = int(result.valid.sum())
    for reason in {r for r in result.reasons if r}:
        logger.warning("round %d: failed measurement: %s", round_, reason)
    return {"n_sent": float(len(todo)), "valid_fraction": n_valid / len(todo), "attempt": float(attempt)}
