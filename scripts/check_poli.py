"""Run real poli toy problems through PoliOracle out of process and check the values.

poli-core needs numpy<2, so it lives in its own environment, never in paretolab's:

    python3 -m venv benchmarks/.venv-poli
    benchmarks/.venv-poli/bin/pip install "numpy<2" poli-core==1.3.1

Then, with paretolab's interpreter:

    .venv/bin/python scripts/check_poli.py --python benchmarks/.venv-poli/bin/python

Problems (none downloads anything): ``aloha`` (matches with "ALOHA", checked exactly),
``ehrlich`` (poli's own Ehrlich function: its constructed optimum scores 1, infeasible
sequences become NaN rows),
``white_noise`` (the seed reaches poli: two oracles with one seed agree) and ``rdkit_qed``
from SELFIES tokens and from SMILES characters, checked against RDKit's QED here.
Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import string
import subprocess
import sys
import tempfile
import time

import torch
from rdkit import Chem
from rdkit.Chem import QED
from rich.console import Console
from rich.table import Table

from paretolab.data.molecules import NAMED_MOLECULES
from paretolab.data.spaces import MoleculeSpace, SequenceSpace
from paretolab.oracles.base import OracleResult
from paretolab.oracles.poli import PoliOracle

AMINO_ACIDS = "ARNDCEQGHILKMFPSTWYV"  # poli's Ehrlich alphabet, in its order

console = Console()


def show(title: str, xs: list[str], result: OracleResult, seconds: float) -> None:
    table = Table(title=f"{title} ({seconds:.2f} s)")
    table.add_column("candidate")
    table.add_column("values")
    table.add_column("reason")
    for x, row, reason in zip(xs, result.values.tolist(), result.reasons, strict=True):
        table.add_row(x, ", ".join(f"{v:.4f}" for v in row), reason or "")
    console.print(table)


def run(oracle: PoliOracle, title: str, xs: list[str]) -> OracleResult:
    start = time.perf_counter()
    result = oracle(xs)
    show(title, xs, result, time.perf_counter() - start)
    return result


def ehrlich_reference(python: str, kwargs: dict[str, int], seed: int) -> tuple[str, str]:
    """poli's own feasible start ``x0`` and constructed optimum for an Ehrlich problem."""
    code = (
        "import sys, json\n"
        "from poli import objective_factory\n"
        f"p = objective_factory.create(name='ehrlich', seed={seed}, **json.loads(sys.argv[1]))\n"
        "sys.stdout.write(''.join(p.x0[0]) + ' ' + ''.join(p.black_box.construct_optimal_solution()[0]))\n"
    )
    done = subprocess.run(
        [python, "-W", "ignore", "-c", code, json.dumps(kwargs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    x0, optimum = done.stdout.split()
    return x0, optimum


def check(ok: bool, what: str, failures: list[str]) -> None:
    console.print(f"[{'green' if ok else 'red'}]{'ok  ' if ok else 'FAIL'}[/] {what}")
    if not ok:
        failures.append(what)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", required=True, help="interpreter of the environment that has poli-core")
    args = parser.parse_args()
    failures: list[str] = []

    space = SequenceSpace(string.ascii_uppercase, 5, 5)
    xs = ["ALOHA", "ALOOF", "HELLO", "AAAAA"]
    with PoliOracle(space, "aloha", python=args.python) as aloha:
        values = run(aloha, "aloha", xs).values
        console.print(f"poli black-box info: {aloha.info}")
    expected = [[float(sum(a == b for a, b in zip(x, "ALOHA", strict=True)))] for x in xs]
    check(values.tolist() == expected, f"aloha equals the matches with ALOHA {expected}", failures)

    ehrlich_space = SequenceSpace(AMINO_ACIDS, 8, 8)
    kwargs = {"sequence_length": 8, "motif_length": 2, "n_motifs": 2, "quantization": 2}
    x0, optimum = ehrlich_reference(args.python, kwargs, seed=1)
    xs = [optimum, x0, *ehrlich_space.sample(4, torch.Generator().manual_seed(0))]
    with PoliOracle(ehrlich_space, "ehrlich", problem_kwargs=kwargs, seed=1, python=args.python) as ehrlich:
        result = run(ehrlich, "ehrlich (8 residues, 2 motifs of 2; optimum, x0, random)", xs)
    check(result.values[0].item() == 1.0, f"ehrlich's constructed optimum {optimum} scores 1", failures)
    check(0.0 <= result.values[1].item() < 1.0, f"ehrlich's feasible x0 {x0} scores in [0, 1)", failures)

    noise_space = SequenceSpace("0123456789", 3, 3)
    xs = ["123", "456", "789"]
    draws = []
    for _ in range(2):
        with PoliOracle(noise_space, "white_noise", seed=7, python=args.python) as noise:
            draws.append(run(noise, "white_noise, seed 7", xs).values)
    check(torch.equal(draws[0], draws[1]), "white_noise with one seed gives one draw", failures)

    molecules = MoleculeSpace(list(NAMED_MOLECULES.values()), 128)
    xs = list(molecules.seeds[:5])
    rdkit_qed = torch.tensor([[QED.qed(Chem.MolFromSmiles(x))] for x in xs], dtype=torch.double)
    for representation, string_representation in (("tokens", "SELFIES"), ("chars", "SMILES")):
        oracle = PoliOracle(
            molecules,
            "rdkit_qed",
            objectives=[{"name": "qed", "direction": "max"}],
            problem_kwargs={"string_representation": string_representation},
            representation=representation,
            python=args.python,
        )
        with oracle:
            values = run(oracle, f"rdkit_qed from {string_representation} ({representation})", xs).values
        close = torch.allclose(values, rdkit_qed, atol=1e-6)
        check(close, f"rdkit_qed from {string_representation} equals RDKit's QED here", failures)

    if failures:
        console.print(f"[red]{len(failures)} check(s) failed[/]")
        return 1
    console.print("[green]all poli checks passed[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
