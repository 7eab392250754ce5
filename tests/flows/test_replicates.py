"""Replicate measurements told to a campaign: each row recorded, the proxy fits their mean
with the noise they show, a candidate measured before gains more replicates, and a table
that names a candidate twice without saying so is still rejected (real store, real GP)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

import paretolab as pl
from paretolab.data.dataset import REPLICATES, dataset_from_observations, latest_observations
from paretolab.data.results import ResultsError
from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.models.proxies.gp import exact_gp, fit_gp_proxy

OBJECTIVES = [pl.Objective("a", "max"), pl.Objective("b", "max")]
SPACE = GridSpace(2, 8)


def _campaign(directory):
    return pl.Campaign.create(directory, space=pl.GridSpace(dims=2, levels=8), objectives=OBJECTIVES, seed=0)


def _table():
    """Candidate 3,3 measured four times, the others once."""
    rows = [("3,3", 1.0, 2.0), ("3,3", 1.2, 2.4), ("3,3", 0.8, 1.6), ("3,3", 1.0, 2.0)]
    rows += [(f"{i},{(3 * i) % 8}", 0.1 * i, 0.3 * i) for i in range(8) if i != 3]
    return pd.DataFrame(rows, columns=["candidate", "a", "b"])


def test_replicates_are_recorded_each_and_fitted_as_their_mean_with_less_noise(tmp_path):
    campaign = _campaign(tmp_path / "c")
    with pytest.raises(
        ResultsError, match=r"column 'candidate': '3,3' duplicates row 0 \(replicate measurements\?"
    ):
        campaign.tell(_table())  # not said to be replicates: duplicate rows, nothing recorded
    told = campaign.tell(_table(), replicates=True)
    assert told.recorded == 11
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        observations = store.read("observations")
    assert (observations["candidate"] == "3,3").sum() == 4
    latest = latest_observations(observations).set_index("candidate")
    assert latest.loc["3,3", ["a", "b"]].tolist() == pytest.approx([1.0, 2.0])
    assert latest.loc["3,3", REPLICATES] == 4 and latest.loc["0,0", REPLICATES] == 1
    shown = campaign.measurements().set_index("candidate")
    assert shown.loc["3,3", "replicates"] == 4 and shown.loc["3,3", "a"] == pytest.approx(1.0)

    data = dataset_from_observations(observations, SPACE, [o for o in OBJECTIVES])
    # pooled within-candidate variance: a: (0.04 + 0.04) / 3, b: (0.16 + 0.16) / 3
    noise = torch.tensor([0.08 / 3, 0.32 / 3], dtype=torch.double)
    row = data.candidates.index("3,3")
    assert data.Yvar[row].tolist() == pytest.approx((noise / 4).tolist())
    assert data.Yvar[data.candidates.index("1,3")].tolist() == pytest.approx(noise.tolist())

    model, _ = fit_gp_proxy(data.X, data.Y, holdout_fraction=0.0, rng=torch.Generator(), Yvar=data.Yvar)
    other = data.candidates.index("1,3")
    for gp in model.models:  # the noise each point is fitted with (standardized units)
        assert gp.likelihood.noise[row].item() == pytest.approx(gp.likelihood.noise[other].item() / 4)
    with torch.no_grad(), exact_gp():
        latent = model.posterior(data.X).variance
    assert (latent[row] < latent[other]).all()  # four measurements pin the mean down more


def test_more_replicates_join_the_measurement_and_a_plain_row_replaces_it(tmp_path):
    campaign = _campaign(tmp_path / "c")
    campaign.tell(_table(), replicates=True)
    more = pd.DataFrame({"candidate": ["3,3", "3,3"], "a": [1.5, 1.5], "b": [3.0, 3.0], "replicate": [5, 6]})
    campaign.tell(more)  # a replicate column says so too
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        latest = latest_observations(store.read("observations")).set_index("candidate")
    assert latest.loc["3,3", REPLICATES] == 6
    assert latest.loc["3,3", "a"] == pytest.approx((4.0 + 3.0) / 6)

    campaign.tell(pd.DataFrame({"candidate": ["3,3"], "a": [0.5], "b": [0.5]}), replace=True)
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        observations = store.read("observations")
    latest = latest_observations(observations).set_index("candidate")
    assert latest.loc["3,3", ["a", "b"]].tolist() == [0.5, 0.5] and latest.loc["3,3", REPLICATES] == 1
    assert len(observations) == 11 + 2 + 1  # every measurement kept as history


def test_a_failed_replicate_does_not_fail_a_measured_candidate(tmp_path):
    campaign = _campaign(tmp_path / "c")
    table = _table()
    table["failure_reason"] = ""
    table.loc[4, ["a", "b", "failure_reason"]] = [None, None, "well dried out"]  # 0,0 failed
    table = pd.concat([table, pd.DataFrame([{"candidate": "3,3", "failure_reason": "bubble"}])])
    campaign.tell(table, replicates=True)
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        latest = latest_observations(store.read("observations")).set_index("candidate")
    assert bool(latest.loc["3,3", "valid"]) and latest.loc["3,3", REPLICATES] == 4
    assert not bool(latest.loc["0,0", "valid"]) and latest.loc["0,0", "reason"] == "well dried out"


def test_a_growing_file_with_replicate_labels_is_recorded_once_per_replicate(tmp_path):
    campaign = _campaign(tmp_path / "c")
    first = pd.DataFrame({"candidate": ["3,3", "3,3", "1,1"], "replicate": ["r1", "r2", "r1"]})
    first["a"], first["b"] = [1.0, 1.2, 0.5], [2.0, 2.2, 0.5]
    campaign.tell(first)
    grown = pd.concat([first, pd.DataFrame([{"candidate": "3,3", "replicate": "r3", "a": 0.8, "b": 1.8}])])
    told = campaign.tell(grown)  # the lab sent the file again with one more replicate
    assert told.recorded == 1 and told.unchanged == 3
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        latest = latest_observations(store.read("observations")).set_index("candidate")
    assert latest.loc["3,3", REPLICATES] == 3 and latest.loc["3,3", "a"] == pytest.approx(1.0)
    campaign.tell(grown, replicates=True)  # the same table told again as replicates: once
    changed = grown.assign(a=[1.0, 9.9, 0.5, 0.8])
    with pytest.raises(ResultsError, match=r"replicate 'r2' of '3,3' is recorded already with other values"):
        campaign.tell(changed)
    twice = pd.DataFrame({"candidate": ["2,2", "2,2"], "replicate": ["x", "x"], "a": [1.0, 1.0], "b": [1, 1]})
    with pytest.raises(ResultsError, match=r"replicate 'x' of '2,2' is given twice"):
        campaign.tell(twice)


def test_a_store_written_before_replicates_opens_and_takes_them(tmp_path):
    import pyarrow.parquet as pq

    campaign = _campaign(tmp_path / "c")
    campaign.tell(_table().drop_duplicates("candidate"))
    for part in (tmp_path / "c" / "tables" / "observations").glob("*.parquet"):
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["[replicate]", "[replicate label]"]), part)  # as version 1 wrote
    (tmp_path / "c" / "manifest.jsonl").unlink()  # nor had it an integrity record
    meta = json.loads((tmp_path / "c" / "campaign.json").read_text())
    del meta["identity_sha256"]
    (tmp_path / "c" / "campaign.json").write_text(json.dumps(meta))
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        assert not store.read("observations")["[replicate]"].any()
    campaign.tell(pd.DataFrame({"candidate": ["3,3"], "a": [3.0], "b": [6.0]}), replicates=True)
    shown = campaign.measurements().set_index("candidate")
    assert shown.loc["3,3", "replicates"] == 2 and shown.loc["3,3", "a"] == pytest.approx(2.0)


def test_the_pareto_figure_draws_each_candidate_once_at_its_replicate_mean(tmp_path):
    from paretolab.flows.plots import pareto_figure

    campaign = _campaign(tmp_path / "c")
    campaign.tell(_table(), replicates=True)
    with CampaignStore.open(tmp_path / "c", lock=False) as store:
        observations = store.read("observations")
    figure = pareto_figure(observations, OBJECTIVES, "replicates")
    points = figure.axes[0].collections[0].get_offsets()
    assert len(points) == 8  # 11 rows, 8 candidates
    assert [1.0, 2.0] in points.tolist()  # 3,3 at the mean of its four replicates
