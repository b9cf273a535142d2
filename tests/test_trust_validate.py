"""validate: held-out and leave-one-out extrapolation checks, with a verdict against the residual scale."""

import math

import numpy as np
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError
from scalinglaws.fitting.synthetic import grid, simulate
from scalinglaws.trust.validate import holdout, leave_one_out, residual_scale

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
SIZES = np.geomspace(3e7, 3e9, 7)
TOKENS = np.geomspace(1e9, 1e11, 5)
FIT = dict(starts=256, seed=0)


def by_hand(p, N, D):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


@pytest.fixture(scope="module")
def runs():
    return sl.load_runs(simulate("chinchilla", TRUTH, grid(SIZES, TOKENS), noise=0.002, seed=1))


@pytest.fixture(scope="module")
def kinked(runs):
    t = runs.copy()
    t.loc[t["N"] >= 1e9, "loss"] *= 1.05  # the two largest sizes do not follow the law
    return t


def test_holdout_matches_an_independent_refit_and_passes(runs):
    v = holdout(runs, "chinchilla", "N>=1e9", **FIT)
    train, test = runs[runs["N"] < 1e9], runs[runs["N"] >= 1e9]
    ref = sl.fit(train, law="chinchilla", **FIT).params
    err = by_hand(ref, test["N"].to_numpy(), test["D"].to_numpy()) - test["loss"].to_numpy()
    assert v.n_train == len(train) == 25 and v.n_test == len(test) == 10
    assert v.errors["mean_abs_error"] == pytest.approx(np.mean(np.abs(err)), rel=1e-6)
    assert v.errors["max_abs_error"] == pytest.approx(np.max(np.abs(err)), rel=1e-6)
    assert v.errors["bias"] == pytest.approx(np.mean(err), rel=1e-6, abs=1e-12)
    assert list(v.runs["error"]) == pytest.approx(list(err), rel=1e-6, abs=1e-12)
    # near-zero error: well under 1% of the loss, within the verdict's threshold
    assert v.errors["mean_abs_error"] < 0.004 * test["loss"].mean()
    assert v.passed and v.verdict.startswith("PASS")


def test_planted_kink_is_reported_and_called_a_failure(kinked):
    v = holdout(kinked, "chinchilla", "N>=1e9", **FIT)
    big = kinked[kinked["N"] >= 1e9]
    # the law predicts ~ the un-kinked loss: the error is about -5% of the loss
    expected_bias = -np.mean(big["loss"] * (1 - 1 / 1.05))
    assert v.errors["bias"] == pytest.approx(expected_bias, rel=0.3)
    assert v.errors["mean_abs_error"] > 10 * v.residual_scale
    assert not v.passed
    assert v.verdict.startswith("FAIL") and "too low" in v.verdict


def test_residual_scale_definition():
    obs = np.array([2.0, 2.1, 2.2, 2.3, 2.4, 2.5])
    pred = obs + np.array([0.01, -0.02, 0.0, 0.03, -0.01, 0.0])
    # sqrt(pi/2) * sum|r| / (n - p)
    assert residual_scale(obs, pred, 2) == pytest.approx(math.sqrt(math.pi / 2) * 0.07 / 4, rel=1e-12)
    # floored at 1e-4 of the median observed value
    assert residual_scale(obs, obs, 2) == pytest.approx(1e-4 * np.median(obs))


def test_forward_leave_one_out_fits_on_smaller_sizes_only(runs, kinked):
    res = leave_one_out(runs, "chinchilla", "N", forward=True, **FIT)
    # the first three sizes have fewer than 3 smaller sizes to fit on
    assert [s["value"] for s in res.skipped] == pytest.approx(list(SIZES[:3]), rel=1e-6)
    assert [f.value for f in res.folds] == pytest.approx(list(SIZES[3:]), rel=1e-6)
    for k, f in enumerate(res.folds, start=3):
        assert f.n_train == 5 * k and f.n_test == 5
    assert res.passed
    bad = leave_one_out(kinked, "chinchilla", "N", forward=True, **FIT)
    failed = {round(f.value, -6) for f in bad.folds if not f.passed}
    assert round(SIZES[5], -6) in failed  # the first kinked size, predicted from the clean ones
    assert not bad.passed and bad.verdict.startswith("FAIL")


def test_leave_one_token_count_out_in_both_directions(runs):
    res = leave_one_out(runs, "chinchilla", "D", **FIT)
    assert len(res.folds) == len(TOKENS) and not res.skipped
    assert all(f.n_train == 28 and f.n_test == 7 for f in res.folds)


@pytest.mark.parametrize("expr,message", [
    ("N > 1e20", "selects no runs"),
    ("N > 0", "leaves none to fit on"),
    ("N >>> 3", "holdout 'N >>> 3'"),
    ("", "needs a condition"),
])
def test_holdout_errors(runs, expr, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        holdout(runs, "chinchilla", expr, **FIT)


def test_leave_one_out_errors(runs):
    with pytest.raises(InputError, match="must be N or D"):
        leave_one_out(runs, "chinchilla", "w_bits", **FIT)
    with pytest.raises(InputError, match="level must be between 0 and 1"):
        leave_one_out(runs, "chinchilla", "N", level=1.5, **FIT)
