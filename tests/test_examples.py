"""The shipped example runs, and its verdicts follow from its stated thresholds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
example = load_script("examples/fit_trainer_runs.py")


def test_trend_verdicts_follow_the_stated_thresholds():
    rng = np.random.default_rng(0)
    assert example.trend_verdict(-np.abs(rng.normal(size=18)), -1) == "agrees"          # every series falls
    assert example.trend_verdict(np.abs(rng.normal(size=18)), -1) == "DISAGREES"        # every series rises
    mixed = np.array([-1.0] * 10 + [0.5] * 8)                                          # 56% fall, mean < 0
    assert example.trend_verdict(mixed, -1).startswith("weak (56% of 18 series")
    assert example.trend_verdict(np.array([1.5] * 9 + [-1.0] * 9), -1).startswith("not seen")  # wrong sign, not significant
    assert example.trend_verdict([], +1).startswith("not seen")
    assert example.order_verdict([0.0, 0.1, 0.3]) == "agrees"
    assert example.order_verdict([0.0, 0.2, 0.1]).startswith("weak")
    assert example.order_verdict([0.3, 0.2, 0.1]) == "DISAGREES"
    assert example.sign_test(18, 18) < 1e-4 and example.sign_test(9, 18) == 1.0


def test_the_example_runs_on_the_shipped_table_and_calls_the_weak_trend_weak():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "fit_trainer_runs.py")], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("- QAT penalty falls as N grows"))
    assert ": weak (" in line  # falls in only 56% of the series: not "agrees"
    assert "agrees: the papers' sign in at least 75% of the series" in out.stdout


def test_the_shipped_ladder_spans_what_its_data_card_says():
    import pandas as pd
    runs = pd.read_csv(ROOT / "data" / "ladder_runs.csv")
    assert (runs["diverged"] == 0).all()
    fp = runs[runs["w_bits"].isna() & runs["ptq_bits"].isna()]
    sizes = sorted(fp["N"].unique())
    assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 16
    assert fp["D"].nunique() == 3
    assert len(fp) == len(sizes) * 3                                    # one FP run per (N, D)
    q = runs[runs["w_bits"].notna()]
    ints = q[q["format"] == "int"]
    assert {(w, g == g) for w, g in zip(ints["w_bits"], ints["group_size"])} == {
        (b, grouped) for b in (8.0, 4.0, 3.0, 2.0) for grouped in (False, True)}   # per channel and G32
    fmts = q[q["format"] == "fp"]
    assert {(e, m) for e, m in zip(fmts["exp_bits"], fmts["man_bits"])} >= {(4.0, 3.0), (2.0, 1.0)}  # FP8, FP4
    assert set(runs["ptq_bits"].dropna()) == {8.0, 4.0, 3.0, 2.0}
    per_cell = q.groupby(["N", "D"]).size()
    assert per_cell.nunique() == 1 and len(per_cell) == len(sizes) * 3   # every precision at every (N, D)


def test_the_example_fits_every_quantization_law_to_the_ladder():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "fit_trainer_runs.py"), "data/ladder_runs.csv"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    for law in ("chinchilla", "kumar-ptq", "ouyang-qid", "chen-qat", "kumar-precision", "frantar-eff", "capybara"):
        assert f"  {law}" in out.stdout, law
    verdicts = [x for x in out.stdout.splitlines() if x.startswith("- ")]
    assert len(verdicts) >= 9
    allowed = ("agrees", "DISAGREES", "weak (", "not seen (")
    assert all(any(f": {a}" in v for a in allowed) for v in verdicts), verdicts
