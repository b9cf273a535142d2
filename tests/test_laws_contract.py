"""The contract every registered law keeps, checked over the whole registry.

A law gets these checks by being registered: its exact derivatives against finite
differences, its formula against the paper's written out by hand here, every planner
against a brute-force optimum of that hand formula, ``describe()``, the fit file round
trip, and recovery of known parameters from noise-free synthetic runs (its declared
``example``).  A law without a hand formula or a planner without a brute-force check
here fails, naming what to add.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq, minimize_scalar

import scalinglaws as sl
from scalinglaws.data.columns import Columns
from scalinglaws.data.errors import InputError
from scalinglaws.fitting.result import FitResult, load_fit
from scalinglaws.fitting.problem import Problem
from scalinglaws.fitting.synthetic import example_table, simulate
from scalinglaws.laws import REGISTRY
from scalinglaws.laws.base import Law

LAWS = sorted(REGISTRY)


def specialised(name):
    """The law on its example runs (data-dependent laws get their parameters there), truth and runs."""
    law = REGISTRY[name]
    truth, runs = law.example()
    law = law.specialize(pd.DataFrame(runs)) if law.specialize is not Law.specialize else law
    return law.from_param_names(list(truth)), truth, runs


# ----------------------------------------------------------------------- hand formulas
def _bits(r, c):
    v = r.get(c, 16.0)
    return 16.0 if v is None or (isinstance(v, float) and math.isnan(v)) else v


def h_chinchilla(p, r):
    return p["E"] + p["A"] / r["N"] ** p["alpha"] + p["B"] / r["D"] ** p["beta"]


def h_kumar_ptq(p, r):
    P = _bits(r, "ptq_bits")
    ptq = p["C_T"] * r["D"] ** p["gamma_D"] / r["N"] ** p["gamma_N"] * math.exp(-P / p["gamma_post"] + p.get("b", 0))
    return h_chinchilla(p, r) + (ptq if P < 16 else 0.0)


def h_kumar_precision(p, r):
    f = 1.0
    for x in ("w", "a", "kv"):
        f *= 1 - math.exp(-_bits(r, f"{x}_bits") / p[f"gamma_{x}"] + p[f"n_{x}"])
    return p["A"] * (r["N"] * f) ** -p["alpha"] + p["B"] * r["D"] ** -p["beta"] + p["E"]


def h_kumar_unified(p, r):
    P, bits = _bits(r, "ptq_bits"), {x: _bits(r, f"{x}_bits") for x in ("w", "a", "kv")}
    if P >= 16:
        return h_kumar_precision(p, r)
    n_eff = r["N"] * math.prod(1 - math.exp(-bits[x] / p[f"gamma_{x}"] + p[f"n_{x}"]) for x in bits)
    rob = math.prod(1 - math.exp(-p[f"C_{x}"] * (bits[x] - P)) for x in bits)
    return h_kumar_precision(p, r) + (p["C_T"] * math.exp(-P / p["gamma_post"]) * r["D"] ** p["gamma_D"]
                                      / n_eff ** p["gamma_N"] * rob)


def h_ouyang(p, r):
    return p["k"] * r["D"] ** p["beta"] / (r["N"] ** p["alpha"] * r["ptq_bits"] ** p["gamma"])


def h_kaplan(p, r):
    return ((p["N_c"] / r["N"]) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / r["D"]) ** p["alpha_D"]


def h_frantar(p, r):
    w, a, g = _bits(r, "w_bits"), _bits(r, "a_bits"), r.get("group_size", float("nan"))
    if w >= 16 and a >= 16:
        eff = 1.0
    else:
        key = f"W{w:g}A{a:g}" + ("" if g is None or math.isnan(g) else f"G{g:g}")
        eff = p[f"eff[{key}]"]
    return p["A"] * (r["N"] * eff) ** -p["alpha"] + p["B"] * r["D"] ** -p["beta"] + p["E"]


def h_chen(p, r):
    base = h_chinchilla(p, r)
    G = r.get("group_size", float("nan"))
    if (_bits(r, "w_bits") >= 16 and _bits(r, "a_bits") >= 16) or not G > 1:
        return base
    return base + p["k"] * r["D"] ** p["gamma_D"] * math.log2(G) ** p["gamma_G"] / r["N"] ** p["gamma_N"]


def h_capybara(p, r):
    return (p["n"] / r["N"] ** p["alpha"] + p["d"] / r["D"] ** p["beta"] + p["epsilon"]
            + r["D"] ** p["beta"] / r["N"] ** p["alpha"] * math.log2(r["group_size"])
            / (p["gamma"] * (r["exp_bits"] + 0.5) ** p["delta"] * (r["man_bits"] + 0.5) ** p["nu"]))


def _total(r):
    return r["D"] if "D" in r else r["D_fp"] + r["D_qat"]


def h_dremov_fraction(p, r):
    return math.exp(-p["a"] / math.log(_total(r) / (r["N"] * r["w_bits"] / 8)))


def h_dremov_qat(p, r):
    N, Dfp, Dq, b = r["N"], r["D_fp"], r["D_qat"], r["w_bits"]
    L = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / (Dfp + Dq) ** p["beta"]
    if b >= 16:
        return L
    Sq, Sf = Dq / (N * b / 8), Dfp / (N * b / 8)
    return (L + p["theta"] * 2 ** (-p["kappa"] * b) + p["phi"] * 2 ** (-p["chi"] * b) / (N ** p["psi"] * Sq ** p["omega"])
            + p["lambda"] * 2 ** (-p["mu"] * b) / (N ** p["nu"] * Sf ** p["xi"] * Sq ** p["rho"]))


HAND = {"chinchilla": h_chinchilla, "kumar-ptq": h_kumar_ptq, "kumar-precision": h_kumar_precision,
        "kumar-unified": h_kumar_unified,
        "ouyang-qid": h_ouyang, "kaplan": h_kaplan, "frantar-eff": h_frantar, "chen-qat": h_chen,
        "capybara": h_capybara, "dremov-fraction": h_dremov_fraction, "dremov-qat": h_dremov_qat}


def rows_of(runs):
    n = len(next(iter(runs.values())))
    return [{k: float(v[i]) for k, v in runs.items()} for i in range(n)]


# ------------------------------------------------------------------------------- checks
@pytest.mark.parametrize("name", LAWS)
def test_law_declares_a_hand_formula_and_an_example(name):
    assert name in HAND, f"add the paper's formula of law '{name}' to HAND in this file"
    truth, runs = REGISTRY[name].example()
    assert runs and truth


@pytest.mark.parametrize("name", LAWS)
def test_presets_and_example_match_the_hand_formula(name):
    law, truth, runs = specialised(name)
    sets = [truth] + [dict(p.values) for p in REGISTRY[name].presets.values()]
    for params in sets:
        pred = law.from_param_names(list(params)).predict(params, runs)
        hand = [HAND[name](params, r) for r in rows_of(runs)]
        np.testing.assert_allclose(pred, hand, rtol=1e-12)


def _near_truth(law, truth, seed=0):
    rng = np.random.default_rng(seed)
    x = law.to_internal(truth)
    lo, hi = law.bounds()
    return np.clip(x + 0.02 * rng.standard_normal((3, x.size)) * np.maximum(1, np.abs(x)), lo + 1e-6, hi - 1e-6)


@pytest.mark.parametrize("name", LAWS)
def test_exact_derivatives_match_finite_differences(name):
    law, truth, runs = specialised(name)
    X = law.design(Columns(runs))
    T = _near_truth(law, truth)
    f, J = law.log_predict_jac(T, X)
    np.testing.assert_allclose(f, law.log_predict(T, X), rtol=1e-12, atol=1e-12)
    # the fitter's values (generated code, powers merged into exponentials) are the formula's
    np.testing.assert_allclose(law.fit_log_predict(T, X), law.log_predict(T, X), rtol=1e-12, atol=1e-12)
    P = T.shape[1]
    w = np.random.default_rng(1).random((T.shape[0], f.shape[1]))
    H = law.curvature(T, X, w)
    for j in range(P):
        h = 1e-6 * max(1.0, abs(T[0, j]))
        e = np.zeros(P)
        e[j] = h
        dJ = (law.log_predict_jac(T + e, X)[1] - law.log_predict_jac(T - e, X)[1]) / (2 * h)
        df = (law.log_predict(T + e, X) - law.log_predict(T - e, X)) / (2 * h)
        np.testing.assert_allclose(J[:, :, j], df, rtol=1e-5, atol=1e-7 * max(1.0, np.abs(J).max()))
        fd_H = np.einsum("sn,snp->sp", w, dJ)
        np.testing.assert_allclose(H[:, :, j], fd_H, rtol=1e-4, atol=1e-6 * max(1.0, np.abs(H).max()))
    np.testing.assert_allclose(H, np.swapaxes(H, 1, 2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", LAWS)
def test_terms_of_one_column_on_its_distinct_values_give_the_per_run_numbers(name):
    """The generated code computes a term of the parameters and one design column with few distinct
    values (bits, group sizes, model sizes) once per value and gathers it to the runs: on the law's
    300-run example table it gives what the same code computing every run gives."""
    from scalinglaws.laws import derive

    _, table = example_table(name, rows=300, seed=2)
    prob = Problem.build(table, name)
    names = tuple(sorted(prob.X))
    source = derive.generate(prob.law, names)
    gathered = []

    def counted(x):
        out = derive.levels(x)
        gathered.append(out[1] is not None)
        return out

    levels, plain = {"np": np, "_levels": counted}, {"np": np, "_levels": lambda x: (x, None)}  # plain: every run
    exec(compile(source, "<levels>", "exec"), levels)
    exec(compile(source, "<per run>", "exec"), plain)
    x0 = prob.law.to_internal(prob.law.example()[0])
    T = x0[None] + 0.02 * np.random.default_rng(4).standard_normal((5, x0.size)) * np.maximum(1, np.abs(x0))
    w = np.random.default_rng(5).random((5, prob.n))
    with np.errstate(all="ignore"):
        got = [levels["value"](T, prob.X), *levels["value_jac"](T, prob.X), levels["curvature"](T, prob.X, w)]
        want = [plain["value"](T, prob.X), *plain["value_jac"](T, prob.X), plain["curvature"](T, prob.X, w)]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(b).max()))
    if "_levels(" in source and any(len(np.unique(v)) * 4 <= prob.n for v in prob.X.values() if np.ndim(v) == 1):
        assert any(gathered)  # the table has a column of few values: its terms were computed on them
    # (ouyang-qid has no such term: its powers of one column merge into one exponential of all of them)


def test_levels_of_a_column():
    from scalinglaws.laws import derive

    bits = np.array([4.0, 8.0, 4.0, 2.0] * 10)
    u, index = derive.levels(bits)
    assert u.tolist() == [2.0, 4.0, 8.0] and np.array_equal(u[index], bits)
    assert derive.levels(bits)[0] is u  # remembered for the same array
    many = np.arange(40.0)
    assert derive.levels(many)[1] is None and derive.levels(many)[0] is many  # 40 distinct values of 40
    assert derive.levels(bits[:8])[1] is None  # too few runs to pay
    changed = bits.copy()
    changed[0] = 16.0  # another array: its own levels, not the remembered ones
    assert derive.levels(changed)[0].tolist() == [2.0, 4.0, 8.0, 16.0]


def test_a_memo_by_identity_tells_arrays_apart_and_stays_bounded():
    from scalinglaws.laws import derive

    calls = []
    memo = derive.ByIdentity(lambda a, b: calls.append(1) or a + b, size=2)
    a, b = np.arange(3.0), np.ones(3)
    assert memo(a, b).tolist() == [1.0, 2.0, 3.0] and memo(a, b).tolist() == [1.0, 2.0, 3.0]
    assert len(calls) == 1  # the second call is remembered
    assert memo(b, a).tolist() == [1.0, 2.0, 3.0] and len(calls) == 2  # order matters: another key
    c = a.copy()
    c[0] = 10.0
    assert memo(c, b).tolist() == [11.0, 2.0, 3.0] and len(calls) == 3  # an equal-shaped new array is new
    assert len(memo._store) <= 2


@pytest.mark.parametrize("name", LAWS)
def test_fast_paths_agree_with_the_generic_derivatives(name):
    """A law's own evaluate/grad_hess (Chinchilla's hand-tuned one) gives what the formula's derivatives give,
    and so does the cache of an evaluation with the Jacobian (``jac=True``: values and Jacobian in one pass)."""
    law, truth, runs = specialised(name)
    X = law.design(Columns(runs))
    T = _near_truth(law, truth, seed=2)
    rng = np.random.default_rng(3)
    n = next(iter(X.values())).size
    psi, hw, cw = rng.normal(size=(3, n)), rng.random((3, n)), rng.normal(size=(3, n))
    f0 = law.evaluate(T, X)[0]
    for jac in (False, True):
        f, cache = law.evaluate(T, X, jac=jac)
        np.testing.assert_allclose(f, Law.log_predict(law, T, X), rtol=1e-12)
        # the same numbers bit for bit with the Jacobian or without (the fitter's decisions use them)
        np.testing.assert_array_equal(f, f0)
        for c in (None, cw):
            g, H = law.grad_hess(T, X, cache, psi, hw, c)
            g0, H0 = Law.grad_hess(law, T, X, None, psi, hw, c)
            np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12 * np.abs(g0).max())
            np.testing.assert_allclose(H, H0, rtol=1e-9, atol=1e-11 * np.abs(H0).max())


@pytest.mark.parametrize("name", LAWS)
def test_describe_is_plain_data(name):
    law = REGISTRY[name]
    d = json.loads(json.dumps(law.describe()))
    assert d["name"] == name and [p["name"] for p in d["parameters"]] == law.param_names
    assert {p["kind"] for p in d["planners"]} == {p.kind for p in law.planners}
    for p in law.params:
        assert p.bounds[0] < p.bounds[1] and all(p.bounds[0] <= g <= p.bounds[1] for g in p.grid)


@pytest.mark.parametrize("name", LAWS)
def test_fit_file_round_trip(name, tmp_path):
    law, truth, runs = specialised(name)
    res = FitResult(law=name, params=dict(truth), objective=0.0, n_runs=0)
    res.save(tmp_path / "fit.json")
    back = load_fit(tmp_path / "fit.json")
    assert back.params == res.params and back.law == name
    np.testing.assert_array_equal(back.predict(runs), law.predict(truth, runs))


@pytest.mark.parametrize("name", LAWS)
def test_recovers_known_parameters_from_noise_free_runs(name):
    law, truth, runs = specialised(name)
    table = sl.load_runs(simulate(REGISTRY[name], truth, runs, noise=0.0), required=())
    res = sl.fit(table, law=name, loss="mse")
    assert res.converged, res.status
    for k, v in truth.items():
        assert res.params[k] == pytest.approx(v, rel=2e-3, abs=1e-6), k



@pytest.mark.parametrize("name", LAWS)
def test_default_fit_of_noisy_runs_is_at_least_as_good_as_the_truth(name):
    """On the law's example design at 300 runs with 0.5% noise, the default fit (start grid, successive
    halving, confirmation) converges to an objective no higher than that of the true parameters: the
    truth is one point of the search space, so a fit above it has missed the best optimum."""
    truth, table = example_table(name, rows=300, seed=2)
    prob = Problem.build(table, name)
    at_truth = prob.objective(prob.law.to_internal(truth))
    res = sl.fit(table, law=name)
    assert res.converged, res.status
    assert res.objective <= at_truth * (1 + 1e-9), (res.objective, at_truth)


# ------------------------------------------------------------------------- planners
def _argmin_log(f, lo, hi):
    """Brute force: a fine log grid, then a bounded scalar refinement around its best point."""
    g = np.linspace(math.log(lo), math.log(hi), 4001)
    v = np.array([f(math.exp(x)) for x in g])
    k = int(np.nanargmin(v))
    r = minimize_scalar(lambda x: f(math.exp(x)), bounds=(g[max(k - 1, 0)], g[min(k + 1, g.size - 1)]),
                        method="bounded", options={"xatol": 1e-10})
    return math.exp(r.x), float(r.fun)


def check_compute(law, p, hand, flops=1e22, after=None, **bits):
    """N_opt minimises the loss at ``bits`` along 6ND = C; ``after``: bits applied after training
    (post-training quantization), which the allocation ignores and the reported loss includes."""
    ans = law.plan_compute(p, flops=flops, **bits, **(after or {}))
    N, L = _argmin_log(lambda n: hand(p, dict(N=n, D=flops / (6 * n), **bits)), 1e5, 1e14)
    bits = {**bits, **(after or {})}
    assert ans["N_opt"] == pytest.approx(N, rel=1e-4)
    assert ans["N_opt"] * ans["D_opt"] * 6 == pytest.approx(flops, rel=1e-9)
    assert ans.get("loss_ptq", ans["loss"]) == pytest.approx(
        hand(p, dict(N=ans["N_opt"], D=ans["D_opt"], **bits)), rel=1e-9)


def check_critical_data(law, p, hand, **opts):
    ans = law.plan_data(p, **opts)
    D, L = _argmin_log(lambda d: hand(p, dict(D=d, **opts)), 1e6, 1e20)
    assert ans["D_crit"] == pytest.approx(D, rel=1e-4)


def check_ptq_bits(law, p, hand, memory=1e9):
    """Appendix E.3: for each post-training width P, N = 8 memory / P and the best D; the best P wins."""
    ans = law.plan_bits(p, memory=memory)
    best = {P: _argmin_log(lambda d: hand(p, dict(N=8 * memory / P, D=d, ptq_bits=P)), 1e6, 1e24)[1]
            for P in range(1, 16)}
    assert ans["bits_opt"] == min(best, key=best.get)
    assert ans["loss"] == pytest.approx(best[ans["bits_opt"]], rel=1e-9)


def check_ouyang_data(law, p, hand):
    ans = law.plan_data(p, N=1e9, ptq_bits=4, threshold=0.1)
    D = math.exp(brentq(lambda x: hand(p, dict(N=1e9, D=math.exp(x), ptq_bits=4)) - 0.1, 0, 80))
    assert ans["D"] == pytest.approx(D, rel=1e-9)


def check_kumar_precision(law, p, hand, flops=1e23):
    ans = law.plan_precision(p, flops=flops)
    best = {}
    for P in range(4, 17):
        best[P] = _argmin_log(lambda n: hand(p, dict(N=n, D=16 * flops / (6 * n * P), w_bits=P, a_bits=P,
                                                      kv_bits=P)), 1e5, 1e15)[1]
    assert ans["bits_opt"] == min(best, key=best.get)
    assert ans["loss"] == pytest.approx(best[ans["bits_opt"]], rel=1e-8)


def check_fp_format(law, p, hand):
    ans = law.plan_fp_format(p, bits=8, N=1e9, D=1e11, group_size=128)
    losses = {E: hand(p, dict(N=1e9, D=1e11, exp_bits=E, man_bits=7 - E, group_size=128)) for E in range(1, 8)}
    assert ans["exp_bits"] == min(losses, key=losses.get)
    assert ans["loss"] == pytest.approx(min(losses.values()), rel=1e-12)


def check_capybara_precision(law, p, hand, flops=1e21):
    ans = law.plan_precision(p, flops=flops, group_size=128)
    best = {}
    for P in range(2, 17):
        for E in range(1, P):
            best[(P, E)] = _argmin_log(lambda n: hand(p, dict(N=n, D=16 * flops / (6 * P * n), exp_bits=E,
                                                              man_bits=P - 1 - E, group_size=128)), 1.0,
                                       16 * flops / (6 * P))[1]
    P, E = min(best, key=best.get)
    assert (ans["bits"], ans["exp_bits"]) == (P, E)
    assert ans["loss"] == pytest.approx(best[(P, E)], rel=1e-7)


def check_fraction(law, p, hand):
    ans = law.plan_qat_fraction(p, N=1e9, D=1e11, w_bits=4)
    assert ans["qat_fraction"] == pytest.approx(hand(p, dict(N=1e9, D=1e11, w_bits=4)), rel=1e-12)


def check_fraction_bits_refused(law, p, hand):
    with pytest.raises(InputError, match="cannot rank bit-widths"):
        law.plan_bits(p, memory=1e9, D=1e11)


def _best_fraction(p, hand, N, D, b):
    f, L = None, math.inf
    for g in np.linspace(1e-4, 1 - 1e-4, 20001):
        v = hand(p, dict(N=N, D_fp=(1 - g) * D, D_qat=g * D, w_bits=b))
        if v < L:
            f, L = g, v
    return f, L


def check_unified_fraction(law, p, hand):
    ans = law.plan_qat_fraction(p, N=3e8, D=3e10, w_bits=4)
    f, L = _best_fraction(p, hand, 3e8, 3e10, 4)
    assert ans["qat_fraction"] == pytest.approx(f, abs=2e-4)
    assert ans["loss"] <= L + 1e-12


def check_unified_bits(law, p, hand):
    memory, D = 1e8, 5e10
    ans = law.plan_bits(p, memory=memory, D=D)
    brute = {b: (hand(p, dict(N=memory * 8 / b, D_fp=D, D_qat=0.0, w_bits=b)) if b >= 16
                 else _best_fraction(p, hand, memory * 8 / b, D, b)[1]) for b in (1, 2, 3, 4, 5, 6, 8, 16)}
    assert ans["w_bits"] == min(brute, key=brute.get)


PLANNERS = {
    ("chinchilla", "compute"): lambda law, p, h: check_compute(law, p, h),
    ("kumar-ptq", "data"): lambda law, p, h: check_critical_data(law, p, h, N=1e9, ptq_bits=4),
    ("kumar-ptq", "compute"): lambda law, p, h: check_compute(law, p, h, after=dict(ptq_bits=4)),
    ("kumar-precision", "precision"): check_kumar_precision,
    ("kumar-precision", "compute"): lambda law, p, h: check_compute(law, p, h, w_bits=6, a_bits=8, kv_bits=8),
    ("kumar-ptq", "bits"): check_ptq_bits,
    ("kumar-unified", "data"): lambda law, p, h: check_critical_data(law, p, h, N=1e9, ptq_bits=4, w_bits=6),
    ("ouyang-qid", "data"): check_ouyang_data,
    ("frantar-eff", "compute"): lambda law, p, h: check_compute(law, p, h, w_bits=4, a_bits=4, group_size=32),
    ("chen-qat", "data"): lambda law, p, h: check_critical_data(
        law, p, lambda q, r: h(q, dict(r, w_bits=4, a_bits=4)), N=1e9, group_size=128),
    ("capybara", "fp-format"): check_fp_format,
    ("capybara", "data"): lambda law, p, h: check_critical_data(law, p, h, N=1e9, exp_bits=4, man_bits=3,
                                                                group_size=128),
    ("capybara", "precision"): check_capybara_precision,
    ("dremov-fraction", "qat-fraction"): check_fraction,
    ("dremov-fraction", "bits"): check_fraction_bits_refused,
    ("dremov-qat", "qat-fraction"): check_unified_fraction,
    ("dremov-qat", "bits"): check_unified_bits,
}


@pytest.mark.parametrize("name,kind", [(n, p.kind) for n in LAWS for p in REGISTRY[n].planners])
def test_every_planner_matches_a_brute_force_optimum(name, kind):
    assert (name, kind) in PLANNERS, f"add a brute-force check of planner '{kind}' of law '{name}' to PLANNERS"
    law, truth, _ = specialised(name)
    sets = [dict(p.values) for p in REGISTRY[name].presets.values()] or [truth]
    for params in sets:
        PLANNERS[(name, kind)](law.from_param_names(list(params)), params, HAND[name])
