"""The Python API end to end: ``paretolab.Campaign`` asks with the round's real steps
(BoTorch GP, generators, qLogNEHVI), takes results told from a DataFrame or file, and
shares its store with the command line (real Prefect flow runs, real MLflow on disk)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

import paretolab as pl
from paretolab.data.dataset import raw_values, valid_observations
from paretolab.data.molecules import nci_seed_path
from paretolab.data.objectives import to_max_space
from paretolab.data.pareto import hypervolume
from paretolab.data.results import ID_COLUMN
from paretolab.data.spaces import GridSpace
from paretolab.data.store import CampaignStore
from paretolab.flows import steps
from paretolab.flows.campaign import run_campaign
from paretolab.flows.cli import app
from paretolab.flows.commands import command
from paretolab.oracles.synthetic import BraninCurrinOracle
from tests.helpers.configs import write_config

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
TRUTH = BraninCurrinOracle(GridSpace(2, 16))
OBJECTIVES = [pl.Objective("branin", "min"), pl.Objective("currin", "min")]
ASK_COLUMNS = [
    ID_COLUMN,
    "round",
    "candidate",
    "generator",
    "acquisition",
    "branin_mean",
    "branin_std",
    "currin_mean",
    "currin_std",
]


def _campaign(directory: Path, **overrides) -> pl.Campaign:
    settings = dict(
        space=pl.GridSpace(dims=2, levels=16),
        objectives=OBJECTIVES,
        generator=[{"kind": "random", "pool_size": 64}, {"kind": "genetic", "pool_size": 64}],
        batch_size=3,
        seed=3,
        initial_design=6,
        acquisition={"mc_samples": 32},
    )
    return pl.Campaign.create(directory, **(settings | overrides))


def measured(batch: pd.DataFrame) -> pd.DataFrame:
    """The batch's ids with the real Branin-Currin values of its candidates."""
    values = TRUTH(batch["candidate"].tolist()).values.numpy()
    return pd.DataFrame(
        {ID_COLUMN: batch[ID_COLUMN].to_numpy(), "branin": values[:, 0], "currin": values[:, 1]}
    )


def _tables(directory: Path, *names: str) -> list[pd.DataFrame]:
    with CampaignStore.open(directory, lock=False) as store:
        return [store.read(name) for name in names]


def test_an_ask_tell_loop_raises_the_hypervolume_and_logs_each_round(tmp_path):
    campaign = _campaign(tmp_path / "loop", batch_size=4, initial_design=8)
    with CampaignStore.open(campaign.directory, lock=False) as store:
        cid = store.meta["campaign_id"]

    first = campaign.ask()  # nothing measured yet: a random initial design
    assert list(first.columns) == ASK_COLUMNS
    assert first[ID_COLUMN].tolist() == [f"{cid}-r0-{p:03d}" for p in range(8)]
    assert (first["generator"] == "initial").all() and (first["round"] == 0).all()
    assert first[["acquisition", "branin_mean", "currin_std"]].isna().all().all()
    assert campaign.tell(measured(first)) == pl.Told(8, 0, 0, (0,))

    for round_ in range(1, 5):
        batch = campaign.ask()
        assert len(batch) == 4 and (batch["round"] == round_).all()
        assert set(batch["generator"]) <= {"random", "genetic"}
        assert batch[["acquisition", "branin_mean", "currin_mean"]].notna().all().all()
        assert (batch[["branin_std", "currin_std"]] > 0).all().all()
        assert set(batch["candidate"]).isdisjoint(campaign.measurements()["candidate"])
        assert campaign.tell(measured(batch)).closed_rounds == (round_,)

    history = campaign.history()
    assert history["round"].tolist() == [0, 1, 2, 3, 4]
    hv = history["hypervolume"].tolist()
    assert hv == sorted(hv) and hv[-1] > hv[0], hv
    assert history["n_observations"].tolist() == [8, 12, 16, 20, 24]
    assert campaign.hypervolume() == pytest.approx(hv[-1])
    assert campaign.pending().empty

    measurements = campaign.measurements()
    assert len(measurements) == 24 and measurements[ID_COLUMN].str.startswith(cid).all()
    assert (
        measurements[["branin", "currin"]].values.tolist()
        == TRUTH(measurements["candidate"].tolist()).values.tolist()
    )
    front = campaign.pareto_front()
    assert (
        set(front["candidate"]) <= set(measurements["candidate"])
        and len(front) == history["n_pareto"].iloc[-1]
    )

    # the same MLflow logging as a flow run: one run, each round's metrics at its step
    with CampaignStore.open(campaign.directory, lock=False) as store:
        run_id, uri = store.meta["mlflow_run_id"], store.meta["mlflow_tracking_uri"]
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    logged = client.get_metric_history(run_id, "hypervolume")
    assert sorted(m.step for m in logged) == [0, 1, 2, 3, 4]
    assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(hv)
    assert {m.step for m in client.get_metric_history(run_id, "proxy/rmse")} == {2, 3, 4}  # enough data
    shares = [client.get_metric_history(run_id, f"batch_share/{g}") for g in ("initial", "random", "genetic")]
    assert [m.step for m in shares[0]] == [0] and shares[0][0].value == 1.0
    by_round = {m.step: 0.0 for m in shares[1]}
    for m in shares[1] + shares[2]:
        by_round[m.step] += m.value
    assert by_round == pytest.approx({1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0})  # the same rule as a flow run
    artifacts = {a.path for a in client.list_artifacts(run_id, "pareto")}
    assert "pareto/round_0004.html" in artifacts


def test_pending_candidates_are_left_out_and_conditioned_on(tmp_path):
    campaign = _campaign(tmp_path / "pending")
    campaign.tell(measured(campaign.ask()))
    a = campaign.ask()
    b = campaign.ask()  # round 1 is still pending
    assert a["round"].unique().tolist() == [1] and b["round"].unique().tolist() == [2]
    assert set(a["candidate"]).isdisjoint(b["candidate"])
    assert campaign.pending()[ID_COLUMN].tolist() == [*a[ID_COLUMN], *b[ID_COLUMN]]
    pd.testing.assert_frame_equal(campaign.pending(), pd.concat([a, b], ignore_index=True))
    batches = _tables(campaign.directory, "batches")[0]
    metrics = {r: json.loads(g["metrics"].iloc[0]) for r, g in batches.groupby("round")}
    assert metrics[1]["n_pending"] == 0 and metrics[2]["n_pending"] == 3

    # results out of order: round 2 cannot close before round 1, and round 1's
    # hypervolume counts only what was measured up to round 1
    told = campaign.tell(pd.concat([measured(b), measured(a).iloc[:2]]))
    assert told.recorded == 5 and told.closed_rounds == ()
    assert campaign.pending()[ID_COLUMN].tolist() == [a[ID_COLUMN].iloc[2]]
    assert campaign.history()["round"].tolist() == [0]
    assert campaign.tell(measured(a).iloc[2:]).closed_rounds == (1, 2)
    history = campaign.history().set_index("round")["hypervolume"]
    with CampaignStore.open(campaign.directory, lock=False) as store:
        observations, ref = store.read("observations"), torch.tensor(store.meta["ref_point"])
    up_to_1 = valid_observations(observations[observations["round"] <= 1])
    Y = to_max_space(raw_values(up_to_1, OBJECTIVES), OBJECTIVES)
    assert history[1] == pytest.approx(hypervolume(Y, ref.double()))
    assert history[2] == pytest.approx(campaign.hypervolume()) and history[2] >= history[1]


def test_the_acquisition_counts_pending_points(tmp_path):
    """A pending candidate adds no expected improvement: its value drops once it is pending."""
    campaign = _campaign(tmp_path / "acq")
    campaign.tell(measured(campaign.ask()))
    setup = campaign._prepared.setup
    with CampaignStore.open(campaign.directory) as store:
        dataset = steps.load_dataset(store, setup, torch.device("cpu"))
        model, _ = steps.fit_proxy(setup, dataset, 1)
        ref = torch.tensor(store.meta["ref_point"], dtype=torch.double)
    free = steps.build_acquisition(setup, model, dataset, ref, 1)
    pool = [f"{i},{j}" for i in range(0, 16, 3) for j in range(0, 16, 3)]
    X = setup.space.featurize(pool)
    best = pool[int(free(X.unsqueeze(1)).argmax())]
    conditioned = steps.build_acquisition(setup, model, dataset, ref, 1, pending=[best])
    assert torch.equal(conditioned.X_pending, setup.space.featurize([best]))
    x = setup.space.featurize([best]).unsqueeze(1)
    assert float(conditioned(x).detach()) < float(free(x).detach()) - 5  # log-EHVI: no improvement left


TINY_GFN = {"pool_size": 32, "steps_per_round": 8, "trajectories_per_step": 16, "hidden": 16, "layers": 2}


def _mol_seeds(tmp_path: Path) -> Path:
    smiles = [line.split()[0] for line in nci_seed_path().read_text().splitlines()[:200]]
    path = tmp_path / "seeds.smi"
    path.write_text("\n".join(smiles) + "\n")
    return path


@pytest.mark.parametrize(
    ("space", "generators"),
    [
        ("grid", [{"kind": "random", "pool_size": 32}, {"kind": "mogfn", **TINY_GFN}]),
        ("sequence", [{"kind": "genetic", "pool_size": 32}, {"kind": "opgfn", **TINY_GFN}]),
        ("molecule", [{"kind": "genetic", "pool_size": 32}, {"kind": "mogfn", **TINY_GFN}]),
    ],
)
def test_every_space_and_generator_asks_the_same_batch_for_the_same_seed(tmp_path, space, generators):
    spaces = {
        "grid": pl.GridSpace(dims=2, levels=16),
        "sequence": pl.SequenceSpace(alphabet="ACDEFG", min_length=4, max_length=8),
        "molecule": pl.MoleculeSpace(seeds=str(_mol_seeds(tmp_path)), max_length=40),
    }

    def value(candidate: str) -> list[float]:  # any deterministic two-objective assay
        return [float(sum(map(ord, candidate)) % 17), float(len(candidate) % 5 + candidate.count("C"))]

    asked = []
    for name in ("a", "b"):
        campaign = pl.Campaign.create(
            tmp_path / name,
            space=spaces[space],
            objectives=[pl.Objective("f", "max"), pl.Objective("g", "min")],
            generator=generators,
            batch_size=4,
            seed=11,
            initial_design=8,
            acquisition={"mc_samples": 16},
        )
        first = campaign.ask()
        values = [value(c) for c in first["candidate"]]
        campaign.tell(first[[ID_COLUMN]].assign(f=[v[0] for v in values], g=[v[1] for v in values]))
        second = campaign.ask()
        assert len(second) == 4 and second[["f_mean", "g_mean"]].notna().all().all()
        asked.append((first.drop(columns=ID_COLUMN), second.drop(columns=ID_COLUMN)))
        with CampaignStore.open(campaign.directory, lock=False) as store:
            proposed = set(store.read("proposals")["generator"])
        assert proposed == {g["kind"] for g in generators}
    for mine, theirs in zip(asked[0], asked[1], strict=True):
        pd.testing.assert_frame_equal(mine, theirs)


def test_how_results_are_told_does_not_change_what_is_asked(tmp_path):
    """Known data told in one table or two, round 0 told at once or bit by bit: the same
    rounds, the same reference point, the same next batch."""
    known = pd.DataFrame({"candidate": ["0,0", "3,4", "15,15", "8,2"]})
    values = TRUTH(known["candidate"].tolist()).values.numpy()
    known = known.assign(branin=values[:, 0], currin=values[:, 1])
    asked, refs = [], []
    for name, pieces in (("whole", [known]), ("split", [known.iloc[:1], known.iloc[1:]])):
        campaign = _campaign(tmp_path / name)
        for piece in pieces:
            campaign.tell(piece)
        first = campaign.ask()
        results = measured(first)
        for piece in [results] if name == "whole" else [results.iloc[:1], results.iloc[1:]]:
            campaign.tell(piece)
        asked.append((first.drop(columns=ID_COLUMN), campaign.ask().drop(columns=ID_COLUMN)))
        with CampaignStore.open(campaign.directory, lock=False) as store:
            refs.append(store.meta["ref_point"])
        assert campaign.history()["round"].tolist() == [0]
    assert refs[0] == refs[1]
    for mine, theirs in zip(*asked, strict=True):
        pd.testing.assert_frame_equal(mine, theirs)


def test_an_ask_cut_off_in_training_is_asked_again_from_the_untrained_generator(tmp_path):
    """Round 0 chosen by the model trains a GFlowNet from scratch; if that ask fails after
    training (here: an error right after the update), asking again in the same process
    trains from the untrained state again and asks what an uninterrupted campaign asks."""
    known = pd.DataFrame({"candidate": ["0,0", "3,4", "15,15", "8,2"]})
    values = TRUTH(known["candidate"].tolist()).values.numpy()
    known = known.assign(branin=values[:, 0], currin=values[:, 1])
    batches = []
    for name in ("cut", "whole"):
        campaign = _campaign(tmp_path / name, generator={"kind": "mogfn", **TINY_GFN})
        campaign.tell(known)
        if name == "cut":
            generator = campaign._prepared.setup.generators[0]
            real_update = generator.update

            def update_then_fail(*args, _real=real_update, _generator=generator):
                _generator.update = _real  # fail once
                _real(*args)
                raise KeyboardInterrupt

            generator.update = update_then_fail
            with pytest.raises(KeyboardInterrupt):
                campaign.ask()
        batches.append(campaign.ask().drop(columns=ID_COLUMN))
    pd.testing.assert_frame_equal(*batches)


@pytest.mark.slow  # a second Python process
def test_a_campaign_continues_in_another_process(tmp_path):
    campaign = _campaign(tmp_path / "shared")
    results = tmp_path / "round0.csv"
    measured(campaign.ask()).to_csv(results, index=False)
    twin = _campaign(tmp_path / "twin")  # same seed and data, asked in this process
    twin_first = twin.ask()
    twin.tell(measured(twin_first))

    script = (
        "import json, sys\n"
        "import paretolab as pl\n"
        "campaign = pl.Campaign.open(sys.argv[1])\n"
        "told = campaign.tell(sys.argv[2])\n"
        "batch = campaign.ask()\n"
        "print(json.dumps({'closed': told.closed_rounds, 'batch': batch.to_dict('list')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(campaign.directory), str(results)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other["closed"] == [0]

    again = pl.Campaign.open(campaign.directory)
    pending = again.pending()
    assert pending[ID_COLUMN].tolist() == other["batch"][ID_COLUMN]
    assert again.history()["round"].tolist() == [0]
    assert len(again.measurements()) == 6
    ours = twin.ask()
    assert ours["candidate"].tolist() == other["batch"]["candidate"]
    assert ours["acquisition"].tolist() == pytest.approx(other["batch"]["acquisition"])


def _filled_request(request: Path, out: Path) -> Path:
    table = pd.read_csv(request, dtype=str, keep_default_na=False)
    values = TRUTH(table["candidate"].tolist()).values.tolist()
    table["branin"] = [str(v[0]) for v in values]
    table["currin"] = [str(v[1]) for v in values]
    table.to_csv(out, index=False)
    return out


def _cli(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "1000"})


def test_an_external_campaign_from_yaml_waits_for_results_told_from_python(tmp_path, prefect_api):
    objectives = [{"name": "branin", "direction": "min"}, {"name": "currin", "direction": "min"}]
    config = write_config(
        tmp_path / "external.yaml",
        name="external_test",
        oracle={"name": "external", "params": {"objectives": objectives}},
        initial_design=4,
        batch_size=2,
        rounds=2,
    )
    directory = tmp_path / "runs" / "external"

    assert run_campaign(str(config), str(directory))["stopped_by"] == "awaiting results"
    result = _cli("run", str(config), "--dir", str(directory))
    assert result.exit_code == 0, result.output
    assert "waiting for results: round 0 sent 4 candidate(s), 4 still pending." in result.output
    assert f"then continue: {command('paretolab')} run {directory}" in result.output
    campaign = pl.Campaign.open(directory)
    pending = campaign.pending()
    request = pd.read_csv(directory / "lab" / "requests" / "round0-lab.csv", dtype=str)
    assert pending[ID_COLUMN].tolist() == request[ID_COLUMN].tolist()
    assert campaign.tell(measured(pending)).closed_rounds == (0,)

    result = _cli("run", str(directory))  # the campaign directory is enough
    assert result.exit_code == 0, result.output
    assert "waiting for results: round 1 sent 2 candidate(s), 2 still pending." in result.output
    round1 = campaign.pending()
    assert round1["round"].tolist() == [1, 1] and round1[["branin_mean", "currin_mean"]].notna().all().all()
    assert campaign.tell(measured(round1)).closed_rounds == (1,)

    result = _cli("run", str(directory))
    assert "waiting for results: round 2 sent 2 candidate(s)" in result.output, result.output
    filled = _filled_request(directory / "lab" / "requests" / "round2-lab.csv", tmp_path / "round2.csv")
    result = _cli("submit", str(directory), str(filled))
    assert result.exit_code == 0 and "recorded 2 result(s)" in result.output, result.output
    assert campaign.pending().empty

    result = _cli("run", str(directory))
    assert result.exit_code == 0, result.output
    assert "stopped by rounds" in result.output
    history = campaign.history()
    assert history["round"].tolist() == [0, 1, 2] and len(campaign.measurements()) == 8
    status = _cli("status", str(directory))
    assert status.exit_code == 0 and "rounds done: 2" in status.output, status.output


def test_a_campaign_made_in_python_continues_from_the_command_line(tmp_path, prefect_api):
    directory = tmp_path / "runs" / "made_in_python"
    campaign = _campaign(directory, rounds=1, initial_design=4, batch_size=2)
    assert (directory / "campaign.yaml").is_file()
    first = campaign.ask()
    request = directory / "lab" / "requests" / "round0-lab.csv"
    assert pd.read_csv(request, dtype=str)[ID_COLUMN].tolist() == first[ID_COLUMN].tolist()

    result = _cli("submit", str(directory), str(_filled_request(request, tmp_path / "round0.csv")))
    assert result.exit_code == 0 and "recorded 4 result(s)" in result.output, result.output
    assert campaign.pending().empty and len(campaign.measurements()) == 4

    result = _cli("run", str(directory))  # closes round 0 and asks round 1 through the flow
    assert result.exit_code == 0, result.output
    assert "waiting for results: round 1 sent 2 candidate(s), 2 still pending." in result.output
    round1 = campaign.pending()
    assert round1[ID_COLUMN].tolist() == pd.read_csv(request.with_name("round1-lab.csv"))[ID_COLUMN].tolist()
    assert campaign.tell(measured(round1)).closed_rounds == (1,)
    assert campaign.history()["round"].tolist() == [0, 1]
    status = _cli("status", str(directory))
    assert status.exit_code == 0 and "rounds done: 1" in status.output, status.output


# -- bad input: rejected as a whole, nothing recorded ------------------------------------


@pytest.fixture(scope="module")
def asked(tmp_path_factory):
    """A campaign whose round 0 (6 candidates) was asked and rows 0-1 told."""
    campaign = _campaign(tmp_path_factory.mktemp("bad") / "bad")
    batch = campaign.ask()
    campaign.tell(measured(batch).iloc[:2])
    return campaign, batch


def _first_free(batch: pd.DataFrame) -> str:
    taken = set(batch["candidate"])
    return next(f"{i},{j}" for i in range(16) for j in range(16) if f"{i},{j}" not in taken)


BAD = {
    "unknown id": (
        lambda t, b: t.assign(
            **{ID_COLUMN: [*t[ID_COLUMN][:1], b[ID_COLUMN][0][:9] + "r7-000", *t[ID_COLUMN][2:]]}
        ),
        ["row 1: column 'candidate_id': unknown candidate id"],
    ),
    "another campaign's id": (
        lambda t, b: t.assign(**{ID_COLUMN: ["0000ffff-r0-002", *t[ID_COLUMN][1:]]}),
        ["row 0: column 'candidate_id': 0000ffff-r0-002 belongs to another campaign"],
    ),
    "not an id": (
        lambda t, b: t.assign(**{ID_COLUMN: ["sample 7", *t[ID_COLUMN][1:]]}),
        ["row 0: column 'candidate_id': 'sample 7' is not a paretolab candidate id"],
    ),
    "duplicate id": (
        lambda t, b: pd.concat([t, t.iloc[[1]]], ignore_index=True),
        ["row 4: column 'candidate_id': ", "duplicates row 1"],
    ),
    "duplicate candidate": (
        lambda t, b: pd.DataFrame(
            {"candidate": [b["candidate"][3], b["candidate"][3]], "branin": [1.0, 1.0], "currin": [2.0, 2.0]}
        ),
        ["row 1: column 'candidate': ", "duplicates row 0"],
    ),
    "duplicate candidate under duplicate index labels": (
        lambda t, b: pd.DataFrame(
            {"candidate": [b["candidate"][3]] * 2, "branin": [1.0, 1.0], "currin": [2.0, 2.0]}, index=[0, 0]
        ),
        ["row #1 (index 0): column 'candidate': ", "duplicates row #0 (index 0)"],
    ),
    "id and candidate name one": (
        lambda t, b: pd.concat(
            [t, pd.DataFrame({"candidate": [b["candidate"][2]], "branin": [1.0], "currin": [1.0]})],
            ignore_index=True,
        ),
        ["row 4: column 'candidate': ", "duplicates row 0"],
    ),
    "missing objective column": (
        lambda t, b: t.drop(columns="currin"),
        ["column 'currin': missing (objective currin)"],
    ),
    "no id and no candidate": (
        lambda t, b: t.drop(columns=ID_COLUMN),
        ["columns 'candidate_id' and 'candidate': both missing"],
    ),
    "non-numeric": (
        lambda t, b: t.assign(branin=["1.5", "high", "2", "3"]),
        ["row 1: column 'branin': 'high' is not a number"],
    ),
    "boolean": (
        lambda t, b: t.assign(branin=[True, 1.0, 2.0, 3.0]),
        ["row 0: column 'branin': 'True' is not a number"],
    ),
    "NaN in one objective": (
        lambda t, b: t.assign(branin=[1.0, float("nan"), 2.0, 3.0]),
        ["row 1: column 'branin': empty while other objectives are filled"],
    ),
    "NaN in every objective": (
        lambda t, b: t.assign(branin=[1.0, None, 2.0, 3.0], currin=[1.0, None, 2.0, 3.0]),
        ["row 1: columns 'branin', 'currin': no values and no 'failure_reason'"],
    ),
    "infinite": (
        lambda t, b: t.assign(currin=[1.0, 2.0, float("inf"), 3.0]),
        ["row 2: column 'currin': 'inf' is not finite"],
    ),
    "values and a failure reason": (
        lambda t, b: t.assign(failure_reason=["", "spilled", "", ""]),
        ["row 1: column 'failure_reason': given together with values"],
    ),
    "candidate outside the space": (
        lambda t, b: pd.concat(
            [t, pd.DataFrame({"candidate": ["99,99"], "branin": [1.0], "currin": [1.0]})], ignore_index=True
        ),
        ["row 4: column 'candidate': '99,99' is not in the space"],
    ),
    "id and candidate disagree": (
        lambda t, b: t.assign(candidate=[b["candidate"][3], *b["candidate"][3:]]),
        ["row 0: column 'candidate': "],
    ),
    "wrong round": (lambda t, b: t.assign(round=[0, 0, 5, 0]), ["row 2: column 'round': says 5"]),
    "new values for a measured one": (
        lambda t, b: pd.DataFrame({ID_COLUMN: [b[ID_COLUMN][0]], "branin": [1.0], "currin": [1.0]}),
        ["row 0: ", "is already measured; new values", "tell(..., replace=True)"],
    ),
    "unit not declared": (
        lambda t, b: t.rename(columns={"branin": "branin [mm]"}),
        ["column 'branin [mm]': declares unit 'mm'"],
    ),
    "empty": (lambda t, b: t.iloc[:0], ["no results"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_tell_rejects_bad_input_as_a_whole(asked, case):
    campaign, batch = asked
    good = measured(batch.iloc[2:]).reset_index(drop=True)  # the 4 pending candidates
    edit, expected = BAD[case]
    bad = edit(good, batch)
    before = _tables(campaign.directory, "observations", "lab_events", "rounds")
    meta = json.loads((campaign.directory / "campaign.json").read_text())
    with pytest.raises(pl.ResultsError) as error:
        campaign.tell(bad)
    message = str(error.value)
    assert message.startswith("tell(DataFrame): rejected, nothing was recorded"), message
    for part in expected:
        assert part in message, message
    for was, now in zip(
        before, _tables(campaign.directory, "observations", "lab_events", "rounds"), strict=True
    ):
        pd.testing.assert_frame_equal(was, now)
    assert json.loads((campaign.directory / "campaign.json").read_text()) == meta
    assert len(campaign.pending()) == 4


def test_tell_lists_every_problem_and_names_a_file_by_its_rows(asked, tmp_path):
    campaign, batch = asked
    table = measured(batch.iloc[2:]).astype(object)
    table.iloc[0, 1] = "n/a"
    table.iloc[2, 2] = ""
    path = tmp_path / "results.csv"
    table.to_csv(path, index=False)
    with pytest.raises(pl.ResultsError) as error:
        campaign.tell(path)
    assert error.value.problems == [
        "row 2: column 'branin': 'n/a' is not a number",
        "row 4: column 'currin': empty while other objectives are filled; fill every objective, or give a "
        "failure_reason",
    ]
    assert str(error.value).startswith(f"{path}: rejected, nothing was recorded (2 problem(s))")
    table = measured(batch.iloc[2:]).set_index(pd.Index([10, 11, 12, 13])).astype(object)  # own labels
    table.loc[12, "branin"] = "x"
    with pytest.raises(pl.ResultsError, match="row 12: column 'branin': 'x' is not a number"):
        campaign.tell(table)
    with pytest.raises(TypeError, match=r"DataFrame or a \.csv/\.parquet path"):
        campaign.tell([{"candidate": "1,1"}])
    with pytest.raises(pl.ResultsError, match="cannot read: No such file or directory"):
        campaign.tell(tmp_path / "missing.parquet")
    assert len(campaign.pending()) == 4


def test_tell_takes_failures_known_measurements_partial_results_and_replacements(tmp_path):
    campaign = _campaign(tmp_path / "good", initial_design=4)
    # measurements the team has already: rows name candidates, no ids; they join round 0,
    # which closes with its batch
    known = pd.DataFrame({"candidate": ["0,0", " 3,4", "15,15"]})
    values = TRUTH(["0,0", "3,4", "15,15"]).values.numpy()
    told = campaign.tell(known.assign(branin=values[:, 0], currin=values[:, 1]))
    assert told == pl.Told(3, 0, 0, ())
    assert campaign.measurements()["candidate"].tolist() == ["0,0", "3,4", "15,15"]
    assert (campaign.measurements()[ID_COLUMN] == "").all() and campaign.history().empty
    assert campaign.hypervolume() > 0  # against a reference point inferred from them, not fixed yet

    batch = campaign.ask()  # three valid measurements: round 0 is already model-based
    assert (batch["round"] == 0).all() and batch["branin_mean"].notna().all()
    results = measured(batch)
    results["failure_reason"] = ["", "", "crystallized"]
    results.loc[2, ["branin", "currin"]] = float("nan")
    assert campaign.tell(results.iloc[[0, 2]]) == pl.Told(2, 0, 0, ())  # partial: row 1 stays pending
    assert campaign.pending()[ID_COLUMN].tolist() == [batch[ID_COLUMN][1]]
    failed = campaign.measurements().set_index(ID_COLUMN).loc[batch[ID_COLUMN][2]]
    assert failed["failure_reason"] == "crystallized" and pd.isna(failed["branin"])
    assert campaign.tell(results.iloc[[0, 2]]).already  # the same table again: nothing new
    assert campaign.tell(results.iloc[[1]]).closed_rounds == (0,)
    assert campaign.history()["n_observations"].tolist() == [6]

    # a new value for a measured candidate replaces it only when asked to; the old one is history
    again = results.iloc[[0]].assign(branin=1.25)
    with pytest.raises(pl.ResultsError, match="already measured"):
        campaign.tell(again)
    assert campaign.tell(again, replace=True) == pl.Told(1, 1, 0, ())
    latest = campaign.measurements().set_index(ID_COLUMN).loc[batch[ID_COLUMN][0], "branin"]
    assert latest == 1.25
    # told again with replace, the first table undoes the replacement
    assert campaign.tell(results.iloc[[0]], replace=True) == pl.Told(1, 1, 0, ())
    latest = campaign.measurements().set_index(ID_COLUMN).loc[batch[ID_COLUMN][0], "branin"]
    assert latest == results["branin"][0]
    observations = _tables(campaign.directory, "observations")[0]
    assert (observations["candidate"] == batch["candidate"][0]).sum() == 3
    # a measured, asked candidate named by its candidate string keeps its id and round
    by_name = pd.DataFrame({"candidate": [batch["candidate"][1]], "branin": [9.0], "currin": [9.0]})
    with pytest.raises(pl.ResultsError, match=rf"row 0: {batch[ID_COLUMN][1]} \(.*\) is already measured"):
        campaign.tell(by_name)
    campaign.tell(by_name, replace=True)
    replaced = campaign.measurements().set_index("candidate").loc[batch["candidate"][1]]
    assert replaced[ID_COLUMN] == batch[ID_COLUMN][1] and replaced["round"] == 0


def test_creating_and_asking_refuse_what_cannot_work(tmp_path):
    with pytest.raises(pl.ConfigError, match=r"Campaign.create: batch_size: Input should be greater than 0"):
        _campaign(tmp_path / "zero", batch_size=0)
    with pytest.raises(pl.ConfigError, match=r"Campaign.create: generators.0: Input tag 'transformer'"):
        _campaign(tmp_path / "gen", generator="transformer")
    with pytest.raises(ValueError, match="direction must be 'max' or 'min'"):
        _campaign(tmp_path / "dir", objectives=[pl.Objective("a", "up")])
    assert not (tmp_path / "zero" / "campaign.json").exists()

    campaign = _campaign(tmp_path / "c", budget=8)
    with pytest.raises(pl.CampaignExistsError, match=r"Campaign\.open"):
        _campaign(tmp_path / "c", budget=8)
    assert _campaign(tmp_path / "c", budget=8, exist_ok=True).directory == campaign.directory
    with pytest.raises(pl.CampaignMismatchError, match="different config"):
        _campaign(tmp_path / "c", seed=4, exist_ok=True)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        campaign.ask(0)
    first = campaign.ask()
    with pytest.raises(pl.NotEnoughDataError, match="tell the results of the pending candidates"):
        campaign.ask()  # nothing to learn from until round 0 is told
    campaign.tell(measured(first))  # 6 of the budget of 8
    assert len(campaign.ask(batch_size=5)) == 2  # what is left of the budget
    with pytest.raises(pl.BudgetSpentError, match="budget of 8 candidates is spent"):
        campaign.ask()
    # no batch can follow: what is told now closes a round of its own at once
    campaign.tell(measured(campaign.pending()))
    extra = TRUTH(["0,0"]).values.numpy()
    told = campaign.tell(pd.DataFrame({"candidate": ["0,0"], "branin": extra[:, 0], "currin": extra[:, 1]}))
    assert told.closed_rounds == (2,) and campaign.history()["n_observations"].tolist() == [6, 8, 9]

    # a campaign with its own oracle is run, not told; it can still be read
    synchronous = pl.Campaign.from_yaml(write_config(tmp_path / "sync.yaml"), tmp_path / "sync")
    with pytest.raises(pl.ConfigError, match="measures with oracle 'branin_currin' itself"):
        synchronous.ask()
    assert synchronous.pareto_front().empty and synchronous.hypervolume() == 0.0


def test_sampled_hvi_selection_asks_a_batch_that_raises_the_hypervolume(tmp_path):
    campaign = _campaign(
        tmp_path / "fast", acquisition={"kind": "sampled_hvi", "mc_samples": 32}, batch_size=4
    )
    campaign.tell(measured(campaign.ask()))
    for _ in range(2):
        batch = campaign.ask()
        assert len(batch) == 4 and batch["candidate"].is_unique
        assert (batch["acquisition"] >= 0).all() and batch["branin_mean"].notna().all()
        campaign.tell(measured(batch))
    history = campaign.history()["hypervolume"].tolist()
    assert len(history) == 3 and history[-1] > history[0]


def test_the_inbox_that_users_are_told_to_use_exists_once_a_request_is_written(tmp_path):
    campaign = _campaign(tmp_path / "inbox")
    inbox = campaign.directory / campaign.config.lab.inbox_dir
    assert not inbox.exists()
    campaign.ask()
    assert (campaign.directory / campaign.config.lab.request_dir).is_dir() and inbox.is_dir()
