"""kumar-precision: low-precision training shrinks N_eff (Kumar et al. 2024, Eq. 3-4, Appendix K)."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

import scalinglaws as sl
from scalinglaws.data.errors import InputError

PRESET = {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
          "gamma_w": 2.6745, "gamma_a": 2.2102, "gamma_kv": 0.9578,
          "n_w": 0.3037, "n_a": 1.4072, "n_kv": 2.4185}


def factor(p, w, a, kv):
    return ((1 - math.exp(-w / p["gamma_w"] + p["n_w"])) * (1 - math.exp(-a / p["gamma_a"] + p["n_a"]))
            * (1 - math.exp(-kv / p["gamma_kv"] + p["n_kv"])))


def by_hand(p, N, D, w, a, kv):
    return p["A"] * (N * factor(p, w, a, kv)) ** -p["alpha"] + p["B"] * D ** -p["beta"] + p["E"]


COMBOS = ([(16, 16, 16)] + [(w, 16, 16) for w in (3, 4, 5, 6, 8)] + [(16, a, 16) for a in (4, 5, 6, 8)]
          + [(16, 16, k) for k in (3, 4, 5, 6, 8)] + [(b, b, b) for b in (4, 6, 8)])


def synthetic(p, Ns, noise, seed, tpps=(10, 27, 73, 200)):
    rows = [dict(N=N, D=N * t, w_bits=c[0], a_bits=c[1], kv_bits=c[2]) for N in Ns for t in tpps for c in COMBOS]
    df = sl.load_runs(pd.DataFrame(rows), required=())
    exact = np.array([by_hand(p, r.N, r.D, r.w_bits, r.a_bits, r.kv_bits) for r in df.itertuples()])
    df["loss"] = exact * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(df)))
    return df, exact


def test_registered_with_preset():
    law = sl.get_law("kumar-precision")
    assert law.param_names == ["E", "A", "B", "alpha", "beta", "gamma_w", "gamma_a", "gamma_kv",
                               "n_w", "n_a", "n_kv"]
    assert dict(law.presets["kumar2024"].values) == PRESET
    assert "Appendix K" in law.presets["kumar2024"].source and "Table 2" in law.presets["kumar2024"].source
    assert law.describe()["start_grid_size"] <= 1000
    # one name, one owner: the PTQ constants of the same table are 'kumar2024-ptq'
    assert sl.resolve_fit("kumar2024").law == "kumar-precision"
    assert sl.resolve_fit("kumar2024-ptq").law == "kumar-ptq"


def test_floating_point_weight_preset_is_appendix_n():
    """Appendix N: "gamma_w = 2.8111 and an exponent bias of b = 0.1240", with Table 2's A, B, E, alpha = beta."""
    law = sl.get_law("kumar-precision")
    fp = law.presets["kumar2024-fp"]
    assert dict(fp.values) == {**PRESET, "gamma_w": 2.8111, "n_w": 0.1240}
    assert "Appendix N" in fp.source and "16-bit activations" in fp.note
    runs = pd.DataFrame({"N": [1e8, 1e9], "D": [2e9, 3e10], "w_bits": [4, 6]})
    want = [by_hand(fp.values, 1e8, 2e9, 4, 16, 16), by_hand(fp.values, 1e9, 3e10, 6, 16, 16)]
    np.testing.assert_allclose(law.predict(fp.values, runs), want, rtol=1e-12)
    # at 16-bit activations and KV cache the integer-type factors it keeps are ~1, as in Eq. 3
    assert factor(PRESET, 16, 16, 16) / factor(PRESET, 16, 100, 100) == pytest.approx(0.99707, abs=1e-5)


def test_predict_matches_formula_empty_cells_are_16():
    law = sl.get_law("kumar-precision")
    df = sl.load_runs(pd.DataFrame({"N": [1e8, 1e8, 5e8], "D": [2e9, 2e9, 1e10], "w_bits": ["", "4", "6"],
                                    "a_bits": ["", "8", "5"], "kv_bits": ["", "", "4"]}), required=())
    want = [by_hand(PRESET, 1e8, 2e9, 16, 16, 16), by_hand(PRESET, 1e8, 2e9, 4, 8, 16),
            by_hand(PRESET, 5e8, 1e10, 6, 5, 4)]
    np.testing.assert_allclose(law.predict(PRESET, df), want, rtol=1e-12)


def test_recovers_parameters_and_predicts_larger_models():
    true = dict(PRESET)
    df, _ = synthetic(true, np.geomspace(3e7, 3e8, 4), noise=0.001, seed=0)
    res = sl.fit(df, law="kumar-precision")  # the default start grid
    assert res.converged
    p = res.params
    for k in ("E", "alpha", "beta"):
        assert p[k] == pytest.approx(true[k], rel=0.03), k
    for k in ("gamma_w", "gamma_a", "gamma_kv"):
        assert p[k] == pytest.approx(true[k], rel=0.08), k
    for k in ("n_w", "n_a", "n_kv"):
        assert p[k] == pytest.approx(true[k], abs=0.15), k
    held, exact = synthetic(true, [1e9, 3e9], noise=0.0, seed=1)
    assert np.abs(res.predict(held) / exact - 1).max() < 0.01


def test_plain_form_by_fixing_offsets():
    true = {**PRESET, "n_w": 0.0, "n_a": 0.0, "n_kv": 0.0}
    df, _ = synthetic(true, np.geomspace(3e7, 3e8, 4), noise=0.001, seed=2)
    res = sl.fit(df, law="kumar-precision", fix={"n_w": 0, "n_a": 0, "n_kv": 0}, starts=64)
    assert res.params["n_w"] == 0 and res.fixed == {"n_w": 0.0, "n_a": 0.0, "n_kv": 0.0}
    for k in ("gamma_w", "gamma_a", "gamma_kv", "alpha", "beta"):
        assert res.params[k] == pytest.approx(true[k], rel=0.05), k


def _best_loss_brute_force(p, C, P):
    """min over N of the law at precision P for C = (6/16) N D P, by a 1-d search in log N."""
    def loss(lnN):
        N = math.exp(lnN)
        return by_hand(p, N, C * 16 / (6 * N * P), P, P, P)
    r = minimize_scalar(loss, bounds=(math.log(1e3), math.log(1e16)), method="bounded",
                        options={"xatol": 1e-10})
    return r.fun, math.exp(r.x)


@pytest.mark.parametrize("flops", [1e19, 1e21, 1e23, 1e25])
def test_kumar2024_optimal_precision_is_7_to_8_bits_at_every_budget(flops):
    out = sl.get_law("kumar-precision").plan_precision(PRESET, flops=flops)
    assert out["bits_opt"] in (7, 8)
    assert 7.0 <= out["bits_opt_continuous"] <= 8.0
    # independent check: brute-force N for each integer precision in the law's domain (P >= 4)
    brute = {P: _best_loss_brute_force(PRESET, flops, P) for P in range(4, 17)}
    best = min(brute, key=lambda P: brute[P][0])
    assert best == out["bits_opt"]
    assert out["loss"] == pytest.approx(brute[best][0], rel=1e-8)
    assert out["N_opt"] == pytest.approx(brute[best][1], rel=1e-3)
    assert out["D_opt"] == pytest.approx(flops * 16 / (6 * out["N_opt"] * best), rel=1e-12)


def test_optimal_precision_does_not_move_with_compute():
    law = sl.get_law("kumar-precision")
    outs = [law.plan_precision(PRESET, flops=C) for C in np.logspace(19, 25, 7)]
    assert len({o["bits_opt"] for o in outs}) == 1
    conts = [o["bits_opt_continuous"] for o in outs]
    assert max(conts) - min(conts) < 1e-3
    # with alpha = beta the optimum minimises P / f(P), whatever the budget
    grid = np.linspace(3.2, 16, 200001)
    ratio = [P / factor(PRESET, P, P, P) for P in grid]
    assert conts[0] == pytest.approx(grid[int(np.argmin(ratio))], abs=1e-3)
    # precisions with N_eff <= 0 (a_bits <= gamma_a n_a = 3.11) are left out of the table
    assert min(r["bits"] for r in outs[0]["table"]) == 4


# ------------------------------------------------ Sec. 4.3.3 / Appendix E.2.2: model size fixed
def _fixed_n_brute_force(p, C, N, top=64):
    """The law at P (w, a, kv alike) with D = 16 C / (6 N P), for each integer P in the domain."""
    return {P: by_hand(p, N, 16 * C / (6 * N * P), P, P, P) for P in range(4, top + 1)}


@pytest.mark.parametrize("flops, N", [(1e21, 1e9), (1e23, 8e9), (1e25, 7e10), (3.8e25, 4.05e11)])
def test_fixed_size_precision_is_the_brute_force_optimum(flops, N):
    out = sl.get_law("kumar-precision").plan_precision(PRESET, flops=flops, N=N)
    brute = _fixed_n_brute_force(PRESET, flops, N)
    best = min(brute, key=brute.get)
    assert out["bits_opt"] == best and out["loss"] == pytest.approx(brute[best], rel=1e-12)
    assert out["D_opt"] == pytest.approx(16 * flops / (6 * N * best), rel=1e-12)
    r = minimize_scalar(lambda P: by_hand(PRESET, N, 16 * flops / (6 * N * P), P, P, P), bounds=(3.2, 64),
                        method="bounded", options={"xatol": 1e-10})
    assert out["bits_opt_continuous"] == pytest.approx(r.x, abs=1e-5)


def test_fixed_size_precision_grows_with_compute_while_the_joint_optimum_does_not():
    """Finding 3: jointly optimal P is independent of C; with N fixed, P*(C) grows (like log C)."""
    law = sl.get_law("kumar-precision")
    budgets = np.logspace(21, 29, 5)
    fixed = [law.plan_precision(PRESET, flops=C, N=8e9)["bits_opt_continuous"] for C in budgets]
    joint = [law.plan_precision(PRESET, flops=C)["bits_opt_continuous"] for C in budgets]
    assert np.all(np.diff(fixed) > 0) and fixed[-1] - fixed[0] > 15
    assert max(joint) - min(joint) < 1e-3
    # log-like: each factor 100 of compute adds about the same number of bits once P is large
    steps = np.diff(fixed)
    assert steps[-1] == pytest.approx(steps[-2], rel=0.05)


def test_fixed_size_growth_matches_the_first_order_condition():
    """Eq. 20-23 with one precision factor f = 1 - eps, eps = e^(n - P/gamma), left (the others saturated):
    the first-order condition (alpha/gamma) A N^-alpha eps f^(-alpha-1) = beta B (6N/16)^beta C^-beta P^(beta-1)
    gives dP*/d ln C = beta / (1/gamma + (alpha + 1) eps / (gamma f) - (1 - beta)/P), which tends to Eq. 23's
    beta gamma as C grows."""
    p = {**PRESET, "gamma_a": 0.3, "gamma_kv": 0.3, "n_a": 0.0, "n_kv": 0.0}  # only the weights matter at P > 10
    law = sl.get_law("kumar-precision")
    for C in (1e25, 1e30):
        out = law.plan_precision(p, flops=C, N=1e9)
        P, g, b, a = out["bits_opt_continuous"], p["gamma_w"], p["beta"], p["alpha"]
        assert 12 < P < 60
        eps = math.exp(p["n_w"] - P / g)
        want = b / (1 / g + (a + 1) * eps / (g * (1 - eps)) - (1 - b) / P)
        assert out["bits_per_e_fold"] == pytest.approx(want, rel=1e-4)
        assert out["asymptotic_bits_per_e_fold"] == pytest.approx(b * g, rel=1e-12)
    # with Table 2's three factors the slowest-decaying one (largest gamma, the weights') sets the asymptote
    assert law.plan_precision(PRESET, flops=1e23, N=1e9)["asymptotic_bits_per_e_fold"] == pytest.approx(
        0.4965 * 2.6745, rel=1e-12)


def test_fixed_size_precision_reports_the_top_of_its_range():
    out = sl.get_law("kumar-precision").plan_precision(PRESET, flops=1e45, N=1e9)
    assert out["bits_opt"] == 64 and "64-bit edge" in out["summary"]
    assert math.isnan(out["bits_per_e_fold"])


def test_domain_is_every_factor_positive_not_just_their_product():
    """At P = 2 the a and kv factors are both negative, so N_eff > 0 while the law is outside its domain."""
    law = sl.get_law("kumar-precision")
    runs = {"N": [1e9] * 4, "D": [1e11] * 4, "w_bits": [2.0, 16, 16, 6], "a_bits": [2.0, 3, 3.2, 6],
            "kv_bits": [2.0, 16, 16, 6]}
    assert factor(PRESET, 2, 2, 2) > 0
    assert list(law.in_domain(PRESET, runs)) == [False, False, True, True]  # a_bits > gamma_a n_a = 3.11


def test_compute_planner_at_a_precision():
    law = sl.get_law("kumar-precision")
    out = law.plan_compute(PRESET, flops=1e22, w_bits=4)
    f = factor(PRESET, 4, 16, 16)
    assert out["N_eff_over_N"] == pytest.approx(f, rel=1e-12)
    assert out["loss"] == pytest.approx(by_hand(PRESET, out["N_opt"], out["D_opt"], 4, 16, 16), rel=1e-12)
    assert out["N_opt"] * out["D_opt"] * 6 == pytest.approx(1e22)


def test_absent_precision_column_means_16_bits_and_missing_column_is_named():
    df, _ = synthetic(PRESET, [1e8], noise=0.0, seed=0)
    law = sl.get_law("kumar-precision")
    for col in ("kv_bits", "a_bits", "w_bits"):
        np.testing.assert_array_equal(law.predict(PRESET, df.drop(columns=col)),
                                      law.predict(PRESET, df.assign(**{col: 16.0})))
    with pytest.raises(InputError, match="'D'"):
        sl.fit(df.drop(columns="D"), law="kumar-precision")


@pytest.mark.parametrize("method, opts, msg", [
    ("plan_precision", dict(flops=0.0), "flops must be a finite number > 0"),
    ("plan_precision", dict(), "flops is required"),
    ("plan_precision", dict(flops=1e21, N=0), "N must be a finite number > 0"),
    ("plan_compute", dict(flops=1e21, w_bits=0), "w_bits must be a number of bits >= 1"),
    ("plan_compute", dict(flops=1e21, a_bits=3), "outside the law's domain"),
])
def test_planner_outside_domain_says_why(method, opts, msg):
    with pytest.raises(InputError, match=msg):
        getattr(sl.get_law("kumar-precision"), method)(PRESET, **opts)


def test_cli_precision_planner(capsys):
    from cli.optimal_cmds import run_planner
    ans = run_planner("precision", "kumar2024", {"flops": "1e23"}, as_json=True)
    assert ans["bits_opt"] == 7 and ans["best"]["bits"] == 7
    assert '"bits_opt": 7' in capsys.readouterr().out
    ans = run_planner("precision", "kumar2024", {"flops": "1e23", "N": "8B"}, as_json=True)
    brute = _fixed_n_brute_force(PRESET, 1e23, 8e9)
    assert ans["bits_opt"] == min(brute, key=brute.get) and ans["inputs"]["N"] == 8e9
