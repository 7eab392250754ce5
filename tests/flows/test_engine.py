"""The campaign engine's rules, on a real store with hand-written ledger rows: no Prefect,
no model fits (the fast tier)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from paretolab.data.objectives import Objective
from paretolab.data.pareto import hypervolume
from paretolab.data.store import CampaignStore
from paretolab.flows.engine import (
    MIN_VALID_TO_FIT,
    CampaignState,
    NotEnoughDataError,
    close_ready_rounds,
    close_round,
    generator_shares,
    reference_point,
    require_valid,
)

OBJECTIVES = (Objective("a", "max"), Objective("b", "min"))


def _setup(budget=None, initial_design=4, batch_size=2, ref=None):
    config = SimpleNamespace(budget=budget, initial_design=initial_design, batch_size=batch_size)
    return SimpleNamespace(config=config, objectives=OBJECTIVES, config_ref_point=ref)


@pytest.fixture
def store(tmp_path):
    meta = {"name": "t", "objectives": [[o.name, o.direction, o.unit] for o in OBJECTIVES]}
    with CampaignStore.create(tmp_path / "c", meta) as opened:
        yield opened


def _batch(store, round_, candidates, metrics=None, generators="initial"):
    store.append(
        "batches",
        pd.DataFrame(
            {
                "round": round_,
                "position": range(len(candidates)),
                "candidate": candidates,
                "generator": generators,
                "acquisition_value": math.nan,
                "metrics": json.dumps(metrics or {}),
            }
        ),
    )


def _measure(store, round_, rows):
    """``rows``: (candidate, a, b) or (candidate, failure reason)."""
    frame = pd.DataFrame(
        {
            "round": round_,
            "candidate": [r[0] for r in rows],
            "request_id": "r",
            "valid": [len(r) == 3 for r in rows],
            "reason": [r[1] if len(r) == 2 else None for r in rows],
            "measured_at": "now",
            "a": [r[1] if len(r) == 3 else math.nan for r in rows],
            "b": [r[2] if len(r) == 3 else math.nan for r in rows],
        }
    )
    store.append("observations", frame)


def _continue(store, round_):
    store.append(
        "lab_events",
        pd.DataFrame(
            [
                {
                    "round": round_,
                    "request_id": "x",
                    "event": "continued",
                    "source": "timeout",
                    "sha256": "",
                    "n_rows": 1,
                    "at": "now",
                }
            ]
        ),
    )


def test_an_empty_campaign_starts_with_the_initial_design_of_round_0(store):
    state = CampaignState.read(store)
    assert state.next_round == 0 and state.pending == [] and state.measured == set()
    assert state.needs_initial_design(0) and not state.can_fit_proxy
    assert state.batch_size(_setup().config, 0) == 4  # initial_design
    assert state.batch_size(_setup().config, 0, requested=7) == 7


def test_two_valid_told_measurements_make_round_0_model_based(store):
    _measure(store, 0, [("x", 1.0, 2.0), ("y", "did not express")])
    assert CampaignState.read(store).needs_initial_design(0)  # one valid is not enough
    _measure(store, 0, [("z", 2.0, 1.0)])
    state = CampaignState.read(store)
    assert state.n_valid == MIN_VALID_TO_FIT and state.can_fit_proxy and not state.needs_initial_design(0)
    assert state.batch_size(_setup().config, 0) == 2  # batch_size, not initial_design


def test_pending_excludes_measured_candidates_and_rounds_continued_without_them(store):
    _batch(store, 0, ["p", "q", "r"])
    _measure(store, 0, [("p", 1.0, 1.0), ("q", "failed")])
    _batch(store, 1, ["s", "t"])
    state = CampaignState.read(store)
    assert state.measured == {"p", "q"} and state.pending == ["r", "s", "t"]
    assert state.taken == {"p", "q", "r", "s", "t"}
    assert state.next_round == 2 and state.has_batch(1) and not state.has_batch(2)
    assert not state.round_measured(0)
    _continue(store, 0)
    state = CampaignState.read(store)
    assert state.continued == {0} and state.pending == ["s", "t"] and state.round_measured(0)


def test_the_budget_cuts_the_batch_and_then_stops_it(store):
    config = _setup(budget=5).config
    _batch(store, 0, ["p", "q", "r", "s"])
    state = CampaignState.read(store)
    assert state.batch_size(config, 1) == 1 and not state.budget_spent(config)
    _batch(store, 1, ["t"])
    state = CampaignState.read(store)
    assert state.batch_size(config, 2) <= 0 and state.budget_spent(config)


def test_rounds_close_in_order_and_a_waiting_round_stops_the_later_ones(store):
    setup = _setup()
    _batch(store, 0, ["p", "q"], {"n_train": 0.0})
    _batch(store, 1, ["r"], {"n_train": 2.0})
    _batch(store, 2, ["s"], {"n_train": 3.0})
    _measure(store, 0, [("p", 1.0, 1.0), ("q", 3.0, 3.0)])
    _measure(store, 2, [("s", 4.0, 0.0)])
    assert close_ready_rounds(store, setup) == [0]  # round 1 waits for r; round 2 waits behind it
    _measure(store, 1, [("r", 2.0, 2.0)])
    assert close_ready_rounds(store, setup) == [1, 2]
    assert close_ready_rounds(store, setup) == []  # nothing twice
    rounds = store.read("rounds").set_index("round")
    assert json.loads(rounds.loc[1, "metrics"])["n_train"] == 2.0  # the batch's metrics
    # round 0's hypervolume counts only round 0's values, against the point fixed then
    ref = torch.tensor(store.meta["ref_point"], dtype=torch.double)
    Y0 = torch.tensor([[1.0, -1.0], [3.0, -3.0]], dtype=torch.double)
    assert rounds.loc[0, "hypervolume"] == pytest.approx(hypervolume(Y0, ref))
    assert rounds.loc[2, "hypervolume"] > rounds.loc[1, "hypervolume"] >= rounds.loc[0, "hypervolume"]
    assert rounds.loc[2, "n_observations"] == 4


def test_measurements_told_after_the_last_batch_close_once_the_budget_is_spent(store):
    setup = _setup(budget=2)
    _batch(store, 0, ["p", "q"])
    _measure(store, 0, [("p", 1.0, 1.0), ("q", 3.0, 3.0)])
    assert close_ready_rounds(store, setup) == [0]
    _measure(store, 1, [("u", 5.0, 0.5)])  # told without a batch: recorded in the next round
    assert CampaignState.read(store).next_round == 1
    assert close_ready_rounds(store, setup) == [1]  # no batch can follow


def test_nothing_closes_before_a_reference_point_can_be_fixed(store):
    _batch(store, 0, ["p"])
    _measure(store, 0, [("p", "failed")])
    assert close_ready_rounds(store, _setup()) == []
    assert close_ready_rounds(store, _setup(ref=torch.tensor([0.0, -5.0]))) == [0]
    assert store.meta["ref_point"] == [0.0, -5.0]


def test_the_reference_point_is_fixed_once_from_the_rounds_up_to_the_one_closing(store):
    _measure(store, 0, [("p", 1.0, 1.0), ("q", 3.0, 3.0)])
    _measure(store, 1, [("r", -10.0, 10.0)])
    ref = reference_point(store, _setup(), up_to_round=0)
    assert (ref < torch.tensor([1.0, -3.0], dtype=torch.double)).all() and ref[0] > -10
    _measure(store, 1, [("s", -100.0, 100.0)])
    assert torch.equal(reference_point(store, _setup()), ref)  # fixed: later data changes nothing


def test_require_valid_names_the_failure_reasons(store):
    _measure(store, 0, [("p", "did not fold"), ("q", "did not fold"), ("r", 1.0, 1.0)])
    with pytest.raises(NotEnoughDataError, match=r"need at least 2 .* have 1 \(2 x did not fold\)"):
        require_valid(store.read("observations"), 2, "fit the proxy")


def test_close_round_records_the_summary_and_its_metrics(store):
    _batch(store, 0, ["p", "q"])
    _measure(store, 0, [("p", 1.0, 1.0), ("q", 3.0, 3.0)])
    summary = close_round(store, _setup(ref=torch.tensor([0.0, -4.0])), 0, {"time/x": 1.5})
    assert summary == {
        "hypervolume": 1.0 * 3.0 + 3.0 * 1.0 - 1.0 * 1.0,
        "n_pareto": 2.0,
        "n_observations": 2.0,
        "oracle_calls": 0.0,
    }
    (row,) = store.read("rounds").to_dict("records")
    assert json.loads(row["metrics"]) == {
        "time/x": 1.5,
        "batch_share/initial": 1.0,
        "n_new_pareto": 2.0,
        "new_pareto_share/initial": 1.0,
    }
    assert CampaignState.read(store).closed == {0}


def _propose(store, round_, generator, candidates):
    store.append(
        "proposals",
        pd.DataFrame(
            {
                "round": round_,
                "generator": generator,
                "candidate": candidates,
                "canonical": candidates,
                "reason": None,
            }
        ),
    )


def test_generator_shares_credit_the_batch_and_the_new_pareto_members_to_their_generators(store):
    # round 0: p and q, both on the front (a is maximized, b minimized)
    _batch(store, 0, ["p", "q"])
    _measure(store, 0, [("p", 1.0, 1.0), ("q", 3.0, 3.0)])
    # round 1: random proposed but none of its candidates was picked; genetic supplied 3 of
    # the 4 picks, mogfn 1; g1 was proposed by both and its batch row credits genetic
    _propose(store, 1, "genetic", ["g1", "g2", "g3", "g4"])
    _propose(store, 1, "mogfn", ["g1", "m1"])
    _propose(store, 1, "random", ["r1"])
    _batch(store, 1, ["g1", "g2", "g3", "m1"], generators=["genetic", "genetic", "genetic", "mogfn"])
    # g1 dominates p and q; m1 and the told t are beside it; g2 is dominated, g3 failed
    _measure(store, 1, [("g1", 4.0, 1.0), ("g2", 0.0, 5.0), ("g3", "did not fold"), ("m1", 2.0, 0.5)])
    _measure(store, 1, [("t", 5.0, 2.0)])  # told without being asked for
    # round 2: one genetic pick, dominated: no new Pareto member
    _propose(store, 2, "genetic", ["g5"])
    _batch(store, 2, ["g5"], generators="genetic")
    _measure(store, 2, [("g5", 0.0, 9.0)])

    tables = [store.read(t) for t in ("batches", "proposals", "observations")]
    assert generator_shares(0, *tables, OBJECTIVES) == {
        "batch_share/initial": 1.0,
        "n_new_pareto": 2.0,
        "new_pareto_share/initial": 1.0,
    }
    assert generator_shares(1, *tables, OBJECTIVES) == {
        "batch_share/genetic": 0.75,
        "batch_share/mogfn": 0.25,
        "batch_share/random": 0.0,
        "n_new_pareto": 3.0,  # g1, m1, t
        "new_pareto_share/genetic": pytest.approx(1 / 3),
        "new_pareto_share/mogfn": pytest.approx(1 / 3),
        "new_pareto_share/random": 0.0,
        "new_pareto_share/told": pytest.approx(1 / 3),
    }
    # no new members: no new_pareto_share at all (not a 0 that reads as "supplied none")
    assert generator_shares(2, *tables, OBJECTIVES) == {"batch_share/genetic": 1.0, "n_new_pareto": 0.0}
    # a round of told measurements only has no batch to share
    _measure(store, 3, [("t2", 6.0, 3.0)])
    tables = [store.read(t) for t in ("batches", "proposals", "observations")]
    assert generator_shares(3, *tables, OBJECTIVES) == {"n_new_pareto": 1.0, "new_pareto_share/told": 1.0}

    # closing a round records them with its metrics, for MLflow at step = round
    close_round(store, _setup(ref=torch.tensor([-1.0, -10.0])), 1, {"time/x": 1.0})
    recorded = json.loads(store.read("rounds")["metrics"].iloc[0])
    assert recorded["batch_share/genetic"] == 0.75 and recorded["new_pareto_share/told"] == pytest.approx(
        1 / 3
    )
