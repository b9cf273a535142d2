"""dremov-fraction and dremov-qat: Dremov et al. 2025, Compute-Optimal Quantization-Aware Training."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError
from scalinglaws.laws import get_law

FRACTION = get_law("dremov-fraction")
UNIFIED = get_law("dremov-qat")
PAPER = FRACTION.presets["dremov2025"].values

# a unified-law parameter set whose optimal QAT fraction grows with S_total, as in the paper
TRUE = dict(E=1.8, A=400.0, B=2000.0, alpha=0.33, beta=0.33, theta=0.3, kappa=0.8, phi=0.6, chi=0.5, psi=0.1,
            omega=0.2, mu=0.3, nu=0.1, xi=0.6, rho=0.05, **{"lambda": 6.0})


def unified_by_hand(p, N, Dfp, Dq, b):
    L = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / (Dfp + Dq) ** p["beta"]
    if b >= 16:
        return L
    Sq, Sf = Dq / (N * b / 8), Dfp / (N * b / 8)
    return (L + p["theta"] * 2 ** (-p["kappa"] * b)
            + p["phi"] * 2 ** (-p["chi"] * b) / (N ** p["psi"] * Sq ** p["omega"])
            + p["lambda"] * 2 ** (-p["mu"] * b) / (N ** p["nu"] * Sf ** p["xi"] * Sq ** p["rho"]))


# ------------------------------------------------------------------ fraction law
def test_preset_fraction_matches_the_paper():
    # S_total = D / (N b / 8): 100 and 1e5 tokens per parameter byte
    r = FRACTION.plan_qat_fraction(PAPER, N=1e8, D=5e9, w_bits=4)
    assert r["S_total"] == pytest.approx(100)
    assert r["qat_fraction"] == pytest.approx(0.23, abs=0.005)
    assert r["D_qat"] + r["D_fp"] == pytest.approx(5e9) and r["D_qat"] == pytest.approx(0.2319 * 5e9, rel=1e-3)
    r = FRACTION.plan_qat_fraction(PAPER, N=1e8, D=1e8 * 2 / 8 * 1e5, w_bits=2)
    assert r["S_total"] == pytest.approx(1e5)
    assert r["qat_fraction"] == pytest.approx(0.56, abs=0.005)
    assert math.exp(-6.7297 / math.log(100)) == pytest.approx(0.23, abs=0.005)  # the formula itself


def test_fraction_law_is_natural_log_of_tokens_per_parameter_byte():
    # f_hat = exp(log S - a / log S) / S with the natural log: f_hat = 1/e exactly at ln S_total = a,
    # and 0.1 (the 10% rule the paper revisits) at ln S_total = a / ln 10
    N, b = 1e9, 4
    for S, f in ((math.exp(6.7297), math.exp(-1.0)), (math.exp(6.7297 / math.log(10)), 0.1)):
        r = FRACTION.plan_qat_fraction(PAPER, N=N, D=S * N * b / 8, w_bits=b)
        assert r["S_total"] == pytest.approx(S, rel=1e-12)
        assert r["qat_fraction"] == pytest.approx(f, rel=1e-9)
    # S_total counts bytes of the quantized weights: halving the bits doubles S at the same N and D
    r4 = FRACTION.plan_qat_fraction(PAPER, N=N, D=1e11, w_bits=4)
    r2 = FRACTION.plan_qat_fraction(PAPER, N=N, D=1e11, w_bits=2)
    assert (r4["S_total"], r2["S_total"]) == (pytest.approx(200.0), pytest.approx(400.0))
    assert r2["qat_fraction"] == pytest.approx(math.exp(-6.7297 / math.log(400)), rel=1e-12)
    assert r2["qat_fraction"] > r4["qat_fraction"]


def _sweeps(a, sizes, seed=0, noise=2e-4):
    """Fraction sweeps whose loss is lowest at f* = exp(-a / ln S_total)."""
    rng = np.random.default_rng(seed)
    fractions = np.exp(np.linspace(math.log(0.02), math.log(0.98), 80))
    rows = []
    for N in sizes:
        for D in (2e9, 2e10, 2e11):
            for b in (1, 2, 4, 6):
                S = D / (N * b / 8)
                fstar = math.exp(-a / math.log(S))
                for f in fractions:
                    loss = 3.0 + 0.05 * (math.log(f) - math.log(fstar)) ** 2
                    rows.append(dict(N=N, D_fp=(1 - f) * D, D_qat=f * D, w_bits=b,
                                     loss=loss * math.exp(rng.normal(0, noise))))
    return pd.DataFrame(rows)


def test_fraction_law_recovers_a_from_sweeps():
    res = sl.fit(_sweeps(6.7297, (86e6, 200e6, 400e6)), law="dremov-fraction")  # default grid
    assert res.n_runs == 36  # one point per (N, D, w_bits) sweep
    assert res.params["a"] == pytest.approx(6.7297, rel=0.03)
    # held-out larger models: predicted f* against the truth
    N, D, b = 2.2e9, np.array([5e10, 5e11]), np.array([2, 4])
    pred = res.predict(pd.DataFrame(dict(N=N, D_fp=0.7 * D, D_qat=0.3 * D, w_bits=b)))
    truth = np.exp(-6.7297 / np.log(D / (N * b / 8)))
    assert np.max(np.abs(pred - truth)) < 0.02


def test_fraction_law_skips_single_fraction_groups_and_refuses_no_sweep():
    df = _sweeps(6.7297, (86e6,))
    single = pd.DataFrame([dict(N=3e8, D_fp=9e9, D_qat=1e9, w_bits=4, loss=3.0)])
    res = sl.fit(pd.concat([df, single], ignore_index=True), law="dremov-fraction")
    assert res.n_runs == 12
    with pytest.raises(InputError, match="two or more fractions"):
        sl.fit(single, law="dremov-fraction")


def test_fraction_law_refuses_missing_column():
    df = _sweeps(6.7297, (86e6,)).drop(columns=["D_qat"])
    with pytest.raises(InputError, match="D_qat"):
        sl.fit(df, law="dremov-fraction")


def test_fraction_planner_refuses_bad_inputs():
    with pytest.raises(InputError, match="w_bits"):
        FRACTION.plan_qat_fraction(PAPER, N=1e8, D=1e10, w_bits=0.5)
    with pytest.raises(InputError, match="N must"):
        FRACTION.plan_qat_fraction(PAPER, N=0, D=1e10, w_bits=4)
    with pytest.raises(InputError, match="S_total"):
        FRACTION.plan_qat_fraction(PAPER, N=1e9, D=1e8, w_bits=4)


def test_bits_planner_explains_it_needs_the_unified_law():
    with pytest.raises(InputError, match="dremov-qat"):
        FRACTION.plan_bits(PAPER, memory=1e9, D=1e11)


# ------------------------------------------------------------------ unified law
def _unified_runs(sizes, noise=5e-4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for D in (5e9, 2e10, 8e10):
            rows.append(dict(N=N, D_fp=D, D_qat=0.0, w_bits=16))
            for b in (1, 2, 4, 6):
                for f in (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95):
                    rows.append(dict(N=N, D_fp=(1 - f) * D, D_qat=f * D, w_bits=b))
    df = pd.DataFrame(rows)
    df["loss"] = [unified_by_hand(TRUE, r.N, r.D_fp, r.D_qat, r.w_bits) * math.exp(rng.normal(0, noise))
                  for r in df.itertuples()]
    return df


@pytest.fixture(scope="module")
def unified():
    return sl.fit(_unified_runs((86e6, 200e6, 400e6, 760e6)), law="dremov-qat")  # default grid (144 starts)


def test_unified_law_recovers_parameters(unified):
    p = unified.params
    for name, tol in (("E", 0.01), ("alpha", 0.03), ("beta", 0.03), ("kappa", 0.05), ("theta", 0.1),
                      ("xi", 0.1), ("mu", 0.15), ("omega", 0.15), ("chi", 0.15)):
        assert p[name] == pytest.approx(TRUE[name], rel=tol), name


def test_unified_law_predicts_larger_models(unified):
    test = pd.DataFrame([dict(N=2.2e9, D_fp=(1 - f) * D, D_qat=f * D, w_bits=b)
                         for D in (4e10, 2e11) for b in (2, 4) for f in (0.1, 0.3, 0.6)])
    truth = np.array([unified_by_hand(TRUE, r.N, r.D_fp, r.D_qat, r.w_bits) for r in test.itertuples()])
    assert np.max(np.abs(unified.predict(test) / truth - 1)) < 3e-3


def test_unified_law_is_the_papers_terms():
    # S_qat = D_qat / (N b / 8) and S_fp = D_fp / (N b / 8); the Chinchilla part sees D_fp + D_qat;
    # a full-precision row (16 bits) has no penalty
    runs = pd.DataFrame({"N": [3e8, 3e8, 1e9], "D_fp": [2e10, 2e10, 5e10], "D_qat": [5e9, 0.0, 4e10],
                         "w_bits": [4, 16, 2]})
    truth = [unified_by_hand(TRUE, r.N, r.D_fp, r.D_qat, r.w_bits) for r in runs.itertuples()]
    assert UNIFIED.predict(TRUE, runs) == pytest.approx(truth, rel=1e-12)
    assert truth[1] == pytest.approx(TRUE["E"] + TRUE["A"] / 3e8 ** 0.33 + TRUE["B"] / 2e10 ** 0.33, rel=1e-12)


def test_unified_law_refuses_rows_it_cannot_model():
    df = _unified_runs((86e6,))
    with pytest.raises(InputError, match="w_bits"):
        sl.fit(df.drop(columns=["w_bits"]), law="dremov-qat")
    bad = df.copy()
    bad.loc[5, "D_qat"] = 0.0  # a quantized run without QAT tokens
    with pytest.raises(InputError, match=r"data row 6.*D_qat"):
        sl.fit(bad, law="dremov-qat")


def test_qat_fraction_planner_minimises_the_unified_loss():
    r = UNIFIED.plan_qat_fraction(TRUE, N=3e8, D=3e10, w_bits=4)
    grid = np.linspace(0.001, 0.999, 9981)
    losses = [unified_by_hand(TRUE, 3e8, (1 - f) * 3e10, f * 3e10, 4) for f in grid]
    assert r["qat_fraction"] == pytest.approx(grid[int(np.argmin(losses))], abs=2e-3)
    assert r["loss"] <= min(losses) + 1e-12
    assert r["D_fp"] + r["D_qat"] == pytest.approx(3e10)


def test_bits_planner_picks_the_best_bit_width():
    memory, D = 1e9, 1e11
    res = UNIFIED.plan_bits(TRUE, memory=memory, D=D)
    grid = np.linspace(0.001, 0.999, 4000)
    brute = {}
    for b in (1, 2, 3, 4, 5, 6, 8, 16):
        N = memory * 8 / b
        brute[b] = (unified_by_hand(TRUE, N, D, 0.0, b) if b == 16 else
                    min(unified_by_hand(TRUE, N, (1 - f) * D, f * D, b) for f in grid))
    table = {r["w_bits"]: r for r in res["table"]}
    for b, L in brute.items():
        assert table[b]["loss"] == pytest.approx(L, abs=1e-5)
        assert table[b]["N"] == pytest.approx(memory * 8 / b)
    assert res["w_bits"] == min(brute, key=brute.get)
    with pytest.raises(InputError, match="memory"):
        UNIFIED.plan_bits(TRUE, memory=0, D=D)
