"""The shipped example runs, and its verdicts follow from its stated thresholds."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fit_trainer_runs", ROOT / "examples" / "fit_trainer_runs.py")
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


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
