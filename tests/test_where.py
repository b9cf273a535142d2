"""Row filters (--where, --holdout) say in plain words what is wrong and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "data" / "synthetic_chinchilla.csv"


@pytest.mark.parametrize("where, said", [
    ("N += 3", "cannot be read near '+= 3'"),
    ("N >>> 3", "cannot be read"),
    ("bogus > 1", "no column 'bogus'; the runs have: D, N, loss"),
    ("Nn > 1e9", "did you mean 'N'?"),
    ("N", "is not a condition on the runs"),
    ("exp(N) > 3", "a function call is not allowed"),
    ("N ** 2 > 3", "'**' is not allowed"),
    ("N.real > 3", "an attribute is not allowed"),
])
def test_bad_conditions_are_explained(where, said):
    with pytest.raises(InputError, match="a condition compares column names and numbers|no column") as info:
        sl.load_runs(RUNS, where=where)
    assert said in str(info.value) and str(RUNS) in str(info.value)


def test_good_conditions_with_suffixes_and_arithmetic():
    assert len(sl.load_runs(RUNS, where="N >= 1B and D < 2000*N")) > 0
    assert len(sl.load_runs(RUNS, where="not (N > 1e9) or D == 20B")) > 0


def test_the_cli_names_the_flag(cli):
    code, _, err = cli("fit", str(RUNS), "--where", "N += 3")
    assert code == 2 and err.count("\n") == 1 and "--where 'N += 3' cannot be read" in err and "Traceback" not in err
    code, _, err = cli("validate", str(RUNS), "--holdout", "bogus > 1")
    assert code == 2 and "--holdout 'bogus > 1': no column 'bogus'" in err
