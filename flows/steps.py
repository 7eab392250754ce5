"""The steps of a round as plain functions: no Prefect, no MLflow.

``flows/round.py`` runs each as a Prefect task; anything else that drives a round (tests,
a future Python API) calls the same functions, so the paths cannot drift apart. Every
write goes through the CampaignStore, and every step can be re-run after a crash: what
the store already holds is never recomputed or re-measured.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models.model import Model

from data.dataset import Dataset, dataset_from_observations, pareto_rows, raw_values, valid_observations
from data.faults import crash_point
from data.objectives import Objective, to_max_space
from data.pareto import hypervolume, infer_ref_point, pareto_mask
from data.store import CampaignStore
from flows.factories import CampaignSetup
from flows.lab import evaluate_lab
from models.acquisition import build_qlognehvi, select_batch
from models.generators.base import Generator
from models.proxies.gp import exact_gp, fit_gp_proxy
from models.rewards import ProxyReward
from oracles.base import OracleError, OracleResult

__all__ = [
    "INITIAL_DESIGN",
    "NotEnoughDataError",
    "Pool",
    "build_acquisition",
    "build_pool",
    "choose_batch",
    "ensure_ref_point",
    "evaluate",
    "fit_proxy",
    "initial_design",
    "load_dataset",
    "needs_initial_design",
    "next_round",
    "pareto_table",
    "pending_candidates",
    "propose",
    "record",
    "round_generator",
    "select",
    "stored_proposals",
    "update_generator",
]

logger = logging.getLogger(__name__)

INITIAL_DESIGN = "initial"
"""Generator name recorded for a random initial design (round 0's batch, unless two valid
measurements were told before it)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def round_seed(seed: int, round_: int, stream: str) -> int:
    """Independent, reproducible seed for one purpose (``stream``) in one round."""
    key = [seed, round_, *stream.encode()]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint64)[0] >> 1)


def round_generator(seed: int, round_: int, stream: str) -> torch.Generator:
    """A CPU torch.Generator seeded for ``stream`` in round ``round_``."""
    return torch.Generator().manual_seed(round_seed(seed, round_, stream))


# 1 ---------------------------------------------------------------------------------------
def load_dataset(store: CampaignStore, setup: CampaignSetup, device: torch.device) -> Dataset:
    """Finite measurements so far, in maximization space (at least two, to fit a proxy)."""
    observations = store.read("observations")
    require_measurements(observations, 2, "fit the proxy")
    dataset = dataset_from_observations(observations, setup.space, setup.objectives, device)
    crash_point("step.load_dataset")
    return dataset


class NotEnoughDataError(RuntimeError):
    """Too few valid measurements to go on; rerunning will not help."""


def require_measurements(observations: pd.DataFrame, n: int, purpose: str) -> None:
    """Raise NotEnoughDataError, with the failure reasons, unless ``n`` rows are valid."""
    valid = len(valid_observations(observations))  # a replaced value counts once
    if valid >= n:
        return
    reasons = observations.loc[~observations["valid"], "reason"].value_counts().head(3)
    why = "; ".join(f"{count} x {reason}" for reason, count in reasons.items()) or "nothing measured"
    raise NotEnoughDataError(
        f"need at least {n} valid measurement(s) to {purpose}, have {valid} ({why}); "
        "check the oracle (or tell more results), or start over with a larger initial_design"
    )


# 2 ---------------------------------------------------------------------------------------
def fit_proxy(setup: CampaignSetup, dataset: Dataset, round_: int) -> tuple[Model, dict[str, float]]:
    """Fit the proxy on the dataset; metrics are held-out RMSE/NLL/Spearman."""
    torch.manual_seed(round_seed(setup.config.seed, round_, "proxy-internal"))
    fitted = fit_gp_proxy(
        dataset.X,
        dataset.Y,
        holdout_fraction=setup.config.proxy.holdout_fraction,
        generator=round_generator(setup.config.seed, round_, "proxy"),
        kernel=setup.proxy_kernel,
    )
    crash_point("step.fit_proxy")
    return fitted


# 3 ---------------------------------------------------------------------------------------
def build_acquisition(
    setup: CampaignSetup,
    model: Model,
    dataset: Dataset,
    ref_point: torch.Tensor,
    round_: int,
    pending: Sequence[str] = (),
) -> AcquisitionFunction:
    """The campaign's acquisition with its fixed reference point; ``pending`` candidates
    (selected, not yet measured) count as pending points, so the batch complements them."""
    X_pending = setup.space.featurize(list(pending)).to(dataset.X) if pending else None
    with exact_gp():  # pruning the baseline evaluates the posterior
        acqf = build_qlognehvi(
            model,
            dataset.X,
            ref_point.to(dataset.X),
            mc_samples=setup.config.acquisition.mc_samples,
            seed=round_seed(setup.config.seed, round_, "acquisition") % (2**31),
            X_pending=X_pending,
        )
    crash_point("step.build_acquisition")
    return acqf


# 4 ---------------------------------------------------------------------------------------
def update_generator(
    store: CampaignStore,
    setup: CampaignSetup,
    generator: Generator,
    reward: ProxyReward,
    dataset: Dataset,
    round_: int,
) -> dict[str, float]:
    """Refresh one generator against this round's reward, warm-started from its last round.

    After a restart the state of the latest earlier round is loaded from the store, so a
    resumed campaign trains exactly as an uninterrupted one; the new state and the training
    curves are stored.
    """
    if generator.trained_round != round_ - 1:
        checkpoint = store.load_checkpoint(generator.name, round_)
        if checkpoint is not None:
            generator.load_state_dict(checkpoint[1])
        elif state := generator.state_dict():  # the untrained state, for a retry to start from
            store.save_checkpoint(generator.name, None, state)
    generator.trained_round = None  # until this update is stored: a retry reloads
    metrics = generator.update(
        reward, dataset, round_generator(setup.config.seed, round_, f"update-{generator.name}")
    )
    crash_point("step.update_generator")  # trained, nothing stored yet
    state = generator.state_dict()
    if state:
        store.save_checkpoint(generator.name, round_, state)
    generator.trained_round = round_
    curves = [
        {"round": round_, "generator": generator.name, "step": i, "metric": key, "value": float(v)}
        for key, values in generator.history.items()
        for i, v in enumerate(values)
    ]
    if curves:
        store.append("training", pd.DataFrame(curves))
    return metrics


# 5 ---------------------------------------------------------------------------------------
def stored_proposals(store: CampaignStore, round_: int, generator: str) -> pd.DataFrame:
    """Proposals already recorded for ``generator`` in ``round_`` (after a crash)."""
    proposals = store.read("proposals")
    return proposals[(proposals["round"] == round_) & (proposals["generator"] == generator)]


def propose(
    store: CampaignStore, setup: CampaignSetup, generator: Generator, n: int, round_: int
) -> tuple[list[str], dict[str, float]]:
    """Sample ``n`` candidates from one generator and record them; returns the valid ones.

    A resumed round reuses the proposals recorded before the crash.
    """
    stored = stored_proposals(store, round_, generator.name)
    if len(stored):
        raw = stored["candidate"].tolist()
        canonical = [c if isinstance(c, str) else None for c in stored["canonical"]]
    else:
        raw = generator.propose(n, round_generator(setup.config.seed, round_, f"propose-{generator.name}"))
        checks = [setup.space.check(x) for x in raw]
        canonical = [c.canonical for c in checks]
        crash_point("step.propose")  # sampled, not recorded
        store.append(
            "proposals",
            pd.DataFrame(
                {
                    "round": round_,
                    "generator": generator.name,
                    "candidate": raw,
                    "canonical": canonical,
                    "reason": [c.reason for c in checks],
                }
            ),
        )
    valid = [c for c in canonical if c is not None]
    metrics = {
        "n": float(len(raw)),
        "valid_fraction": len(valid) / len(raw) if raw else 0.0,
        "unique_fraction": len(set(valid)) / len(raw) if raw else 0.0,
    }
    return valid, metrics


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
    taken = set(store.read("observations")["candidate"]) | set(store.read("batches")["candidate"])
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
    acqf: AcquisitionFunction,
    pool: Pool,
    q: int,
    round_: int,
    device: torch.device,
    metrics: dict[str, float],
    model: Model | None = None,
) -> pd.DataFrame:
    """Pick the batch from the pool with the acquisition; record it with the round's metrics
    and, given the proxy ``model``, its predictions for the picked candidates."""
    start = time.perf_counter()
    X = setup.space.featurize(pool.candidates).to(device)
    with exact_gp():
        indices, values = select_batch(acqf, X, q)
    metrics = metrics | {"time/select_batch": time.perf_counter() - start}
    predictions = _predictions(model, X[indices], [pool.candidates[i] for i in indices], setup, round_)
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
    if predictions is not None:
        store.append("predictions", predictions)
    store.append("batches", batch)
    return batch


def _predictions(
    model: Model | None, X: torch.Tensor, candidates: list[str], setup: CampaignSetup, round_: int
) -> pd.DataFrame | None:
    """The proxy's posterior mean and standard deviation, in raw units, one row per
    candidate and objective."""
    if model is None or not candidates:
        return None
    with torch.no_grad(), exact_gp():
        posterior = model.posterior(X)
        mean = to_max_space(posterior.mean.double(), setup.objectives).cpu()  # back to raw units
        std = posterior.variance.double().clamp_min(0).sqrt().cpu()
    m = len(setup.objectives)
    return pd.DataFrame(
        {
            "round": round_,
            "candidate": np.repeat(candidates, m),
            "objective": [o.name for o in setup.objectives] * len(candidates),
            "mean": mean.reshape(-1).numpy(),
            "std": std.reshape(-1).numpy(),
        }
    )


def pending_candidates(store: CampaignStore) -> list[str]:
    """Candidates selected for measurement and not measured yet (no value, no failure),
    except those of lab rounds that went on without them (``continue_after_hours``)."""
    batches = store.read("batches")
    events = store.read("lab_events")
    given_up = set(events.loc[events["event"] == "continued", "round"].tolist())
    measured = set(store.read("observations")["candidate"])
    return [
        c
        for c, r in zip(batches["candidate"], batches["round"], strict=True)
        if c not in measured and r not in given_up
    ]


def next_round(store: CampaignStore) -> int:
    """The round the next batch belongs to: the one after the last batch or closed round.

    Measurements told without being asked for are recorded in it too, so the round
    numbers (and with them every seed) do not depend on how results were told.
    """
    used = [
        int(store.read(table)["round"].max()) for table in ("batches", "rounds") if len(store.read(table))
    ]
    return max(used) + 1 if used else 0


def needs_initial_design(store: CampaignStore, round_: int) -> bool:
    """Whether round ``round_``'s batch is the random initial design: round 0, without the
    two valid measurements a proxy needs (measurements told beforehand may provide them)."""
    return round_ == 0 and len(valid_observations(store.read("observations"))) < 2


def choose_batch(
    store: CampaignStore,
    setup: CampaignSetup,
    round_: int,
    batch_size: int,
    device: torch.device,
    run: Callable[[str, Any], Any] = lambda name, fn: fn,
) -> dict[str, float]:
    """Steps 1-7 of a round: fit the proxy, refresh and sample every generator, pool, and
    select and record the batch. Returns the round's metrics so far.

    ``run(step_name, fn)`` wraps each step: the Prefect flow makes each a task, a plain
    caller (the Python API) runs them as they are. Candidates selected earlier and not
    measured yet are pending points of the acquisition and never enter the pool.
    """
    metrics: dict[str, float] = {}
    timings: dict[str, float] = {}

    def step(name: str, fn: Any) -> Any:
        wrapped = run(name, fn)

        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return wrapped(*args)
            finally:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

        return timed

    dataset = step("load_dataset", load_dataset)(store, setup, device)
    metrics["n_train"] = float(len(dataset))
    model, proxy_metrics = step("fit_proxy", fit_proxy)(setup, dataset, round_)
    metrics |= {f"proxy/{k}": v for k, v in proxy_metrics.items() if k != "n_train"}
    ref_point = ensure_ref_point(store, setup)
    pending = pending_candidates(store)
    metrics["n_pending"] = float(len(pending))
    acqf = step("build_acquisition", build_acquisition)(setup, model, dataset, ref_point, round_, pending)
    reward = ProxyReward(model, setup.space)
    proposals: dict[str, list[str]] = {}
    for generator, gen_config in zip(setup.generators, setup.config.generators, strict=True):
        if stored_proposals(store, round_, generator.name).empty:
            updated = step("update_generator", update_generator)(
                store, setup, generator, reward, dataset, round_
            )
            metrics |= {f"generator/{generator.name}/{k}": v for k, v in updated.items()}
        proposals[generator.name], proposed = step("propose", propose)(
            store, setup, generator, gen_config.pool_size, round_
        )
        metrics |= {f"generator/{generator.name}/{k}": v for k, v in proposed.items()}
    pool = step("build_pool", build_pool)(store, proposals)
    metrics["pool_size"] = float(len(pool))
    metrics |= {f"time/{k}": v for k, v in timings.items()}
    step("select_batch", select)(store, setup, acqf, pool, batch_size, round_, device, metrics, model)
    return metrics | {f"time/{k}": v for k, v in timings.items()}


def initial_design(store: CampaignStore, setup: CampaignSetup, n: int, round_: int = 0) -> pd.DataFrame:
    """``n`` distinct random candidates, none measured or selected before, recorded as the
    batch of ``round_`` (round 0 in a campaign that starts from nothing)."""
    generator = round_generator(setup.config.seed, round_, "initial-design")
    taken = set(store.read("observations")["candidate"]) | set(store.read("batches")["candidate"])
    chosen: list[str] = []
    for _ in range(100):
        for x in setup.space.sample(n, generator):
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
    store: CampaignStore, setup: CampaignSetup, round_: int, request_id: str, attempt: int, xs: list[str]
) -> OracleResult:
    """Record a request, then send it: the ledger always knows what was sent."""
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
    result = setup.oracle(xs)
    crash_point("evaluate.after_oracle")
    return result


def evaluate(store: CampaignStore, setup: CampaignSetup, round_: int) -> dict[str, float]:
    """Measure this round's batch: the only oracle call.

    A lab (asynchronous) oracle is sent the batch as a request instead, and the result says
    whether the round waits for it (``awaiting``); see :func:`flows.lab.evaluate_lab`.

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
        result = _send(store, setup, round_, request_id, attempt, todo)
    except OracleError as error:
        if not setup.oracle.isolate_failures or len(todo) == 1:
            raise
        logger.warning("round %d: %s; sending the %d candidates one by one", round_, error, len(todo))
        values, reasons = [], []
        for i, x in enumerate(todo):
            try:
                single = _send(store, setup, round_, f"{request_id}-single{i}", attempt, [x])
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
    store.append("observations", rows)
    n_valid = int(result.valid.sum())
    for reason in {r for r in result.reasons if r}:
        logger.warning("round %d: failed measurement: %s", round_, reason)
    return {"n_sent": float(len(todo)), "valid_fraction": n_valid / len(todo), "attempt": float(attempt)}


# 9 ---------------------------------------------------------------------------------------
def record(
    store: CampaignStore, setup: CampaignSetup, round_: int, metrics: dict[str, float]
) -> dict[str, float]:
    """Close the round: Pareto set and hypervolume of measured values, round summary row.

    The values are those of rounds up to ``round_`` (a round closed late does not count
    later rounds' results). If the campaign's reference point is not fixed yet, this fixes
    it (see :func:`ensure_ref_point`).
    """
    observations = store.read("observations")
    observations = observations[observations["round"] <= round_]
    Y = to_max_space(raw_values(valid_observations(observations), setup.objectives), setup.objectives)
    ref = ensure_ref_point(store, setup, round_)
    summary = {
        "hypervolume": hypervolume(Y, ref),
        "n_pareto": int(pareto_mask(Y).sum()),
        "n_observations": int(observations["candidate"].nunique()),
        "oracle_calls": len(store.read("requests")),
    }
    crash_point("step.record")  # round measured, summary not written
    store.append(
        "rounds",
        pd.DataFrame([{"round": round_, "completed_at": _now(), **summary, "metrics": json.dumps(metrics)}]),
    )
    return {k: float(v) for k, v in summary.items()}


def ensure_ref_point(
    store: CampaignStore, setup: CampaignSetup, up_to_round: int | None = None
) -> torch.Tensor:
    """The campaign's reference point in maximization space, fixed once: the config's or
    oracle's, else inferred (BoTorch's rule) from the valid measurements at that time, of
    rounds up to ``up_to_round`` if given."""
    if "ref_point" not in store.meta:
        if setup.config_ref_point is not None:
            ref = setup.config_ref_point
        else:
            observations = store.read("observations")
            if up_to_round is not None:
                observations = observations[observations["round"] <= up_to_round]
            require_measurements(observations, 1, "infer the reference point")
            Y = to_max_space(raw_values(valid_observations(observations), setup.objectives), setup.objectives)
            ref = infer_ref_point(Y)
            logger.info("inferred reference point %s from the first measurements", ref.tolist())
        store.update_meta(ref_point=ref.tolist())
    return torch.tensor(store.meta["ref_point"], dtype=torch.double)


def pareto_table(store: CampaignStore, objectives: Sequence[Objective]) -> pd.DataFrame:
    """Measured candidates on the current Pareto front, raw objective values."""
    return pareto_rows(store.read("observations"), objectives)
