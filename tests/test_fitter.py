"""The law-agnostic fitter and the Chinchilla fit, against independent references."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import huber

import scalinglaws as sl
from scalinglaws.fitting.problem import LawModel
from scalinglaws.laws.base import Law
from scalinglaws.fitting.fitter import RobustLoss, minimize_multistart
from scalinglaws.fitting.synthetic import example_table, grid, simulate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

EPOCH = SHARED / "chinchilla_epoch.csv"
REPLICATION = {"E": 1.8172, "A": 477.8, "B": 2143, "alpha": 0.3473, "beta": 0.3672}
REPLICATION_OBJECTIVE = 0.00101827402
TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


@pytest.mark.skipif(not EPOCH.exists(), reason="needs ../shared/data/chinchilla_epoch.csv")
def test_reaches_the_replication_optimum_on_chinchilla_epoch(cli, tmp_path):
    out = tmp_path / "fit.json"
    code, stdout, err = cli("fit", EPOCH, "--law", "chinchilla", "--exclude-top", "5", "--out", out)
    assert code == 0, err
    fit = json.loads(out.read_text())
    assert fit["n_runs"] == 240
    for k, v in REPLICATION.items():
        assert fit["params"][k] == pytest.approx(v, rel=0.01), k
    assert fit["objective"] == pytest.approx(REPLICATION_OBJECTIVE, rel=1e-6)
    assert fit["status"]["converged"] and fit["status"]["n_best"] >= 1
    assert fit["status"]["n_starts"] == 4500
    assert "starts reached the best optimum" in stdout


@pytest.mark.skipif(not EPOCH.exists(), reason="needs ../shared/data/chinchilla_epoch.csv")
def test_objective_is_the_summed_huber_loss_of_log_residuals():
    """The reported objective equals scipy's Huber loss summed over runs, evaluated by hand."""
    runs = sl.load_runs(EPOCH, exclude_top=5)
    res = sl.fit(runs, law="chinchilla", starts=64, seed=0)
    p = res.params
    pred = p["E"] + p["A"] / runs["N"] ** p["alpha"] + p["B"] / runs["D"] ** p["beta"]
    r = np.log(pred) - np.log(runs["loss"])
    assert res.objective == pytest.approx(huber(1e-3, r).sum(), rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_parameters_from_noisy_synthetic_runs(seed):
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 7), np.geomspace(1e9, 5e11, 8)),
                    noise=0.005, seed=seed)
    res = sl.fit(runs, law="chinchilla")
    assert res.converged
    assert res.params["E"] == pytest.approx(TRUTH["E"], rel=0.02)
    assert res.params["alpha"] == pytest.approx(TRUTH["alpha"], rel=0.05)
    assert res.params["beta"] == pytest.approx(TRUTH["beta"], rel=0.05)


def test_noise_free_runs_give_the_exact_parameters_and_zero_objective():
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 6), np.geomspace(1e9, 5e11, 6)), noise=0.0)
    res = sl.fit(runs, law="chinchilla")
    for k, v in TRUTH.items():
        assert res.params[k] == pytest.approx(v, rel=1e-5), k
    assert res.objective < 1e-18


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_multistart_matches_scipy_from_the_best_point(loss):
    """No scipy run started from our optimum (or from anywhere on a small grid) finds a lower objective."""
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=3)
    law = sl.laws.get_law("chinchilla")
    X, y = law.design(runs), np.log(runs["loss"].to_numpy())
    model = LawModel(law, X)
    rl = RobustLoss(loss)
    lo, hi = law.bounds()
    res = minimize_multistart(model, y, law.start_grid(), lo, hi, rl)

    def f(x):
        return float(rl.total(model.value(x[None]) - y)[0])

    assert res.fun == pytest.approx(f(res.x), rel=1e-12)
    for x0 in [res.x] + list(law.start_grid()[::450]):
        ref = minimize(f, x0, method="L-BFGS-B", bounds=list(zip(lo, hi)))
        assert res.fun <= ref.fun * (1 + 1e-7) + 1e-15


def test_exact_newton_gradient_and_hessian_match_finite_differences(fd_hessian):
    """Chinchilla's matrix-product gradient and Hessian against central differences of the objective."""
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 4), np.geomspace(1e9, 5e11, 4)), seed=1)
    law = sl.laws.get_law("chinchilla")
    X, y = law.design(runs), np.log(runs["loss"].to_numpy())
    model = LawModel(law, X)
    rl = RobustLoss("mse")  # smooth, so its Hessian is the exact second derivative
    theta = np.array([[0.6, 6.0, 7.5, 0.33, 0.37], [0.2, 3.0, 9.0, 0.5, 0.3]])
    f, cache = model.evaluate(theta)
    r = f - y
    g, H = model.grad_hess(theta, cache, rl.psi(r), rl.dpsi(r), rl.psi(r))

    def obj(t):
        return rl.total(model.value(t[None]) - y)[0]

    h = 1e-6
    for s in range(2):
        fd_g = np.array([(obj(theta[s] + e) - obj(theta[s] - e)) / (2 * h) for e in np.eye(5) * h])
        fd_h = fd_hessian(obj, theta[s])
        # central differences are exact to O(h^2): about 1e-5 of the largest entry here
        assert np.abs(g[s] - fd_g).max() <= 1e-5 * np.abs(fd_g).max()
        assert np.abs(H[s] - fd_h).max() <= 2e-5 * np.abs(fd_h).max()
        assert np.allclose(H[s], H[s].T)


def test_chinchilla_features_follow_the_design_they_are_asked_for():
    """The fast path keeps each design's six features; asked for another design (a subset, single
    precision) and back, it uses the right ones: the numbers of the generic derivatives of that design."""
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 4), np.geomspace(1e9, 5e11, 4)), seed=1)
    law = sl.laws.get_law("chinchilla")
    X = LawModel(law, law.design(runs)).X
    sub = LawModel(law, law.design(runs)).take(np.arange(0, 16, 2)).X
    theta = np.array([[0.6, 6.0, 7.5, 0.33, 0.37]])

    def gh(lw, X):
        f, cache = lw.evaluate(theta, X)
        one = np.ones_like(f)
        return lw.grad_hess(theta, X, cache, one, one, one)

    for first, second in ((X, sub), (sub, X)):
        gh(law, first)
        g, H = gh(law, second)
        one = np.ones((1, next(iter(second.values())).size))
        g0, H0 = Law.grad_hess(law, theta, second, None, one, one, one)  # from the formula, no features
        np.testing.assert_allclose(g, g0, rtol=1e-10)
        np.testing.assert_allclose(H, H0, rtol=1e-9, atol=1e-12 * np.abs(H0).max())


def test_linear_space_and_mse_options_fit_too():
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=4)
    for kw in [dict(space="linear"), dict(loss="mse"), dict(delta=1e-2)]:
        res = sl.fit(runs, law="chinchilla", **kw)
        assert res.converged, kw
        assert res.params["E"] == pytest.approx(TRUTH["E"], rel=0.03), kw


def test_fix_holds_a_parameter_and_where_subsets():
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=5)
    res = sl.fit(runs, law="chinchilla", fix={"alpha": 0.3})
    assert res.params["alpha"] == 0.3
    assert res.fixed == {"alpha": 0.3}
    sub = sl.fit(runs, law="chinchilla", where="N >= 1e8", starts=64)
    assert sub.n_runs == int((runs["N"] >= 1e8).sum())


def test_per_start_weights_solve_independent_problems():
    """Rows with their own run weights: each equals a separate fit with those weights."""
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=6)
    law = sl.laws.get_law("chinchilla")
    X, y = law.design(runs), np.log(runs["loss"].to_numpy())
    model = LawModel(law, X)
    lo, hi = law.bounds()
    rng = np.random.default_rng(0)
    W = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=3).astype(float)
    x0 = law.to_internal(TRUTH)
    batch = minimize_multistart(model, y, np.repeat(x0[None], 3, 0), lo, hi, weights=W)
    for k in range(3):
        one = minimize_multistart(model, y, law.start_grid(), lo, hi, weights=W[k])
        assert batch.funs[k] == pytest.approx(one.fun, rel=1e-6)
        assert batch.xs[k] == pytest.approx(one.x, rel=1e-4, abs=1e-6)


class _SqrtModel:
    """f = sqrt(t) x: the gradient is infinite at t = 0."""

    def __init__(self, x):
        self.x = x

    def value(self, theta):
        return np.sqrt(theta[:, :1]) * self.x

    def evaluate(self, theta, jac=False):
        return self.value(theta), None

    def grad_hess(self, theta, cache, psi, hw, cw):
        with np.errstate(divide="ignore"):
            J = (0.5 / np.sqrt(theta[:, :1]))[:, :, None] * self.x[None, :, None]  # (S, n, 1)
        g = np.einsum("snp,sn->sp", J, psi)
        H = np.einsum("snp,sn,snq->spq", J, hw, J)
        return g, H


def test_a_start_without_usable_derivatives_is_not_reported_converged():
    x = np.linspace(1, 2, 8)
    y = 2.0 * x  # optimum t = 4
    res = minimize_multistart(_SqrtModel(x), y, np.array([[0.0], [1.0]]), np.array([0.0]), np.array([10.0]),
                              RobustLoss("mse"))
    assert res.x[0] == pytest.approx(4.0, rel=1e-8)
    assert not res.converged[0] and res.converged[1]


def test_no_halving_still_converges_in_double_precision():
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=7)
    law = sl.laws.get_law("chinchilla")
    X, y = law.design(runs), np.log(runs["loss"].to_numpy())
    lo, hi = law.bounds()
    starts = law.start_grid()[::15]
    full = minimize_multistart(LawModel(law, X), y, starts, lo, hi, keep=1.0)
    halved = minimize_multistart(LawModel(law, X), y, starts, lo, hi)
    assert full.best_converged and full.n_stopped == 0
    assert full.fun == pytest.approx(halved.fun, rel=1e-10)


def test_large_tables_explore_on_a_subset_and_reach_the_same_optimum():
    """Ranking the start grid on a seeded subset of runs, then converging the survivors on every run,
    gives the optimum of the plain path (every round on every run) to 1e-9."""
    rng = np.random.default_rng(11)
    n = 3000
    N = np.exp(rng.uniform(np.log(3e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
    runs = sl.load_runs(simulate("chinchilla", TRUTH, {"N": N, "D": D}, noise=0.01, seed=3))
    fast = sl.fit(runs, law="chinchilla", explore_rows=400)
    plain = sl.fit(runs, law="chinchilla", explore_rows=None)
    assert fast.converged and plain.converged
    assert fast.objective == pytest.approx(plain.objective, rel=1e-9)
    for k, v in plain.params.items():
        assert fast.params[k] == pytest.approx(v, rel=1e-7), k
    stopped = ~fast.multistart.converged
    assert np.isnan(fast.multistart.funs[stopped]).all()  # not evaluated on every run: said so, not guessed


@pytest.mark.parametrize("seed", [2, 4])
def test_confirmation_finds_the_optimum_where_halving_ranks_starts_badly(seed):
    """kumar-precision's objective after a few steps ranks its starts badly: plain successive halving
    (``confirm=0``) ends on an optimum worse than the true parameters themselves (so certainly not the
    best).  With the default confirmation the fit reaches the every-start optimum, which is at most
    the objective of the truth."""
    from scalinglaws.fitting.problem import Problem
    truth, table = example_table("kumar-precision", rows=300, seed=seed)
    prob = Problem.build(table, "kumar-precision")
    at_truth = prob.objective(prob.law.to_internal(truth))
    plain = sl.fit(table, law="kumar-precision", confirm=0)
    # the failure the confirmation exists for, on seed 2 (whether seed 4's plain halving reaches the
    # optimum has changed with the rounding of the generated code and the fitter's steps)
    if seed == 2:
        assert plain.objective > 1.2 * at_truth
    fit = sl.fit(table, law="kumar-precision")
    every = sl.fit(table, law="kumar-precision", converge=0)
    assert fit.objective <= at_truth
    assert fit.objective == pytest.approx(every.objective, rel=1e-9)
    assert fit.status["n_best"] >= 8 or fit.status["n_stopped"] < plain.status["n_stopped"]


def test_confirmation_costs_nothing_when_the_survivors_agree():
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=7)
    a, b = sl.fit(runs, law="chinchilla"), sl.fit(runs, law="chinchilla", confirm=0)
    assert a.status["n_best"] >= 8
    assert a.objective == b.objective and a.status["n_stopped"] == b.status["n_stopped"]
    with pytest.raises(sl.OptionError, match="confirm"):
        sl.fit(runs, law="chinchilla", confirm=-1)


@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_scaling_every_run_weight_scales_the_objective_and_nothing_else(scale):
    """Weights c * 1 multiply the objective by c and leave the optimum, and the search that finds it,
    where they were: every round compares weighted objectives with weighted objectives."""
    _, table = example_table("kumar-precision", rows=300, seed=2)
    plain = sl.fit(table, law="kumar-precision")
    weighted = sl.fit(table, law="kumar-precision", weights=np.full(300, scale))
    assert weighted.objective == pytest.approx(scale * plain.objective, rel=1e-9)
    for k, v in plain.params.items():
        assert weighted.params[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_large_table_survivors_that_stop_short_keep_their_objective_on_every_run():
    """A survivor that runs out of steps was evaluated on every run: its objective is reported (the
    value on every run at its point), while starts the halving stopped on the subset get none."""
    from scalinglaws.fitting.problem import Problem
    rng = np.random.default_rng(5)
    n = 3000
    N = np.exp(rng.uniform(np.log(3e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
    runs = sl.load_runs(simulate("chinchilla", TRUTH, {"N": N, "D": D}, noise=0.01, seed=3))
    res = sl.fit(runs, law="chinchilla", explore_rows=400, max_iter=10, confirm=0)
    ms = res.multistart
    short = ~ms.converged & np.isfinite(ms.funs)
    assert short.any() and np.isnan(ms.funs).sum() == res.status["n_stopped"]
    prob = Problem.build(runs, "chinchilla")
    for i in np.flatnonzero(short)[:3]:
        assert ms.funs[i] == pytest.approx(prob.objective(ms.xs[i]), rel=1e-9)


def test_merging_keeps_the_first_start_of_each_group_as_np_unique_would():
    """Starts that meet (the same to ``tol``) follow their first member; checked against np.unique(axis=0)."""
    from scalinglaws.fitting.fitter import _merge
    rng = np.random.default_rng(5)
    base = rng.normal(size=(40, 5))
    X = base[rng.integers(0, 40, size=600)] + rng.normal(scale=1e-9, size=(600, 5))  # 40 groups, jittered
    X[::7] = rng.normal(size=(len(X[::7]), 5))                                       # and loners
    rep = np.arange(len(X))
    rep[::5] = 0                      # some starts merged before: not live, left as they are
    rep[0] = 0
    live = np.flatnonzero(rep == np.arange(rep.size))
    expect = rep.copy()
    _, first, inv = np.unique(np.round(X[live] / 1e-6), axis=0, return_index=True, return_inverse=True)
    expect[live] = live[first[inv.reshape(-1)]]
    _merge(X, rep, 1e-6)
    assert np.array_equal(rep, expect)
    assert len(np.unique(rep[live])) < len(live)   # the groups did merge


def test_a_large_last_round_gives_the_same_numbers_in_any_number_of_worker_processes():
    """Every start to convergence runs in fixed chunks of at most FINISH_CHUNK starts, in worker
    processes when asked: the end point, objective and step count of every start are the same bit for
    bit, whatever ``n_jobs``, and the fit reaches the optimum of the plain fit."""
    import scalinglaws.fitting.fitter as fitter
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=7)
    starts = sl.laws.get_law("chinchilla").start_grid()[::4]           # 1,125 starts: 3 chunks
    assert len(starts) > 2 * fitter.FINISH_CHUNK
    one = sl.fit(runs, law="chinchilla", starts=starts, converge=0, n_jobs=1)
    many = sl.fit(runs, law="chinchilla", starts=starts, converge=0, n_jobs=3)
    a, b = one.multistart, many.multistart
    assert np.array_equal(a.xs, b.xs) and np.array_equal(a.funs, b.funs) and np.array_equal(a.n_iter, b.n_iter)
    assert one.status["n_evals"] == many.status["n_evals"] and a.n_stopped == 0
    assert one.objective == pytest.approx(sl.fit(runs, law="chinchilla").objective, rel=1e-10)
    with pytest.raises(sl.OptionError, match="n_jobs must be a whole number >= 1, got 0"):
        sl.fit(runs, law="chinchilla", n_jobs=0)


def test_a_law_may_ask_for_more_survivors_and_an_explicit_converge_wins():
    from scalinglaws.fitting.api import survivors
    from scalinglaws.fitting.options import FitOptions
    unified, chinchilla = sl.laws.get_law("kumar-unified"), sl.laws.get_law("chinchilla")
    assert survivors(FitOptions(), unified) == unified.converge == 128
    assert survivors(FitOptions(), chinchilla) == 32
    assert survivors(FitOptions(converge=16), unified) == 16 and survivors(FitOptions(converge=0), unified) == 0
    with pytest.raises(sl.OptionError, match="converge"):
        FitOptions(converge=-1)


def _fit_every_start(starts):
    runs = simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 1e10, 5), np.geomspace(1e9, 5e11, 5)), seed=7)
    return sl.fit(runs, law="chinchilla", starts=starts, converge=0).objective


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fit_inside_a_pool_worker_runs_its_chunks_in_that_process():
    """A daemonic process (a multiprocessing.Pool worker) may not have children: a fit there whose last
    round has several chunks runs them itself, with the same result."""
    import multiprocessing
    starts = sl.laws.get_law("chinchilla").start_grid()[::8]          # 563 starts: 2 chunks
    with multiprocessing.get_context("fork").Pool(1) as pool:
        inside = pool.apply(_fit_every_start, (starts,))
    assert inside == _fit_every_start(starts)


def test_none_gives_converge_and_n_jobs_back_to_their_defaults():
    from scalinglaws.fitting.options import FitOptions
    opts = FitOptions.of(FitOptions(converge=16, n_jobs=1), converge=None, n_jobs=None)
    assert opts.converge is None and opts.n_jobs is None


def test_backtracking_a_step_that_overshot_ends_where_more_damping_ends_in_fewer_steps():
    """Bootstrap refits of kumar-unified (18 parameters, a long curved valley) from the truth: retrying a
    rejected step at a fraction of its length along its own direction reaches the same optimum of
    every resample as raising the damping alone (objective to 1e-9, each checked against scipy's
    L-BFGS-B from that end point: no lower point nearby), in fewer steps."""
    from scalinglaws.fitting import fitter
    from scalinglaws.fitting.problem import Problem
    from scalinglaws.trust.bootstrap import resample_weights

    truth, table = example_table("kumar-unified", rows=300, seed=2)
    prob = Problem.build(table, "kumar-unified")
    W = resample_weights(prob.table, 12, None, 0)
    x0 = np.repeat(prob.law.to_internal(truth)[None], len(W), 0)
    ends = {}
    for backtrack in (False, True):
        X = x0.copy()
        F = fitter._objective(prob.model, prob.y, prob.loss, X, W, np.arange(len(W)))
        conv, it, _ = fitter._lm(prob.model, prob.y, prob.loss, X, F, prob.lower, prob.upper, prob.free, W,
                                 max_iter=400, ftol=1e-13, gtol=1e-14, switch=1e-4, counter=[0],
                                 exact=np.ones(len(W), bool), backtrack=backtrack)
        assert conv.all()
        ends[backtrack] = (X, F, it)
    np.testing.assert_allclose(ends[True][1], ends[False][1], rtol=1e-9)
    assert ends[True][2].sum() < ends[False][2].sum()
    for k in (0, 5):  # an independent optimiser finds nothing lower next to the end point
        def f(x, k=k):
            return float(fitter._objective(prob.model, prob.y, prob.loss, x[None], W[k])[0])
        polished = minimize(f, ends[True][0][k], method="L-BFGS-B", bounds=list(zip(prob.lower, prob.upper)))
        assert polished.fun >= ends[True][1][k] * (1 - 1e-9)
