"""diagnose: distinct optima, the Hessian at the optimum, identifiability warnings."""

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.trust.diagnose import diagnose, distinct_optima
from scalinglaws.fitting.problem import Problem as FitProblem
from scalinglaws.fitting.synthetic import grid, simulate

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
FIT = dict(starts=128, seed=0)


def codes(d):
    return {w["code"] for w in d.warnings}


@pytest.fixture(scope="module")
def good():
    return sl.load_runs(simulate("chinchilla", TRUTH, grid(np.geomspace(3e7, 3e9, 6), np.geomspace(1e9, 1e11, 5)),
                                 noise=0.002, seed=3))


def test_one_model_size_warns_about_identifiability():
    one = sl.load_runs(simulate("chinchilla", TRUTH, grid([1e8], np.geomspace(1e9, 1e11, 8)), noise=0.002, seed=1))
    d = diagnose(sl.fit(one, law="chinchilla", **FIT), one)
    assert {"one_model_size", "unidentified"} <= codes(d)
    unid = next(w for w in d.warnings if w["code"] == "unidentified")["message"]
    for name in ("E", "A", "alpha"):  # E + A / N^alpha is one number when N takes one value
        assert name in unid
    assert "beta" not in d.jacobian["unidentified"]


def test_a_well_posed_fit_has_no_identifiability_warning(good):
    fit = sl.fit(good, law="chinchilla", **FIT)
    d = diagnose(fit, good)
    assert not codes(d) & {"one_model_size", "two_model_sizes", "unidentified", "E_above_min_loss",
                           "not_positive_definite", "ill_conditioned", "on_bound"}
    assert d.hessian["positive_definite"] and np.isfinite(d.hessian["condition_number"])
    assert d.n_optima >= 1 and d.optima[0]["objective"] == pytest.approx(fit.objective, rel=1e-9)
    assert sum(o["n_starts"] for o in d.optima) <= d.n_converged <= 128


def test_E_above_the_smallest_loss_is_flagged(good):
    fit = sl.fit(good, law="chinchilla", **FIT)
    fit.params["E"] = float(good["loss"].min()) + 0.01  # as a fit stuck at too high an E would be
    assert "E_above_min_loss" in codes(diagnose(fit, good))


def test_hessian_matches_second_differences_of_the_objective(good, fd_hessian):
    """The exact Hessian (Chinchilla's curvature) and the one from the Jacobian (chen-qat: none)."""
    for law, runs in (("chinchilla", good),):
        fit = sl.fit(runs, law=law, loss="mse", **FIT)
        prob = FitProblem.from_fit(fit, runs)
        x0 = prob.x.copy()
        N, D, y = runs["N"].to_numpy(), runs["D"].to_numpy(), np.log(runs["loss"].to_numpy())

        def objective(x):  # by hand: e = log E, a = log A, b = log B
            L = np.exp(x[0]) + np.exp(x[1]) / N ** x[3] + np.exp(x[2]) / D ** x[4]
            return 0.5 * np.sum((np.log(L) - y) ** 2)
        H = fd_hessian(objective, x0)
        assert prob.hessian() == pytest.approx(H, rel=1e-4, abs=1e-6 * np.abs(H).max())


def test_hessian_without_law_curvature_uses_the_jacobian(fd_hessian, monkeypatch):
    chen = sl.get_law("chen-qat")
    monkeypatch.setattr(type(chen), "has_curvature", False)  # the fallback for a law without curvature
    assert not chen.has_curvature
    p = chen.presets["chen2025"].values
    rows = [dict(N=N, D=D, w_bits=4, a_bits=4, group_size=G) for N in (1e8, 3e8, 1e9) for D in (1e10, 3e10, 1e11)
            for G in (32, 128)] + [dict(N=N, D=D, w_bits=16, a_bits=16) for N in (1e8, 3e8, 1e9) for D in (1e10, 1e11)]
    runs = sl.load_runs(simulate("chen-qat", p, pd.DataFrame(rows), noise=0.002, seed=0))
    fit = sl.fit(runs, law="chen-qat", loss="mse", init=p, starts=16, seed=0)
    prob = FitProblem.from_fit(fit, runs)
    x0 = prob.x

    def objective(x):
        return 0.5 * np.sum(prob.residuals(x) ** 2)
    H = fd_hessian(objective, x0)
    assert prob.hessian() == pytest.approx(H, rel=1e-3, abs=1e-5 * np.abs(H).max())


def test_distinct_optima_groups_end_points():
    xs = np.array([[0.0, 1.0], [1e-5, 1.0], [0.5, 2.0], [0.0, 1.0 + 1e-6], [9.0, 9.0]])
    funs = np.array([1.0, 1.0, 2.0, 1.0, np.inf])
    conv = np.array([True, True, True, True, True])
    out = distinct_optima(xs, funs, conv)
    assert [o[2] for o in out] == [3, 1]
    assert [o[1] for o in out] == [1.0, 2.0]
    # starts that did not converge are not optima
    out = distinct_optima(xs, funs, np.array([True, False, False, True, True]))
    assert [o[2] for o in out] == [2]


def test_loaded_fit_is_refitted_for_its_start_points(good, tmp_path):
    fit = sl.fit(good, law="chinchilla", **FIT)
    fit.save(tmp_path / "f.json")
    d = diagnose(sl.load_fit(tmp_path / "f.json"), good, refit_kw=FIT)
    assert d.n_starts == 128
    assert d.optima[0]["objective"] == pytest.approx(fit.objective, rel=1e-9)


def test_diagnose_reapplies_the_fits_own_filter(tmp_path):
    truth = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
    path = tmp_path / "runs.csv"
    simulate("chinchilla", truth, grid(np.geomspace(5e7, 5e9, 6), np.geomspace(1e9, 3e11, 6)), seed=0).to_csv(path, index=False)
    res = sl.fit(str(path), law="chinchilla", where="N >= 2e8", starts=32)
    assert sl.diagnose(res, str(path)).n_runs == res.n_runs < 36
