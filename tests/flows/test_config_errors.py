"""Bad input: one clear error line naming the field, exit code 2, nothing written."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from paretolab.flows.cli import app
from paretolab.flows.config import ConfigError, load_config, parse_config
from paretolab.flows.factories import build_setup
from tests.helpers.configs import small_config, write_config

runner = CliRunner()

CASES = [
    ({"batch_size": 0}, "batch_size: Input should be greater than 0"),
    ({"generators": [{"kind": "nope"}]}, "generators.0: Input tag 'nope'"),
    ({"oracle": {"name": "nope"}}, "oracle.name: unknown oracle 'nope'"),
    ({"oracle": {"name": "branin_currin", "params": {"speed": 3}}}, "oracle.params:"),
    ({"ref_point": [1.0, 2.0, 3.0]}, "ref_point: has 3 values but oracle 'branin_currin' has 2 objectives"),
    (
        {"space": {"kind": "grid", "dims": 3, "levels": 8}},
        "oracle: branin_currin: ValueError: BraninCurrinOracle needs a grid space with 2 dims",
    ),
    ({"colour": "blue"}, "colour: unknown field (known: acquisition,"),
    ({"rounds": "many"}, "rounds: Input should be a valid integer"),
    ({"runtime": {"torch_threads": 100_000}}, "runtime.torch_threads: Value error, 100000 is more than"),
    ({"oracle": "external"}, "oracle.params: missing a required argument: 'objectives'"),
    (
        {"space": {"kind": "sequence", "alphabet": "AB", "length": 3, "max_length": 4}},
        "space: Value error, give length, or min_length and max_length, not both",
    ),
    ({"rounds": "3"}, "rounds: Input should be a valid integer"),
    ({"batch_size": True}, "batch_size: Input should be a valid integer"),
    ({"ref_point": [float("nan"), 1.0]}, "ref_point.0: Input should be a finite number"),
    ({"name": ".."}, "name: String should match pattern"),
    (
        {"generators": [{"kind": "genetic", "pool_size": 0}]},
        "generators.0.pool_size: Input should be greater",
    ),
    # OP-GFN has no reward exponent, and orders each batch against replayed measurements
    (
        {"generators": [{"kind": "opgfn", "beta": 16}]},
        "generators.0.beta: unknown field (known: ",
    ),
    (
        {"generators": [{"kind": "opgfn", "replay_fraction": 0}]},
        "generators.0.replay_fraction: Input should be greater than 0",
    ),
    (
        {
            "generators": [{"kind": "opgfn", "hidden": 30, "policy": "transformer"}],
            "space": {"kind": "sequence", "alphabet": "AB", "min_length": 1, "max_length": 4},
            "oracle": {"name": "ngram", "params": {"motifs": ["AB", "BA"]}},
        },
        "generators: opgfn: the transformer's width (30) must be a multiple of its 4 heads",
    ),
    (
        {
            "space": {"kind": "molecule"},
            "runtime": {"task_runner": {"kind": "dask", "generator_updates": "runner"}},
        },
        "runtime.task_runner.generator_updates: 'runner' sends the generators to the Dask workers, "
        "and a molecule space cannot travel",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CASES)
def test_bad_configs_name_the_field(tmp_path, overrides, message):
    path = write_config(tmp_path / "c.yaml", **overrides)
    with pytest.raises(ConfigError) as info:
        build_setup(load_config(path), str(path))
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


@pytest.mark.parametrize(("overrides", "message"), CASES[:5])
def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, monkeypatch, overrides, message):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "c.yaml", **overrides)
    result = runner.invoke(app, ["run", str(path), "--dir", str(tmp_path / "campaign")])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_cli_rejects_invalid_yaml_and_a_file_as_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace: {kind: grid\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2 and "invalid YAML" in result.output
    good = write_config(tmp_path / "c.yaml")
    (tmp_path / "file").write_text("")
    result = runner.invoke(app, ["run", str(good), "--dir", str(tmp_path / "file")])
    assert result.exit_code == 2 and "is not a directory" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "c.yaml", "file"]


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nspace: {kind: grid\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ invalid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")


def test_identity_hash_ignores_rounds_budget_runtime_and_tracking():
    from paretolab.flows.config import parse_config

    base = parse_config(small_config(), "x")
    same = parse_config(small_config(rounds=9, budget=50, runtime={"torch_threads": 2}), "x")
    other = parse_config(small_config(batch_size=4), "x")
    assert base.identity_hash() == same.identity_hash() != other.identity_hash()


def test_shipped_campaigns_are_valid(monkeypatch):
    from paretolab.flows import factories
    from tests.conftest import ROOT

    # campaigns that share a space (molecules, molecules_opgfn) build it once: 13 s each
    built, build_space = {}, factories.build_space

    def build_once(config, base_dir=None):
        key = (config.model_dump_json(), str(base_dir))
        if key not in built:
            built[key] = build_space(config, base_dir)
        return built[key]

    monkeypatch.setattr(factories, "build_space", build_once)
    paths = sorted((ROOT / "campaigns").glob("*.yaml"))
    assert {"molecules_opgfn.yaml", "ngram_opgfn.yaml"} <= {p.name for p in paths}
    for path in paths:
        build_setup(load_config(path))
    assert len(built) < len(paths)


IDENTITY_HASHES = {  # as campaigns created by earlier versions recorded them
    "branin_currin": "c8f1cf8a8456a889",
    "dtlz2": "7d9a434ac88eadf1",
    "hypergrid_mogfn": "eaebe083f06aa3d4",
    "lab_example": "5606b0fba91a138e",
    "molecules": "d7ad41066e2a2411",
    "molecules_before_library": "d6070b77e2875c86",
    "molecules_opgfn": "8e68d88485bfae10",
    "ngram_mogfn": "4b543b7171dad893",
    "ngram_opgfn": "bf53d2729a1fcbac",
}


EARLIER_CONFIGS = Path(__file__).parent / "earlier_configs"
"""Shipped configs as they were before an example campaign itself changed (the n-gram and
molecule examples took local GFlowNet samples and sampled_hvi; then the molecule example
screened its seed library too): campaigns created from them must keep resuming."""


def earlier_config(name: str) -> Path:
    """The config ``name`` as earlier versions shipped it."""
    from tests.conftest import ROOT

    earlier = EARLIER_CONFIGS / f"{name}.yaml"
    return earlier if earlier.exists() else ROOT / "campaigns" / f"{name}.yaml"


@pytest.mark.parametrize("name", sorted(IDENTITY_HASHES))
def test_identity_hash_of_existing_campaigns_is_unchanged(name):
    """Campaigns created before ``oracle.target`` existed, GFlowNet campaigns created
    while ``trajectories_per_step`` was ``batch_size`` (and the GFlowNet settings were
    declared apart from the trainer's), and those created before local samples, must
    still resume."""
    assert load_config(earlier_config(name)).identity_hash() == IDENTITY_HASHES[name]


@pytest.mark.parametrize("campaign", ["ngram_mogfn", "ngram_opgfn"])
@pytest.mark.parametrize(
    ("field", "value", "default"),
    [
        ("weight_decay", 1e-4, 0.0),
        ("train_seconds", 5.0, None),
        ("warm_start_steps", 10, 50),
        ("local_share", 1.0, 0.0),
        ("local_steps", 4, 8),
        ("local_anchors", 8, 32),
    ],
)
def test_a_gflownet_setting_that_did_not_exist_before_changes_the_identity_only_when_set(
    campaign, field, value, default
):
    data = yaml.safe_load(earlier_config(campaign).read_text())
    same = parse_config(data, "x").identity_hash()
    data["generators"][0][field] = value
    assert parse_config(data, "x").identity_hash() != same
    data["generators"][0][field] = default  # the default, spelled out: the same campaign
    assert parse_config(data, "x").identity_hash() == same


def test_shorthands_mean_what_they_stand_for(tmp_path):
    """``oracle: NAME`` and a sequence space's ``length`` keep the campaign's identity."""
    short = small_config(oracle="ngram", space={"kind": "sequence", "alphabet": "AVC", "length": 6})
    long = small_config(
        oracle={"name": "ngram"},
        space={"kind": "sequence", "alphabet": "AVC", "min_length": 6, "max_length": 6},
    )
    for name, data in (("short", short), ("long", long)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
    a, b = load_config(tmp_path / "short.yaml"), load_config(tmp_path / "long.yaml")
    assert a.identity_hash() == b.identity_hash() and a.space.max_length == 6


def test_a_gflownet_config_written_with_the_old_batch_size_name_still_loads_as_the_same_campaign():
    data = yaml.safe_load(earlier_config("ngram_mogfn").read_text())
    steps = data["generators"][0].pop("trajectories_per_step")
    data["generators"][0]["batch_size"] = steps
    with pytest.warns(FutureWarning, match="now called trajectories_per_step"):
        config = parse_config(data, "old.yaml")
    assert config.generators[0].trajectories_per_step == steps
    assert config.identity_hash() == IDENTITY_HASHES["ngram_mogfn"]
    data["generators"][0]["trajectories_per_step"] = steps
    with pytest.raises(ConfigError, match="give trajectories_per_step only"):
        parse_config(data, "both.yaml")


def test_proxy_kernel_auto_picks_kmer_for_sequences_and_rbf_for_grids(tmp_path):
    from paretolab.flows.factories import proxy_kernel

    sequence = small_config(
        oracle={"name": "ngram", "params": {"motifs": ["AV"]}},
        space={"kind": "sequence", "alphabet": "AVC", "min_length": 4, "max_length": 6},
    )
    assert proxy_kernel(parse_config(sequence, "s.yaml")) == "kmer"
    assert proxy_kernel(parse_config(small_config(), "g.yaml")) == "rbf"
    assert proxy_kernel(parse_config({**sequence, "proxy": {"kernel": "rbf"}}, "s.yaml")) == "rbf"
    with pytest.raises(ConfigError, match=r"proxy\.kernel: kmer .* needs a sequence space"):
        proxy_kernel(parse_config(small_config(proxy={"kernel": "kmer"}), "g.yaml"))


def test_an_unquoted_yaml_off_switches_the_feasibility_model_off(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(small_config()).replace("acquisition:", "proxy: {feasibility: off}\nacquisition:")
    )
    assert load_config(path).proxy.feasibility == "off"
    assert load_config(write_config(tmp_path / "d.yaml")).identity_hash() != load_config(path).identity_hash()


CONFINEMENT_AND_LIMITS = [  # each passed validation before and failed (or escaped) later
    (
        {"lab": {"inbox_dir": "/tmp/someone_elses_folder"}},
        "lab.inbox_dir: Value error, '/tmp/someone_elses_folder' is",
    ),
    ({"lab": {"request_dir": "../outside"}}, "lab.request_dir: Value error, '../outside' is"),
    ({"lab": {"request_dir": "lab/../../outside"}}, "lab.request_dir: Value error, 'lab/../../outside' is"),
    ({"lab": {"inbox_dir": "."}}, "lab.inbox_dir: Value error, '.' is"),
    ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    ({"tracking": {"experiment": ""}}, "tracking.experiment: String should have at least 1 character"),
    ({"name": "n" * 300}, "name: String should have at most 100 characters"),
]


@pytest.mark.parametrize(("overrides", "message"), CONFINEMENT_AND_LIMITS)
def test_lab_folders_stay_inside_the_campaign_and_limits_are_checked_before_anything_is_written(
    tmp_path, monkeypatch, overrides, message
):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "c.yaml", **overrides)
    result = runner.invoke(app, ["run", str(path), "--dir", str(tmp_path / "campaign")])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    assert not (tmp_path.parent / "outside").exists()


def test_lab_folders_inside_the_campaign_are_accepted(tmp_path):
    path = write_config(tmp_path / "c.yaml", lab={"inbox_dir": "results/in", "request_dir": "./out/requests"})
    assert load_config(path).lab.inbox_dir == "results/in"


def test_a_config_that_is_not_utf8_text_is_one_clear_error(tmp_path):
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(yaml.safe_dump(small_config()).encode("utf-16"))
    noise = tmp_path / "noise.yaml"
    noise.write_bytes(bytes(range(128, 256)) * 4)
    for path in (utf16, noise):
        with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte \d+\); save the config as UTF-8"):
            load_config(path)
    result = runner.invoke(app, ["run", str(noise), "--dir", str(tmp_path / "campaign")])
    assert (
        result.exit_code == 2 and "not UTF-8 text" in result.output and not (tmp_path / "campaign").exists()
    )


def test_a_key_given_twice_is_refused_naming_it_and_its_line(tmp_path):
    text = yaml.safe_dump(small_config(), sort_keys=False).replace(
        "batch_size: 3", "batch_size: 3\nbatch_size: 5"
    )
    (tmp_path / "twice.yaml").write_text(text)
    line = text.splitlines().index("batch_size: 5") + 1
    with pytest.raises(
        ConfigError, match=rf"twice.yaml: line {line} invalid YAML \(key 'batch_size' given twice\)"
    ):
        load_config(tmp_path / "twice.yaml")
    nested = yaml.safe_dump(small_config(), sort_keys=False).replace("dims: 2", "dims: 2\n  dims: 3")
    (tmp_path / "nested.yaml").write_text(nested)
    with pytest.raises(ConfigError, match="key 'dims' given twice"):
        load_config(tmp_path / "nested.yaml")


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    bomb = yaml.safe_dump(small_config()) + "oracle:\n  name: branin_currin\n  params:\n"
    bomb = bomb.replace("oracle:\n  name: branin_currin\n", "", 1)
    bomb += "".join(f"    {line}\n" for line in levels)
    (tmp_path / "bomb.yaml").write_text(bomb)
    with pytest.raises(ConfigError, match=r"bomb.yaml: expands to more than 100,000 values"):
        load_config(tmp_path / "bomb.yaml")
    anchors = yaml.safe_dump(small_config()) + "x-shared: &shared {kind: genetic, pool_size: 64}\n"
    (tmp_path / "anchors.yaml").write_text(anchors)
    with pytest.raises(ConfigError, match="x-shared: unknown field"):  # small aliases load
        load_config(tmp_path / "anchors.yaml")


def test_a_misspelled_key_is_named_with_a_did_you_mean_instead_of_field_required(tmp_path):
    data = small_config()
    data["batchsize"] = data.pop("batch_size")
    with pytest.raises(ConfigError) as info:
        parse_config(data, "c.yaml")
    assert str(info.value) == "c.yaml: batchsize: unknown field (did you mean batch_size?)"


def test_every_problem_is_reported_in_one_line_down_to_nested_list_items(tmp_path):
    data = small_config(rounds=-1, intial_design=3, proxy={"kernal": "rbf"})
    data["generators"] = [{"kind": "genetic", "mutaton_rate": 0.1}]
    with pytest.raises(ConfigError) as info:
        parse_config(data, "c.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("c.yaml: 4 problems: ")
    for part in (
        "rounds: Input should be greater than or equal to 0",
        "intial_design: unknown field (did you mean initial_design?)",
        "proxy.kernal: unknown field (did you mean kernel?)",
        "generators.0.mutaton_rate: unknown field (did you mean mutation_rate?)",
    ):
        assert part in message


@pytest.mark.slow
def test_the_error_stays_one_line_when_stderr_is_a_pipe(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    deep = tmp_path / ("a_rather_long_folder_name_" * 4) / ("and_another_one_" * 4)
    deep.mkdir(parents=True)
    path = write_config(deep / "c.yaml", batch_size=0, colour="blue")
    paretolab = str(Path(sys.executable).with_name("paretolab"))
    done = subprocess.run(
        [paretolab, "run", str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and len(done.stderr) > 200, done.stderr
    assert (
        "batch_size: Input should be greater than 0" in done.stderr and "colour: unknown field" in done.stderr
    )


def test_a_tracking_uri_mlflow_cannot_store_at_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / "c.yaml", tracking={"tracking_uri": "foo://bar"})
    result = runner.invoke(app, ["run", str(path), "--dir", str(tmp_path / "campaign")])
    assert result.exit_code == 2
    assert "tracking.tracking_uri: MLflow cannot store runs at 'foo://bar' (known schemes:" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
