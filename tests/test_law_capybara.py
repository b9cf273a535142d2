"""capybara: Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError
from scalinglaws.laws import get_law

LAW = get_law("capybara")
SUN = LAW.presets["sun2025"].values
FORMATS = ((1, 2), (2, 1), (2, 3), (3, 2), (4, 3), (5, 2), (3, 4), (1, 4), (4, 1))


def by_hand(p, N, D, E, M, B):
    return (p["n"] / N ** p["alpha"] + p["d"] / D ** p["beta"] + p["epsilon"]
            + D ** p["beta"] / N ** p["alpha"] * math.log2(B)
            / (p["gamma"] * (E + 0.5) ** p["delta"] * (M + 0.5) ** p["nu"]))


def synthetic(noise, seed=0):
    rng = np.random.default_rng(seed)
    rows = [dict(N=N, D=D, exp_bits=E, man_bits=M, group_size=B, loss=by_hand(SUN, N, D, E, M, B))
            for N in (41e6, 85e6, 154e6, 679e6) for D in (10e9, 20e9, 50e9, 100e9)
            for E, M in FORMATS for B in (32, 128, 512)]
    df = pd.DataFrame(rows)
    df["loss"] *= np.exp(rng.normal(0.0, noise, len(df)))
    return sl.load_runs(df)


@pytest.fixture(scope="module")
def fitted():
    return sl.fit(synthetic(1e-3), law="capybara")  # default grid


def test_recovers_parameters(fitted):
    assert fitted.converged
    for name, tol in (("alpha", 0.03), ("beta", 0.03), ("epsilon", 0.01), ("delta", 0.08), ("nu", 0.08),
                      ("n", 0.2), ("d", 0.2), ("gamma", 0.2)):
        assert fitted.params[name] == pytest.approx(SUN[name], rel=tol), name


def test_predicts_larger_models(fitted):
    cases = [(1.2e9, 1e11, 4, 3, 128), (1.2e9, 3e11, 2, 1, 32), (3e9, 2e11, 5, 2, 256)]
    test = pd.DataFrame(cases, columns=["N", "D", "exp_bits", "man_bits", "group_size"])
    truth = np.array([by_hand(SUN, *c) for c in cases])
    assert np.max(np.abs(fitted.predict(test) / truth - 1)) < 3e-3


def test_missing_column_is_refused():
    df = pd.DataFrame(dict(N=[1e8], D=[1e10], loss=[3.0], man_bits=[3], group_size=[128]))
    with pytest.raises(InputError, match="exp_bits"):
        sl.fit(df, law="capybara")


def test_best_formats_are_e2m1_e4m3_e8m7():
    for bits, fmt in ((4, "E2M1"), (8, "E4M3"), (16, "E8M7")):
        res = LAW.plan_fp_format(SUN, bits=bits)
        assert res["format"] == fmt
        # brute force over every split, independent of the planner
        splits = [(E, bits - 1 - E) for E in range(1, bits)]
        E, M = max(splits, key=lambda s: (s[0] + 0.5) ** SUN["delta"] * (s[1] + 0.5) ** SUN["nu"])
        assert fmt == f"E{E}M{M}"
    res = LAW.plan_fp_format(SUN, bits=8, N=1e9, D=1e11, group_size=128)
    losses = {r["format"]: r["loss"] for r in res["table"]}
    assert min(losses, key=losses.get) == "E4M3"
    assert losses["E4M3"] == pytest.approx(by_hand(SUN, 1e9, 1e11, 4, 3, 128), rel=1e-12)


def test_critical_data_sizes_match_the_paper():
    for (E, M), tokens in (((8, 7), 1730e12), ((4, 3), 27.3e12), ((2, 1), 0.39e12)):
        d = LAW.plan_data(SUN, N=1e9, exp_bits=E, man_bits=M, group_size=128)["D_crit"]
        assert d == pytest.approx(tokens, rel=0.01)
        # and the loss is flat there (numerical derivative, not the closed form)
        h = 1e-4
        slope = (by_hand(SUN, 1e9, d * (1 + h), E, M, 128) - by_hand(SUN, 1e9, d * (1 - h), E, M, 128)) / (2 * h)
        assert abs(slope) < 1e-8


def test_compute_optimal_precision_is_4_to_8_bits():
    for flops in (1e19, 1e21, 1e23, 1e25):
        res = LAW.plan_precision(SUN, flops=flops)
        assert 4 <= res["bits"] <= 8
        # the planner's N beats a brute-force grid over N at the same P and budget
        P, E, M = res["bits"], res["exp_bits"], res["man_bits"]
        K = flops / (6 / 16 * P)
        grid = np.exp(np.linspace(math.log(1e6), math.log(K / 1e6), 4000))
        brute = min(by_hand(SUN, N, K / N, E, M, 128) for N in grid)
        assert res["loss"] <= brute + 1e-9
        assert res["N_opt"] * res["D_opt"] * P * 6 / 16 == pytest.approx(flops, rel=1e-9)


def test_planners_refuse_bad_inputs():
    with pytest.raises(InputError, match="bits"):
        LAW.plan_fp_format(SUN, bits=1)
    with pytest.raises(InputError, match="whole number"):
        LAW.plan_fp_format(SUN, bits=4.5)
    with pytest.raises(InputError, match="N must"):
        LAW.plan_data(SUN, N=0, exp_bits=4, man_bits=3, group_size=128)
    with pytest.raises(InputError, match="man_bits"):
        LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=-1, group_size=128)
    with pytest.raises(InputError, match="flops"):
        LAW.plan_precision(SUN, flops=-1)
