"""kumar-ptq: Chinchilla plus post-training-quantization degradation (Kumar et al. 2024, Eq. 2)."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError

PRESET = {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
          "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907}


def by_hand(p, N, D, P):
    """Eq. 2 written out, independent of the package."""
    base = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if P >= 16:
        return base
    return base + p["C_T"] * D ** p["gamma_D"] / N ** p["gamma_N"] * math.exp(-P / p["gamma_post"])


def grid(Ns, tpps=(5, 12, 30, 70, 150), bits=(16, 2, 3, 4, 5, 6, 8)):
    rows = [dict(N=N, D=N * t, ptq_bits=P) for N in Ns for t in tpps for P in bits]
    return sl.load_runs(pd.DataFrame(rows), required=())


def synthetic(p, Ns, noise, seed):
    df = grid(Ns)
    rng = np.random.default_rng(seed)
    exact = np.array([by_hand(p, r.N, r.D, r.ptq_bits) for r in df.itertuples()])
    df["loss"] = exact * np.exp(rng.normal(0.0, noise, len(df)))
    return df, exact


def test_registered_with_preset_and_params():
    law = sl.get_law("kumar-ptq")
    assert law.param_names == ["E", "A", "B", "alpha", "beta", "C_T", "gamma_D", "gamma_N", "gamma_post"]
    assert dict(law.presets["kumar2024-ptq"].values) == PRESET
    assert "Table 2" in law.presets["kumar2024-ptq"].source
    assert law.describe()["start_grid_size"] <= 1000


def test_predict_matches_formula_and_16_bits_means_no_ptq():
    law = sl.get_law("kumar-ptq")
    df = sl.load_runs(pd.DataFrame({"N": [1e8, 1e8, 1e8, 1e8, 3e9], "D": [2e9, 2e9, 2e9, 2e9, 1e11],
                                    "ptq_bits": ["", "16", "24", "4", "3"]}), required=())
    got = law.predict(PRESET, df)
    want = [by_hand(PRESET, r.N, r.D, r.ptq_bits) for r in df.itertuples()]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # empty cell, 16 and above: exactly Chinchilla (the mask, not a tiny exp(-16/gamma_post) term)
    chin = PRESET["E"] + PRESET["A"] / 1e8 ** 0.4965 + PRESET["B"] / 2e9 ** 0.4965
    assert got[0] == pytest.approx(chin, rel=1e-14) and got[1] == got[0] and got[2] == got[0]
    assert got[3] > got[0]


def test_recovers_parameters_and_predicts_larger_models():
    true = dict(PRESET)
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


def test_critical_data_size_by_hand():
    law = sl.get_law("kumar-ptq")
    p, N, P = PRESET, 1e9, 4
    out = law.plan_data(p, N=N, ptq_bits=P)
    d = (p["beta"] * p["B"] * N ** p["gamma_N"] * math.exp(P / p["gamma_post"])
         / (p["gamma_D"] * p["C_T"])) ** (1 / (p["gamma_D"] + p["beta"]))
    assert out["D_crit"] == pytest.approx(d, rel=1e-10)
    # it is where the quantized model's loss is lowest in D: more data makes it worse
    f = lambda D: by_hand(p, N, D, P)  # noqa: E731
    assert f(d) < f(0.9 * d) and f(d) < f(1.1 * d)
    assert (f(d * 1.001) - f(d / 1.001)) / f(d) == pytest.approx(0.0, abs=1e-9)
    assert out["loss_at_D_crit"] == pytest.approx(f(d), rel=1e-12)
    # more bits -> later critical size
    assert law.plan_data(p, N=N, ptq_bits=6)["D_crit"] > d


def test_compute_planner_reuses_chinchilla():
    law = sl.get_law("kumar-ptq")
    out = law.plan_compute(PRESET, flops=1e22, ptq_bits=4)
    chin = sl.get_law("chinchilla").plan_compute({k: PRESET[k] for k in ("E", "A", "B", "alpha", "beta")},
                                                 flops=1e22)
    assert out["N_opt"] == pytest.approx(chin["N_opt"]) and out["loss"] == pytest.approx(chin["loss"])
    assert out["loss_ptq"] == pytest.approx(by_hand(PRESET, out["N_opt"], out["D_opt"], 4), rel=1e-12)


def test_absent_precision_column_means_16_bits_and_missing_column_is_named():
    df, _ = synthetic(PRESET, [1e8], noise=0.0, seed=0)
    law = sl.get_law("kumar-ptq")
    np.testing.assert_array_equal(law.predict(PRESET, df.drop(columns="ptq_bits")),
                                  law.predict(PRESET, df.assign(ptq_bits=16.0)))
    with pytest.raises(InputError, match="'D'"):
        sl.fit(pd.DataFrame({"N": [1e8], "ptq_bits": [4], "loss": [3.0]}), law="kumar-ptq")


@pytest.mark.parametrize("opts, msg", [
    (dict(N=1e9, ptq_bits=0.5), "ptq_bits must be a number of bits >= 1"),
    (dict(N=0.0, ptq_bits=4), "N must be a finite number > 0"),
    (dict(N=-5.0, ptq_bits=4), "N must be a finite number > 0"),
    (dict(N=1e9, ptq_bits=16), "no post-training quantization"),
    (dict(N=1e9), "ptq_bits is required"),
])
def test_planner_outside_domain_says_why(opts, msg):
    with pytest.raises(InputError, match=msg):
        sl.get_law("kumar-ptq").plan_data(PRESET, **opts)


def test_cli_planner_with_preset(capsys):
    from cli.optimal_cmds import run_planner
    ans = run_planner("data", "kumar2024-ptq", {"N": "1B", "ptq_bits": "4"}, as_json=True)
    assert ans["law"] == "kumar-ptq" and ans["D_crit"] > 1e9
    assert '"D_crit"' in capsys.readouterr().out
