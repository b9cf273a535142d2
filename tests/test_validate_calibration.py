"""The validate verdict on synthetic tables with known truth: calibrated PASS/FAIL, honest INCONCLUSIVE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import scalinglaws as sl
from scalinglaws.fitting.synthetic import grid, simulate
from scalinglaws.trust.validate import holdout, leave_one_out
from conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
calibration = load_script("benchmarks/validate_calibration.py")
TRUTH = calibration.TRUTH


def test_small_calibration_passes_where_the_law_holds_and_fails_where_it_bends():
    holds = calibration.outcomes(10, bent=False, starts=64)
    bends = calibration.outcomes(10, bent=True, seed0=1000, starts=64)
    assert holds["PASS"] >= 9, holds
    assert bends["FAIL"] >= 9, bends


def test_badly_fitted_in_sample_runs_do_not_hide_one_held_out_run_far_off():
    runs = calibration.table(seed=7, bent=False)
    big = runs.index[runs["N"] >= 1e9]
    small = runs.index[runs["N"] < 1e9]
    runs.loc[small[[3, 11, 20]], "loss"] *= 1.10   # three in-sample runs the law cannot fit
    far = big[4]
    runs.loc[far, "loss"] *= 1.15                  # one held-out run far off (+15%)
    v = holdout(runs, "chinchilla", "N >= 1e9", starts=128)
    assert v.outcome == "FAIL"
    assert f"row {far}" in v.verdict and v.runs.loc[v.runs["row"] == far, "outside"].item()
    assert v.n_outside == 1  # the other held-out runs are inside their intervals


def test_a_six_run_table_is_inconclusive_not_fail():
    runs = sl.load_runs(simulate("chinchilla", TRUTH, grid(np.geomspace(1e8, 1e10, 3), [1e10, 1e11]), noise=0.002))
    v = holdout(runs, "chinchilla", "N >= 1e10", starts=64)
    assert v.outcome == "INCONCLUSIVE" and not v.passed
    assert "4 runs for 5 free parameters" in v.verdict


def test_a_collinear_ladder_is_inconclusive():
    N = np.geomspace(1e7, 1e10, 10)
    runs = sl.load_runs(simulate("chinchilla", TRUTH, {"N": N, "D": 20 * N}, noise=0.002))
    v = holdout(runs, "chinchilla", "N >= 3e9", starts=64)
    assert v.outcome == "INCONCLUSIVE" and "collinear" in v.verdict


def test_leave_one_out_gets_the_same_rule():
    runs = calibration.table(seed=3, bent=True)
    res = leave_one_out(runs, "chinchilla", "N", forward=True, starts=64)
    assert res.outcome == "FAIL" and res.verdict.startswith("FAIL")
    first = min((f for f in res.folds if f.value >= 1e9), key=lambda f: f.value)  # predicted from unbent sizes
    assert first.outcome == "FAIL" and first.n_outside == first.n_test
    d = res.to_dict()
    assert d["rule"].startswith("rule: FAIL when") and d["folds"][0]["outcome"] in ("PASS", "FAIL", "INCONCLUSIVE")


def test_a_validate_table_at_80_columns_piped_keeps_every_number_whole(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from scalinglaws.cli.common import fmt
    calibration.table(seed=5, bent=False).to_csv(tmp_path / "runs.csv")
    args = [sys.executable, "-m", "scalinglaws.cli.main", "validate", str(tmp_path / "runs.csv"), "--holdout",
            "N >= 1e9", "--starts", "64"]
    env = {**os.environ, "COLUMNS": "80"}
    text = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert text.returncode == 0, text.stderr
    assert "…" not in text.stdout and max(len(line) for line in text.stdout.splitlines()) <= 80
    d = json.loads(subprocess.run(args + ["--json"], capture_output=True, text=True, env=env, cwd=ROOT,
                                  timeout=300).stdout)
    for key in ("mean_abs_error", "max_abs_error", "bias"):
        assert fmt(d[key]) in text.stdout, key
    for run in d["runs"]:
        for key in ("observed", "predicted", "error", "low", "high", "z"):
            assert fmt(run[key]) in text.stdout, (key, fmt(run[key]))
    assert "rule: FAIL when" in text.stdout
