"""Amplitudes solved per start (scalinglaws.fitting.amplitudes): declared right, solved right, same optimum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

import scalinglaws as sl
from scalinglaws.fitting import amplitudes
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.problem import Problem
from scalinglaws.fitting.synthetic import example_table, grid, simulate
from scalinglaws.laws import REGISTRY, get_law

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}


@pytest.mark.parametrize("name", [n for n in REGISTRY if get_law(n).amplitudes])
def test_a_law_s_declared_amplitudes_are_log_parameters_its_formula_is_affine_in_jointly(name):
    import sympy as sp
    from scalinglaws.laws.derive import Vars, _Sym
    prob = Problem.build(example_table(name, rows=60, seed=0)[1], name)
    law = prob.law                                          # (specialised to the table where the law is)
    logs = {p.name for p in law.params if p.log}
    assert set(law.amplitudes) <= logs, set(law.amplitudes) - logs
    P = {p.name: sp.Symbol(p.name.replace("lambda", "lam"), positive=True) for p in law.params}
    x = Vars({n: sp.Symbol(n, positive=True) for n in prob.X})   # the design variables the formula reads
    L = sp.sympify(law.formula(Vars(P), x, _Sym(sp)))
    for a in law.amplitudes:
        for b in law.amplitudes:
            assert sp.simplify(sp.diff(L, P[a], P[b])) == 0, (a, b)


def _chinchilla_problem(space, loss):
    runs = sl.load_runs(simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 5e9, 6), np.geomspace(1e9, 3e11, 6)),
                                 noise=0.01, seed=4))
    return runs, Problem.build(runs, "chinchilla", FitOptions(space=space, loss=loss))


def test_least_squares_amplitudes_in_linear_space_are_the_linear_regression_by_hand():
    runs, prob = _chinchilla_problem("linear", "mse")
    law = prob.law
    starts = np.array([[0.0, 5.0, 5.0, 0.3, 0.4], [1.0, 20.0, 0.0, 0.3, 0.4], [0.5, 10.0, 10.0, 0.5, 0.2]])
    out, n = amplitudes.solve(law, prob.X, prob.y, prob.space, prob.loss, starts, prob.lower, prob.upper,
                              prob.free)
    assert n == 3
    N, D, loss = (np.asarray(runs[c], float) for c in ("N", "D", "loss"))
    for row in out:
        alpha, beta = row[3:]
        design = np.column_stack([np.ones_like(N), N ** -alpha, D ** -beta])
        want = np.linalg.lstsq(design, loss, rcond=None)[0]
        assert want.min() > 0                             # inside the bounds: the regression is the answer
        np.testing.assert_allclose(np.exp(row[:3]), want, rtol=1e-7)
    # the two starts that differ only in their amplitudes became one start; the exponents are kept
    assert np.array_equal(out[0], out[1]) and np.array_equal(out[:, 3:], starts[:, 3:])


def test_huber_amplitudes_in_log_space_are_scipy_s_robust_least_squares(monkeypatch):
    monkeypatch.setattr(amplitudes, "MAX_STEPS", 200)       # IRLS converges linearly here: enough steps to 1e-9
    runs, prob = _chinchilla_problem("log", "huber")
    delta = prob.loss.delta
    N, D, y = np.asarray(runs["N"], float), np.asarray(runs["D"], float), prob.y
    start = np.array([[0.0, 5.0, 5.0, 0.3, 0.4]])
    out = amplitudes.solve(prob.law, prob.X, y, "log", prob.loss, start, prob.lower, prob.upper, prob.free)[0][0]

    def resid(amps):  # scipy's huber with f_scale = delta has our minimiser (rho scaled by 2 / delta^2)
        E, A, B = amps
        return y - np.log(E + A * N ** -0.3 + B * D ** -0.4)
    ref = least_squares(resid, np.exp(out[:3]) * 1.3, loss="huber", f_scale=delta, bounds=(1e-9, np.inf),
                        xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=10000).x

    def objective(amps):
        r = np.abs(resid(amps))
        return np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)).sum()
    assert objective(np.exp(out[:3])) <= objective(ref) * (1 + 1e-9)
    np.testing.assert_allclose(np.exp(out[:3]), ref, rtol=1e-4)


def test_a_held_amplitude_stays_held_and_the_others_are_solved_around_it():
    runs, prob = _chinchilla_problem("linear", "mse")
    fixed = sl.fit(runs, law="chinchilla", space="linear", loss="mse", fix={"E": 1.9})
    assert fixed.params["E"] == 1.9 and fixed.status["solved"] == ["A", "B"]
    held = Problem.build(runs, "chinchilla", FitOptions(space="linear", loss="mse", fix={"E": 1.9}))
    assert amplitudes.indices(held.law, held.free) == [1, 2]


def _without_amplitudes(monkeypatch, name):
    monkeypatch.setattr(type(get_law(name)), "amplitudes", ())


@pytest.mark.parametrize("name", [n for n in REGISTRY if get_law(n).amplitudes])
def test_every_law_reaches_the_whole_grid_s_optimum_with_its_amplitudes_solved(name, monkeypatch):
    _, table = example_table(name, rows=300, seed=1)
    solved = sl.fit(table, law=name)
    assert solved.converged and solved.status["solved"] and solved.status["n_distinct"] < solved.status["n_starts"]
    _without_amplitudes(monkeypatch, name)
    searched = sl.fit(table, law=name)
    assert searched.status.get("solved") == []
    assert solved.objective <= searched.objective * (1 + 1e-9)
    assert solved.objective == pytest.approx(searched.objective, rel=1e-9)


def test_a_large_table_reaches_the_same_optimum_with_the_amplitudes_solved(monkeypatch):
    points = grid(np.geomspace(2e7, 2e10, 40), np.geomspace(5e8, 5e11, 50))        # 2,000 runs
    runs = sl.load_runs(simulate("chinchilla", TRUTH, points, noise=0.005, seed=11))
    solved = sl.fit(runs, law="chinchilla")
    assert solved.status["n_best"] == solved.status["n_starts"] == 4500 and solved.status["n_distinct"] == 25
    # solved on the fitter's exploring subset of the runs (a large table), in blocks of a few starts: the same
    subset = sl.fit(runs, law="chinchilla", explore_rows=500)
    monkeypatch.setattr(amplitudes, "BLOCK", 5000)          # 5000 // (2000 x 4): one distinct start a block
    blocks = sl.fit(runs, law="chinchilla")
    assert blocks.multistart.xs.tobytes() == solved.multistart.xs.tobytes()
    assert subset.objective == pytest.approx(solved.objective, rel=1e-9) and subset.status["n_distinct"] == 25
    _without_amplitudes(monkeypatch, "chinchilla")
    searched = sl.fit(runs, law="chinchilla", converge=0)
    assert solved.objective == pytest.approx(searched.objective, rel=1e-9)
    for k, v in searched.params.items():
        assert solved.params[k] == pytest.approx(v, rel=1e-6), k


def test_given_starts_are_used_as_given():
    runs, _ = _chinchilla_problem("log", "huber")
    law = get_law("chinchilla")
    starts = law.start_grid()[::450]
    res = sl.fit(runs, law="chinchilla", starts=starts)
    assert res.status["solved"] == [] and res.status["n_distinct"] == len(starts)
    # random starts differ in every parameter: solving their amplitudes would merge none, and cost a solve each
    assert sl.fit(runs, law="chinchilla", starts=40, seed=3).status["solved"] == []


def test_in_linear_space_too_the_grid_is_one_start_per_exponent_pair(monkeypatch):
    # at alpha = 0 (or beta = 0) A's term is E's over again: the solve may put one of the two on its bound,
    # which then does not count as a term switched off
    runs, _ = _chinchilla_problem("linear", "huber")
    res = sl.fit(runs, law="chinchilla", space="linear")
    assert res.status["n_distinct"] == 25 and res.status["n_best"] >= 100 * 25
    _without_amplitudes(monkeypatch, "chinchilla")
    searched = sl.fit(runs, law="chinchilla", space="linear", converge=0)
    assert res.objective == pytest.approx(searched.objective, rel=1e-9)
