"""MoleculeSpace, seed files, filters and fingerprints, with real RDKit and SELFIES."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import selfies as sf
import torch
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from paretolab.data.molecules import (
    NAMED_MOLECULES,
    MoleculeFilters,
    MorganFingerprints,
    nci_seed_path,
    parse_smiles,
    read_seed_file,
)
from paretolab.data.spaces import PAD, MoleculeSpace

ORGANIC = frozenset({"C", "N", "O", "S", "F", "Cl", "Br"})


@pytest.fixture(scope="module")
def nci() -> list[str]:
    return read_seed_file(nci_seed_path()).smiles


@pytest.fixture(scope="module")
def space(nci) -> MoleculeSpace:
    return MoleculeSpace(
        nci,
        48,
        filters=MoleculeFilters(heavy_atoms=(3, 40), elements=ORGANIC, neutral=True, no_radicals=True),
    )


def test_the_nci_seed_set_is_read_from_the_installed_rdkit_and_bad_rows_are_reported():
    seeds = read_seed_file(nci_seed_path())
    assert len(seeds.smiles) > 4900
    assert seeds.rejected and all(r.row > 0 and r.reason for r in seeds.rejected)
    first = seeds.rejected[0]
    assert "valence" in first.reason and first.smiles in nci_seed_path().read_text()
    assert all("." not in s for s in seeds.smiles)  # salts are reduced to their parent


def test_seed_rows_round_trip_through_selfies_tokens(space):
    seeds = list(space.seeds)
    assert len(seeds) > 3000
    assert space.decode(space.encode(seeds)) == seeds
    assert all(space.check(s).canonical == s for s in seeds[:500])


def test_two_selfies_of_one_molecule_are_one_candidate(space):
    a = "".join(sf.split_selfies(sf.encoder("OCC")))
    b = "".join(sf.split_selfies(sf.encoder("C(O)C")))
    c = "[C][C][O]"
    index = {t: i for i, t in enumerate(space.alphabet)}
    rows = [[index[t] for t in sf.split_selfies(s)] for s in (a, b, c, "[O][C][C]")]
    tokens = torch.full((4, space.max_length), PAD)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row)
    decoded = space.decode(tokens)
    assert decoded == ["CCO"] * 4
    assert {space.check(x).canonical for x in ("OCC", "C(O)C", "[CH3][CH2][OH]", "CCO")} == {"CCO"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty SMILES"),
        ("C" * 10_000, "10000 characters"),
        ("C1CC", "unclosed ring"),
        ("C(C)(C)(C)(C)C", "valence"),
        ("CC[Xe]CC", "element(s) not allowed: Xe"),
        ("CC[Si](C)(C)C", "element(s) not allowed: Si"),
        ("CC(=O)[O-].[Na+]", "2 fragments"),
        ("C[N+](C)(C)C", "formal charges"),
        ("CC(C)" * 12, "more than max_length"),
        (None, "not a string"),
    ],
)
def test_invalid_and_adversarial_inputs_get_a_reason(space, text, reason):
    check = space.check(text)
    assert check.canonical is None
    assert reason in check.reason


def test_unsupported_elements_without_a_filter_are_outside_the_alphabet():
    space = MoleculeSpace(["CCO", "c1ccccc1O"], 20)
    check = space.check("CC[Se]C")
    assert check.canonical is None and "not in the alphabet: [Se]" in check.reason
    wider = MoleculeSpace(["CCO", "c1ccccc1O"], 20, extra_tokens=["[Se]"])
    assert wider.check("CC[Se]C").canonical == "CC[Se]C"
    with pytest.raises(ValueError, match="not a SELFIES token"):
        MoleculeSpace(["CCO"], 20, extra_tokens=["Se"])


def test_filters_heavy_atoms_and_pains():
    rhodanine = "S=C1SC(=Cc2ccccc2)C(=O)N1"  # an ene-rhodanine, a classic PAINS alert
    filters = MoleculeFilters(heavy_atoms=(5, 30), pains=True)
    assert "PAINS alert: ene_rhod" in filters.violation(Chem.MolFromSmiles(rhodanine))
    assert "outside [5, 30]" in filters.violation(Chem.MolFromSmiles("CCO"))
    assert filters.violation(Chem.MolFromSmiles(NAMED_MOLECULES["ibuprofen"])) is None
    with pytest.raises(ValueError, match="not an element"):
        MoleculeFilters(elements=frozenset({"C", "Qq"}))
    with pytest.raises(ValueError, match="heavy_atoms"):
        MoleculeFilters(heavy_atoms=(10, 5))


def test_seeds_outside_the_space_are_left_out_and_no_seed_at_all_is_an_error():
    space = MoleculeSpace(["CCO", "CC(=O)[O-]", "c1ccccc1"], 20, filters=MoleculeFilters(neutral=True))
    assert space.seeds == ("CCO", "c1ccccc1")
    with pytest.raises(ValueError, match="none of the 1 seed molecules"):
        MoleculeSpace(["CCCCCCCCCC"], 4)


def test_random_tokens_decode_to_molecules(space):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, space.vocab_size, (200, space.max_length), generator=generator)
    decoded = space.decode(tokens)
    valid = space.valid_tokens(tokens)
    assert all(parse_smiles(x)[0] is not None for x, ok in zip(decoded, valid, strict=True) if ok)
    assert 0 < int(valid.sum()) < 200  # the filters reject some decoded molecules


def _tokens(space, *selfies):
    tokens = torch.full((len(selfies), space.max_length), PAD)
    for i, s in enumerate(selfies):
        row = [space.alphabet.index(t) for t in sf.split_selfies(s)]
        tokens[i, : len(row)] = torch.tensor(row)
    return tokens


def test_tokens_of_filtered_molecules_are_invalid_and_get_no_reward(space):
    from paretolab.models.proxies.gp import fit_gp_proxy
    from paretolab.models.rewards import ProxyReward

    tokens = _tokens(space, "[C]", "[C][C][O]", "[C][C]")  # methane and ethane: too few heavy atoms
    assert space.decode(tokens) == ["C", "CCO", "CC"]
    assert space.valid_tokens(tokens).tolist() == [False, True, False]
    assert "1 heavy atoms" in space.check("C").reason
    molecules = list(space.seeds[:20])
    X, Y = space.featurize(molecules), torch.arange(20.0, dtype=torch.double).unsqueeze(-1)
    model, _ = fit_gp_proxy(X, Y, holdout_fraction=0.0, rng=torch.Generator(), kernel="minmax")
    scores = ProxyReward(model, space).from_tokens(tokens)
    assert scores[0, 0] == float("-inf") and scores[2, 0] == float("-inf") and torch.isfinite(scores[1, 0])


def test_encode_and_decode_refuse_what_is_not_theirs(space):
    with pytest.raises(ValueError, match="not a canonical member"):
        space.encode(["CC(C)" * 12])
    with pytest.raises(ValueError, match="not a canonical member"):
        space.encode(["OCC"])  # a member, but not written canonically
    with pytest.raises(ValueError, match="token ids must be in"):
        space.decode(torch.tensor([[-2]]))
    with pytest.raises(ValueError, match="token ids must be in"):
        space.decode(torch.tensor([[space.vocab_size]]))
    assert "whitespace" in space.check("CCO this is not smiles").reason


def test_more_seeds_than_the_cache_holds(nci):
    small = MoleculeSpace(nci[:300], 48, cache_size=10)
    full = MoleculeSpace(nci[:300], 48)
    assert small.alphabet == full.alphabet and small.seeds == full.seeds
    assert small.decode(small.encode(list(small.seeds))) == list(small.seeds)


def test_sample_draws_distinct_seed_molecules_reproducibly(space):
    a = space.sample(50, torch.Generator().manual_seed(1))
    b = space.sample(50, torch.Generator().manual_seed(1))
    assert a == b and len(set(a)) == 50 and set(a) <= set(space.seeds)
    tiny = MoleculeSpace(["CCO", "CCN"], 10)
    assert sorted(tiny.sample(4, torch.Generator().manual_seed(0))) == ["CCN", "CCN", "CCO", "CCO"]


def test_fingerprints_are_rdkits_morgan_counts_and_bits():
    smiles = [NAMED_MOLECULES["aspirin"], NAMED_MOLECULES["celecoxib"], "not a molecule"]
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    counts = MorganFingerprints(2, 1024, counts=True)(smiles)
    bits = MorganFingerprints(2, 1024, counts=False)(smiles)
    for i in range(2):
        mol = Chem.MolFromSmiles(smiles[i])
        np.testing.assert_array_equal(counts[i], generator.GetCountFingerprintAsNumPy(mol))
        np.testing.assert_array_equal(bits[i], generator.GetFingerprintAsNumPy(mol))
    assert counts[0].max() > 1 and bits.max() == 1
    assert not counts[2].any()
    cached = MorganFingerprints(2, 1024, cache_size=1)
    np.testing.assert_array_equal(cached(smiles[:2]), counts[:2])
    np.testing.assert_array_equal(cached(smiles[:2]), counts[:2])


def test_seed_files_csv_parquet_and_smi(tmp_path):
    rows = pd.DataFrame({"name": ["a", "b", "c", "d"], "SMILES": ["CCO", "C1CC", "", "c1ccccc1"]})
    rows.to_csv(tmp_path / "seeds.csv", index=False)
    seeds = read_seed_file(tmp_path / "seeds.csv")
    assert seeds.smiles == ["CCO", "c1ccccc1"]
    assert [(r.row, r.smiles) for r in seeds.rejected] == [(2, "C1CC"), (3, "")]
    assert "unclosed ring" in seeds.rejected[0].reason and seeds.rejected[1].reason == "empty SMILES"

    rows.rename(columns={"SMILES": "structure"}).to_parquet(tmp_path / "seeds.parquet")
    assert read_seed_file(tmp_path / "seeds.parquet", "structure").smiles == ["CCO", "c1ccccc1"]

    (tmp_path / "seeds.smi").write_text("smiles\nCCO name1\nOCC(=O)O\n")
    assert read_seed_file(tmp_path / "seeds.smi").smiles == ["CCO", "O=C(O)CO"]


def test_a_csv_without_a_smiles_column_names_the_file_and_its_columns(tmp_path):
    pd.DataFrame({"name": ["a"], "value": [1.0]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(ValueError, match=r"x\.csv: no SMILES column .*columns are name, value"):
        read_seed_file(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        read_seed_file(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("smiles\nC1CC\nXx\n")
    with pytest.raises(ValueError, match="no molecule could be read"):
        read_seed_file(tmp_path / "bad.csv")
