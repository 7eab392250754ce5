"""Chemistry oracles against RDKit's own values, with real RDKit."""

from __future__ import annotations

import math

import pytest
from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

from paretolab.data.molecules import NAMED_MOLECULES
from paretolab.data.spaces import MoleculeSpace
from paretolab.oracles import molecular
from paretolab.oracles.molecular import Desirability, MolecularOracle
from paretolab.oracles.registry import oracle_class

ASPIRIN = NAMED_MOLECULES["aspirin"]
CELECOXIB = NAMED_MOLECULES["celecoxib"]
PACLITAXEL = (
    "CC1=C2[C@@]([C@]([C@H]([C@@H]3[C@]4([C@H](OC4)C[C@@H]([C@]3(C(=O)[C@@H]2OC(=O)C)C)O)"
    "OC(=O)C)OC(=O)c5ccccc5)(C[C@@H]1OC(=O)[C@H](O)[C@@H](NC(=O)c6ccccc6)c7ccccc7)O)(C)C"
)


@pytest.fixture(scope="module")
def space() -> MoleculeSpace:
    return MoleculeSpace([*NAMED_MOLECULES.values(), "c1ccccc1", PACLITAXEL], 200)


def _oracle(space, *objectives):
    return MolecularOracle(space, list(objectives))


def test_properties_equal_rdkits_own_values(space):
    oracle = _oracle(
        space,
        {"name": "qed", "property": "qed"},
        {"name": "logp", "property": "logp", "direction": "max"},
        {"name": "mw", "property": "mw", "direction": "min"},
        {"name": "tpsa", "property": "tpsa", "direction": "min"},
        {"name": "hbd", "property": "hbd", "direction": "min"},
        {"name": "hba", "property": "hba", "direction": "min"},
    )
    result = oracle([ASPIRIN])
    mol = Chem.MolFromSmiles(ASPIRIN)
    expected = [
        QED.qed(mol),
        Crippen.MolLogP(mol),
        Descriptors.MolWt(mol),
        rdMolDescriptors.CalcTPSA(mol),
        rdMolDescriptors.CalcNumHBD(mol),
        rdMolDescriptors.CalcNumHBA(mol),
    ]
    assert result.values[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert result.values[0, 0] == pytest.approx(0.550, abs=1e-3)  # aspirin's published QED
    assert result.values[0, 2] == pytest.approx(180.16, abs=0.01)
    assert [o.direction for o in oracle.objectives] == ["max", "max", "min", "min", "min", "min"]


def test_sa_ranks_benzene_easy_and_paclitaxel_hard(space):
    oracle = _oracle(space, {"name": "sa", "property": "sa"})
    assert oracle.objectives[0].direction == "min"
    benzene, aspirin, taxol = oracle(["c1ccccc1", ASPIRIN, PACLITAXEL]).values[:, 0].tolist()
    assert 1.0 <= benzene < aspirin < 3.0 < 5.0 < taxol <= 10.0


def test_similarity_to_named_and_smiles_targets(space):
    oracle = _oracle(
        space,
        {"name": "sim", "property": "similarity", "targets": ["celecoxib"]},
        {"name": "sim2", "property": "similarity", "targets": ["c1ccccc1", ASPIRIN]},
    )
    values = oracle([CELECOXIB, ASPIRIN, "c1ccccc1"]).values
    assert values[0, 0] == pytest.approx(1.0)
    assert values[1, 0] < 0.3 and values[2, 0] < 0.3
    assert values[1, 1] == pytest.approx(1.0) and values[2, 1] == pytest.approx(1.0)  # max over targets


def test_desirability_is_derringer_suich_and_combines_by_geometric_mean(space):
    term = Desirability(property="mw", low=200, high=400, lower_limit=100, upper_limit=600)
    assert [term(v) for v in (50, 100, 150, 200, 300, 400, 500, 600, 700)] == [0, 0, 0.5, 1, 1, 1, 0.5, 0, 0]
    assert Desirability(property="mw", low=200, lower_limit=100, exponent=2)(150) == pytest.approx(0.25)
    assert Desirability(property="logp", high=5)(5.1) == 0.0
    assert math.isnan(Desirability(property="logp", high=5)(math.nan))  # unknown is not desirable
    oracle = _oracle(
        space,
        {
            "name": "druglike",
            "desirability": [
                {"property": "mw", "low": 200, "high": 500, "lower_limit": 100, "upper_limit": 700},
                {"property": "qed", "low": 0.9, "lower_limit": 0.0},
            ],
        },
    )
    assert oracle.objectives[0].direction == "max"
    mol = Chem.MolFromSmiles(ASPIRIN)
    d_mw = (Descriptors.MolWt(mol) - 100) / 100
    d_qed = QED.qed(mol) / 0.9
    assert oracle([ASPIRIN]).values[0, 0].item() == pytest.approx(math.sqrt(d_mw * d_qed))


def test_failures_are_nan_rows_with_reasons_and_results_are_cached(space, monkeypatch):
    calls = []

    def logp(mol):
        calls.append(Chem.MolToSmiles(mol))
        if mol.GetNumAtoms() == 6:
            raise RuntimeError("descriptor failed")
        return Crippen.MolLogP(mol)

    monkeypatch.setitem(molecular.PROPERTIES, "logp", logp)
    oracle = _oracle(
        space, {"name": "qed", "property": "qed"}, {"name": "logp", "property": "logp", "direction": "max"}
    )
    result = oracle([ASPIRIN, "c1ccccc1", "C1CC", "", "CC[Xe]", ASPIRIN])
    assert result.valid.tolist() == [True, False, False, False, False, True]
    assert (
        math.isnan(result.values[1, 0]) and "logp: RDKit RuntimeError: descriptor failed" in result.reasons[1]
    )
    assert "unclosed ring" in result.reasons[2] and "empty SMILES" in result.reasons[3]
    assert "not in the alphabet" in result.reasons[4]
    assert calls.count(ASPIRIN) == 1  # cached by canonical SMILES
    oracle([ASPIRIN])
    assert calls.count(ASPIRIN) == 1


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        ([], "give at least one"),
        ([{"name": "x", "property": "solubility"}], r"objectives\[0\]\.property: Input should be"),
        ([{"name": "x", "property": "logp"}], "say whether logp is maximized or minimized"),
        ([{"name": "x", "property": "similarity"}], "similarity needs targets"),
        ([{"name": "x", "property": "qed", "targets": ["aspirin"]}], "targets only apply to similarity"),
        ([{"name": "x", "property": "similarity", "targets": ["notadrug"]}], "not a known name"),
        ([{"name": "x", "desirability": [{"property": "mw"}]}], "give low, high or both"),
        ([{"name": "x", "desirability": [{"property": "mw", "low": 5, "high": 1}]}], "low 5.0 is above high"),
        ([{"name": "x", "property": "qed"}, {"name": "x", "property": "sa"}], "names must be distinct"),
        ([{"name": "x", "property": "qed", "weight": 2}], "Extra inputs are not permitted"),
    ],
)
def test_bad_objective_specs_are_clear_errors(space, objectives, message):
    with pytest.raises(ValueError, match=message):
        MolecularOracle(space, objectives)


def test_registered_and_needs_a_molecule_space():
    from paretolab.data.spaces import SequenceSpace

    assert oracle_class("molecular") is MolecularOracle
    with pytest.raises(ValueError, match="needs a molecule space"):
        MolecularOracle(SequenceSpace("AB", 1, 3), [{"name": "qed", "property": "qed"}])
