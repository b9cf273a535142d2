"""kumar-ptq: Chinchilla plus post-training-quantization degradation (Kumar et al. 2024, Eq. 2, Appendix K)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

import scalinglaws as sl
from scalinglaws.data.errors import InputError

# Appendix K, Table 2 (the PTQ rows and the shared Chinchilla constants), typed in from the paper
PRESET = {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
          "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907, "b": 1.1277}
PLAIN = {k: v for k, v in PRESET.items() if k != "b"}  # the main text's Eq. 2 (no offset)


def by_hand(p, N, D, P):
    """Eq. 2 with Appendix K's offset, written out, independent of the package."""
    base = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if P >= 16:
        return base
    return base + p["C_T"] * D ** p["gamma_D"] / N ** p["gamma_N"] * math.exp(-P / p["gamma_post"] + p.get("b", 0.0))


def d_crit_by_hand(p, N, P):
    """Eq. 13 (Appendix E.1), with exp(P/gamma_post) carrying the offset: exp(P/gamma_post - b)."""
    return (p["beta"] * p["B"] * N ** p["gamma_N"] * math.exp(P / p["gamma_post"] - p.get("b", 0.0))
            / (p["gamma_D"] * p["C_T"])) ** (1 / (p["gamma_D"] + p["beta"]))


def grid(Ns, tpps=(5, 12, 30, 70, 150), bits=(16, 2, 3, 4, 5, 6, 8)):
    rows = [dict(N=N, D=N * t, ptq_bits=P) for N in Ns for t in tpps for P in bits]
    return sl.load_runs(pd.DataFrame(rows), required=())


def synthetic(p, Ns, noise, seed):
    df = grid(Ns)
    rng = np.random.default_rng(seed)
    exact = np.array([by_hand(p, r.N, r.D, r.ptq_bits) for r in df.itertuples()])
    df["loss"] = exact * np.exp(rng.normal(0.0, noise, len(df)))
    return df, exact


def test_registered_with_the_table_2_preset_including_b():
    law = sl.get_law("kumar-ptq")
    # fits leave b out (e^b C_T is one constant); the preset carries Table 2's pair
    assert law.param_names == ["E", "A", "B", "alpha", "beta", "C_T", "gamma_D", "gamma_N", "gamma_post"]
    assert dict(law.presets["kumar2024-ptq"].values) == PRESET
    assert "Table 2" in law.presets["kumar2024-ptq"].source
    assert law.describe()["start_grid_size"] <= 1000
    assert sl.resolve_fit("kumar2024-ptq").law_obj.param_names[-1] == "b"


def test_predict_matches_formula_and_16_bits_means_no_ptq():
    law = sl.get_law("kumar-ptq")
    df = sl.load_runs(pd.DataFrame({"N": [1e8, 1e8, 1e8, 1e8, 3e9], "D": [2e9, 2e9, 2e9, 2e9, 1e11],
                                    "ptq_bits": ["", "16", "24", "4", "3"]}), required=())
    for p in (PRESET, PLAIN):
        got = law.predict(p, df)
        want = [by_hand(p, r.N, r.D, r.ptq_bits) for r in df.itertuples()]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        # empty cell, 16 and above: exactly Chinchilla (the mask, not a tiny exp(-16/gamma_post) term)
        chin = p["E"] + p["A"] / 1e8 ** 0.4965 + p["B"] / 2e9 ** 0.4965
        assert got[0] == pytest.approx(chin, rel=1e-14) and got[1] == got[0] and got[2] == got[0]
        assert got[3] > got[0]


def test_offset_b_multiplies_the_degradation_by_e_to_the_b_and_d_crit_by_its_power():
    """The consequences of Table 2's b = 1.1277 as Appendix K's offset: delta_PTQ x e^b = 3.088,
    D_crit x e^(-b/(gamma_D + beta)) = 0.3250 (Eq. 13), whatever N, D and the bits."""
    law = sl.get_law("kumar-ptq")
    N, D, P = 1e9, 1e11, 4
    base = by_hand(PLAIN, N, D, 16)
    ratio = (law.at(PRESET, N=N, D=D, ptq_bits=P) - base) / (law.at(PLAIN, N=N, D=D, ptq_bits=P) - base)
    assert ratio == pytest.approx(math.exp(1.1277), rel=1e-10) and ratio == pytest.approx(3.0885, abs=1e-4)
    shrink = law.plan_data(PRESET, N=N, ptq_bits=P)["D_crit"] / law.plan_data(PLAIN, N=N, ptq_bits=P)["D_crit"]
    assert shrink == pytest.approx(math.exp(-1.1277 / (0.5068 + 0.4965)), rel=1e-10)
    assert shrink == pytest.approx(0.3250, abs=1e-4)


def test_recovers_parameters_and_predicts_larger_models():
    true = dict(PLAIN)
    df, _ = synthetic(true, np.geomspace(3e7, 3e8, 5), noise=0.001, seed=0)
    res = sl.fit(df, law="kumar-ptq")  # the default start grid
    assert res.converged
    p = res.params
    for k in ("E", "alpha", "beta", "gamma_D", "gamma_N", "gamma_post"):
        assert p[k] == pytest.approx(true[k], rel=0.04), k
    for k in ("A", "B", "C_T"):
        assert p[k] == pytest.approx(true[k], rel=0.3), k
    held, exact = synthetic(true, [1e9, 3e9], noise=0.0, seed=1)
    err = np.abs(res.predict(held) / exact - 1)
    assert err.max() < 0.01


def test_runs_made_with_b_are_fitted_by_c_t_e_to_the_b():
    """A fit cannot separate b from C_T; on runs simulated with Table 2's pair it finds C_T e^b."""
    df, _ = synthetic(PRESET, np.geomspace(3e7, 3e8, 5), noise=0.0, seed=0)
    res = sl.fit(df, law="kumar-ptq", loss="mse")
    assert "b" not in res.params
    assert res.params["C_T"] == pytest.approx(0.0598 * math.exp(1.1277), rel=1e-4)


def test_a_fit_file_that_names_b_keeps_it(tmp_path):
    path = tmp_path / "fit.json"
    sl.FitResult(law="kumar-ptq", params=dict(PRESET), objective=0.0, n_runs=0).save(path)
    back = sl.load_fit(path)
    assert back.params == PRESET and json.loads(path.read_text())["params"]["b"] == 1.1277
    assert back.predict({"N": 1e9, "D": 1e11, "ptq_bits": 4})[0] == pytest.approx(by_hand(PRESET, 1e9, 1e11, 4),
                                                                                 rel=1e-12)


@pytest.mark.parametrize("p", [PRESET, PLAIN])
def test_critical_data_size_by_hand(p):
    law = sl.get_law("kumar-ptq")
    N, P = 1e9, 4
    out = law.plan_data(p, N=N, ptq_bits=P)
    d = d_crit_by_hand(p, N, P)
    assert out["D_crit"] == pytest.approx(d, rel=1e-10)
    # it is where the quantized model's loss is lowest in D: more data makes it worse
    f = lambda D: by_hand(p, N, D, P)  # noqa: E731
    assert f(d) < f(0.9 * d) and f(d) < f(1.1 * d)
    assert (f(d * 1.001) - f(d / 1.001)) / f(d) == pytest.approx(0.0, abs=1e-9)
    assert out["loss_at_D_crit"] == pytest.approx(f(d), rel=1e-12)
    # Eq. 12 at D_crit: gamma_D delta_PTQ = beta B D^-beta
    assert out["delta_ptq_at_D_crit"] == pytest.approx(p["beta"] / p["gamma_D"] * p["B"] * d ** -p["beta"], rel=1e-9)
    # more bits -> later critical size
    assert law.plan_data(p, N=N, ptq_bits=6)["D_crit"] > d


def test_compute_planner_reuses_chinchilla():
    law = sl.get_law("kumar-ptq")
    out = law.plan_compute(PRESET, flops=1e22, ptq_bits=4)
    chin = sl.get_law("chinchilla").plan_compute({k: PRESET[k] for k in ("E", "A", "B", "alpha", "beta")},
                                                 flops=1e22)
    assert out["N_opt"] == pytest.approx(chin["N_opt"]) and out["loss"] == pytest.approx(chin["loss"])
    assert out["loss_ptq"] == pytest.approx(by_hand(PRESET, out["N_opt"], out["D_opt"], 4), rel=1e-12)


# -------------------------------------------------------- Appendix E.3: inference-cost model
def _brute_bits(p, memory, D=None, top=15):
    """For each integer P: N = 8 memory / P and (without D) the loss-minimising D by a 1-d search."""
    out = {}
    for P in range(1, top + 1):
        N = 8 * memory / P
        if D is None:
            r = minimize_scalar(lambda x: by_hand(p, N, math.exp(x), P), bounds=(math.log(1e6), math.log(1e25)),
                                method="bounded", options={"xatol": 1e-12})
            out[P] = (r.fun, math.exp(r.x))
        else:
            out[P] = (by_hand(p, N, D, P), D)
    return out


@pytest.mark.parametrize("memory", [1e8, 1e9, 1e11])
def test_inference_cost_planner_is_the_brute_force_optimum(memory):
    law = sl.get_law("kumar-ptq")
    out = law.plan_bits(PRESET, memory=memory)
    brute = _brute_bits(PRESET, memory)
    best = min(brute, key=lambda P: brute[P][0])
    assert out["bits_opt"] == best
    assert out["loss"] == pytest.approx(brute[best][0], rel=1e-10)
    assert out["D_opt"] == pytest.approx(brute[best][1], rel=1e-4)
    assert out["D_opt"] == pytest.approx(d_crit_by_hand(PRESET, out["N_opt"], best), rel=1e-12)  # D* = D_crit
    assert out["N_opt"] * out["bits_opt"] == pytest.approx(8 * memory, rel=1e-12)
    assert abs(out["bits_opt_continuous"] - best) < 1


def test_inference_cost_planner_with_fixed_tokens_lets_16_bits_compete():
    law = sl.get_law("kumar-ptq")
    for memory, D in ((1e9, 1e12), (1e9, 1e17), (1e9, 1e30)):
        out = law.plan_bits(PRESET, memory=memory, D=D)
        brute = _brute_bits(PRESET, memory, D=D, top=16)
        best = min(brute, key=lambda P: brute[P][0])
        assert out["bits_opt"] == best and out["loss"] == pytest.approx(brute[best][0], rel=1e-12)
    # so much data that any post-training quantization hurts more than a smaller 16-bit model
    assert out["bits_opt"] == 16 and "no post-training quantization" in out["summary"]


def test_inference_cost_optimal_bits_grow_like_log_of_the_budget():
    """Appendix E.3: P* ~ log C.  At D = D_crit the loss is E + A (M/P)^-alpha + K (M/P)^-kappa e^(-lambda P)
    with kappa = beta gamma_N / (gamma_D + beta), lambda = beta / (gamma_post (gamma_D + beta)); the first-order
    condition gives lambda P = (alpha - kappa) ln M + (1 + kappa - alpha) ln P + ln(lambda - kappa/P) + const,
    so dP*/dln M = (alpha - kappa) / (lambda - (1 + kappa - alpha)/P - kappa/(P^2 (lambda - kappa/P)))."""
    law, p = sl.get_law("kumar-ptq"), PRESET
    kappa = p["beta"] * p["gamma_N"] / (p["gamma_D"] + p["beta"])
    lam = p["beta"] / (p["gamma_post"] * (p["gamma_D"] + p["beta"]))
    a = p["alpha"]
    h = 0.05
    for memory in (1e11, 1e13, 1e15):
        P = law.plan_bits(p, memory=memory)["bits_opt_continuous"]
        up, down = (law.plan_bits(p, memory=memory * math.exp(s))["bits_opt_continuous"] for s in (h, -h))
        slope = (up - down) / (2 * h)
        want = (a - kappa) / (lam - (1 + kappa - a) / P - kappa / (P * P * (lam - kappa / P)))
        assert slope == pytest.approx(want, rel=2e-3)
    assert (a - kappa) / lam == pytest.approx(0.3895, abs=1e-4)  # the asymptote, bits per e-fold of budget


def test_absent_precision_column_means_16_bits_and_missing_column_is_named():
    df, _ = synthetic(PLAIN, [1e8], noise=0.0, seed=0)
    law = sl.get_law("kumar-ptq")
    np.testing.assert_array_equal(law.predict(PLAIN, df.drop(columns="ptq_bits")),
                                  law.predict(PLAIN, df.assign(ptq_bits=16.0)))
    with pytest.raises(InputError, match="'D'"):
        sl.fit(pd.DataFrame({"N": [1e8], "ptq_bits": [4], "loss": [3.0]}), law="kumar-ptq")


@pytest.mark.parametrize("method, opts, msg", [
    ("plan_data", dict(N=1e9, ptq_bits=0.5), "ptq_bits must be a number of bits >= 1"),
    ("plan_data", dict(N=0.0, ptq_bits=4), "N must be a finite number > 0"),
    ("plan_data", dict(N=-5.0, ptq_bits=4), "N must be a finite number > 0"),
    ("plan_data", dict(N=1e9, ptq_bits=16), "no post-training quantization"),
    ("plan_data", dict(N=1e9), "ptq_bits is required"),
    ("plan_bits", dict(), "memory is required"),
    ("plan_bits", dict(memory=0), "memory must be a finite number > 0"),
    ("plan_bits", dict(memory="lots"), "is not a size in bytes"),
    ("plan_bits", dict(memory=1e9, D=-1), "D must be a finite number > 0"),
])
def test_planner_outside_domain_says_why(method, opts, msg):
    with pytest.raises(InputError, match=msg):
        getattr(sl.get_law("kumar-ptq"), method)(PRESET, **opts)


def test_inference_planner_without_a_critical_data_size_says_why():
    with pytest.raises(InputError, match="no critical data size"):
        sl.get_law("kumar-ptq").plan_bits({**PRESET, "gamma_D": 0.0}, memory=1e9)


def test_cli_planners_with_preset(capsys):
    from cli.optimal_cmds import run_planner
    ans = run_planner("data", "kumar2024-ptq", {"N": "1B", "ptq_bits": "4"}, as_json=True)
    assert ans["law"] == "kumar-ptq" and ans["D_crit"] == pytest.approx(d_crit_by_hand(PRESET, 1e9, 4), rel=1e-10)
    assert '"D_crit"' in capsys.readouterr().out
    ans = run_planner("bits", "kumar2024-ptq", {"memory": "1GB"}, as_json=True)
    assert ans["bits_opt"] == min(_brute_bits(PRESET, 1e9).items(), key=lambda kv: kv[1][0])[0]
