"""capybara: Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar

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


def test_critical_data_sizes_are_eq21():
    for E, M in ((8, 7), (4, 3), (2, 1)):
        d = LAW.plan_data(SUN, N=1e9, exp_bits=E, man_bits=M, group_size=128)["D_crit"]
        f = (E + 0.5) ** SUN["delta"] * (M + 0.5) ** SUN["nu"]
        assert d == pytest.approx((SUN["d"] * SUN["gamma"] * 1e9 ** SUN["alpha"] * f / 7) ** (1 / (2 * SUN["beta"])),
                                  rel=1e-12)
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


# ------------------------------------------------------- channel- and tensor-wise scaling (Sec. 3.6)
LOG2_B_CHANNEL = 13.1567   # Sun et al. Sec. 3.6: "log2 B_channel ~ 13.1567"
# illustrative tensor-wise constants: the paper publishes none (Sec. 3.6 gives only the form)
TENSOR = dict(SUN, xi=0.05, omega=0.1, eta=0.1)


def by_hand_lb(p, N, D, E, M, lb):
    return (p["n"] / N ** p["alpha"] + p["d"] / D ** p["beta"] + p["epsilon"]
            + D ** p["beta"] / N ** p["alpha"] * lb / (p["gamma"] * (E + 0.5) ** p["delta"] * (M + 0.5) ** p["nu"]))


def table3_like(params, tensor=True):
    """The design of the paper's Table 3: per (N, D), E/M formats channel-wise, E1M1 at blocks 32..512,
    E1M1 per tensor."""
    rows = []
    for N in (40894464, 84934656, 154140672, 679477248):
        for D in (10485760000, 20971520000, 52428800000, 104857600000):
            for E, M in ((0, 7), (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 3), (3, 1), (3, 2), (4, 1), (4, 3),
                         (5, 2)):
                rows.append(dict(N=N, D=D, exp_bits=E, man_bits=M, scale_span=1,
                                 loss=by_hand_lb(params, N, D, E, M, LOG2_B_CHANNEL)))
            for B in (32, 64, 128, 256, 512):
                rows.append(dict(N=N, D=D, exp_bits=1, man_bits=1, group_size=B,
                                 loss=by_hand_lb(params, N, D, 1, 1, math.log2(B))))
            if tensor:
                lb = N ** params["omega"] / (params["xi"] * D ** params["eta"])
                rows.append(dict(N=N, D=D, exp_bits=1, man_bits=1, scale_span=2,
                                 loss=by_hand_lb(params, N, D, 1, 1, lb)))
    return pd.DataFrame(rows)


def test_a_channel_wise_row_uses_log2_b_channel_not_its_width():
    # a 41M model (hidden size 512, Table 1) trained E4M3 per channel
    got = LAW.predict(SUN, {"N": 41e6, "D": 1e11, "exp_bits": 4, "man_bits": 3, "scale_span": 1})[0]
    assert got == pytest.approx(by_hand_lb(SUN, 41e6, 1e11, 4, 3, 13.1567), rel=1e-12)
    # B = the hidden size (log2 512 = 9) would give a penalty 9 / 13.1567 = 0.68 of it
    base = by_hand_lb(SUN, 41e6, 1e11, 4, 3, 0.0)
    width = LAW.predict(SUN, {"N": 41e6, "D": 1e11, "exp_bits": 4, "man_bits": 3, "group_size": 512})[0]
    assert (width - base) / (got - base) == pytest.approx(9 / 13.1567, rel=1e-9)


@pytest.fixture(scope="module")
def table3(tmp_path_factory):
    path = tmp_path_factory.mktemp("table3") / "table3.csv"
    table3_like(TENSOR).to_csv(path, index=False)  # empty group_size on channel/tensor rows, empty scale_span
    runs = sl.load_runs(path)                        # on block rows
    return runs, sl.fit(runs, law="capybara", loss="mse")


def test_the_paper_table3_design_reads_from_a_csv_and_fits(table3, tmp_path):
    runs, fit = table3
    assert np.isnan(runs["group_size"]).sum() == 16 * 13 and np.isnan(runs["scale_span"]).sum() == 16 * 5
    assert fit.converged
    for k, v in TENSOR.items():
        assert fit.params[k] == pytest.approx(v, rel=2e-3), k
    # the fit file keeps the tensor-wise constants, and predicts a per-tensor run at a new size
    fit.save(tmp_path / "fit.json")
    back = sl.load_fit(tmp_path / "fit.json")
    new = {"N": 1.2e9, "D": 2e11, "exp_bits": 1, "man_bits": 1, "scale_span": 2}
    lb = 1.2e9 ** 0.1 / (0.05 * 2e11 ** 0.1)
    assert back.predict(new)[0] == pytest.approx(by_hand_lb(TENSOR, 1.2e9, 2e11, 1, 1, lb), rel=1e-6)


def test_the_fit_figure_draws_the_channel_wise_runs_too(table3):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scalinglaws.viz.plotting import plot_fit
    runs, fit = table3
    fig = plot_fit(fit, runs)
    try:
        texts = " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
        assert "channel-wise runs" in texts and "group size = 512" in texts
    finally:
        plt.close(fig)


def test_without_per_tensor_rows_the_law_keeps_its_eight_parameters():
    df = table3_like(SUN, tensor=False)
    assert LAW.specialize(df).param_names == LAW.param_names
    assert len(LAW.specialize(table3_like(TENSOR)).param_names) == 11


def test_a_per_tensor_row_needs_fitted_tensor_constants():
    row = {"N": 1e8, "D": 1e10, "exp_bits": 1, "man_bits": 1, "scale_span": 2}
    with pytest.raises(InputError, match="xi, omega, eta.*publish none"):
        LAW.predict(SUN, row)


@pytest.mark.parametrize("row,match", [
    (dict(group_size=512, scale_span=1), "group_size 512 and scale_span 1.*channel-wise"),
    (dict(group_size=512, scale_span=2), "tensor-wise row has no block size"),
    (dict(scale_span=3), "scale_span must be 0.*1 \\(per-channel\\) or 2"),
    (dict(scale_span=0.5), "scale_span must be"),
    (dict(scale_span=0), "scale_span 0 \\(a block\\) needs a group_size"),
    (dict(), "no group_size and no scale_span: law .capybara. needs group_size"),
    (dict(group_size=0.5), "group_size must be >= 1"),
])
def test_ambiguous_or_missing_scaling_is_refused(row, match):
    with pytest.raises(InputError, match=match):
        LAW.predict(SUN, dict(N=1e8, D=1e10, exp_bits=4, man_bits=3, **row))


def test_a_trainer_table_says_how_to_mark_its_per_channel_rows(tmp_path):
    # the bundled trainer writes w_granularity as text and no group size for per-channel runs
    path = tmp_path / "runs.csv"
    path.write_text("N,D,loss,exp_bits,man_bits,group_size,w_granularity\n"
                    "1e8,1e10,3.1,4,3,32,per_group\n1e8,1e10,3.2,4,3,,per_channel\n")
    with pytest.raises(InputError, match="row 2.*w_granularity says per_channel: write scale_span 1"):
        sl.fit(path, law="capybara")


def test_unquantized_runs_have_no_penalty_whatever_their_scaling():
    cols = {"N": [1e8, 1e8], "D": [1e10, 1e10], "exp_bits": [4, 1], "man_bits": [3, 1],
            "group_size": [64, np.nan], "scale_span": [0, 1]}
    base = LAW.predict(SUN, LAW.unquantized(cols))
    assert base == pytest.approx([by_hand_lb(SUN, 1e8, 1e10, 4, 3, 0.0)] * 2, rel=1e-12)


# ------------------------------------------------------------------------- more planners
def test_best_format_of_every_width_is_figure5s():
    # Figure 5 (legend "Optimal FP-layout"; Sec. 4.2): fp2 E1M0 ... fp16 E8M7 (fp1 E0M0 has no exponent bit)
    fig5 = ["E1M0", "E1M1", "E2M1", "E2M2", "E3M2", "E3M3", "E4M3", "E4M4", "E5M4", "E5M5", "E6M5", "E6M6",
            "E7M6", "E7M7", "E8M7"]
    assert [LAW.plan_fp_format(SUN, bits=P)["format"] for P in range(2, 17)] == fig5


def test_critical_data_sizes_as_the_paper_rounds_them():
    # Sec. 4.3: "a Dcrit value of 1730T ... FP8-E4M3 ... 27T, and with FP4-E2M1 ... 0.4T"
    for (E, M), tokens, tol in (((8, 7), 1730e12, 5e-4), ((4, 3), 27e12, 0.02), ((2, 1), 0.4e12, 0.125)):
        d = LAW.plan_data(SUN, N=1e9, exp_bits=E, man_bits=M, group_size=128)["D_crit"]
        assert d == pytest.approx(tokens, rel=tol)


def test_channel_wise_critical_data_is_eq21_with_log2_b_channel():
    res = LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3, scale_span=1)
    f = 4.5 ** SUN["delta"] * 3.5 ** SUN["nu"]
    hand = (SUN["d"] * SUN["gamma"] * 1e9 ** SUN["alpha"] * f / 13.1567) ** (1 / (2 * SUN["beta"]))
    assert res["D_crit"] == pytest.approx(hand, rel=1e-12)
    assert "group_size" not in res and res["scale_span"] == 1


def test_tensor_wise_critical_data_is_where_the_loss_is_flat():
    N, E, M = 3e8, 4, 3
    d = LAW.plan_data(TENSOR, N=N, exp_bits=E, man_bits=M, scale_span=2)["D_crit"]

    def loss(D):
        return by_hand_lb(TENSOR, N, D, E, M, N ** 0.1 / (0.05 * D ** 0.1))
    grid = np.exp(np.linspace(math.log(d) - 3, math.log(d) + 3, 6001))
    assert grid[int(np.argmin([loss(x) for x in grid]))] == pytest.approx(d, rel=2e-3)
    # eta >= beta: the penalty no longer grows with D
    flat = LAW.plan_data(dict(TENSOR, eta=0.6), N=N, exp_bits=E, man_bits=M, scale_span=2)
    assert flat["D_crit"] == math.inf and "no critical data size" in flat["summary"]


def _gamma_rho(p):
    s = p["delta"] + p["nu"]
    return p["gamma"] * p["delta"] ** p["delta"] * p["nu"] ** p["nu"] / s ** s


def _eq20(p, N, D, P, lb):
    """Eq. 20: the loss at the continuous optimal layout of P bits."""
    return (p["n"] / N ** p["alpha"] + p["d"] / D ** p["beta"] + p["epsilon"]
            + D ** p["beta"] / N ** p["alpha"] * lb / (_gamma_rho(p) * P ** (p["delta"] + p["nu"])))


def test_optimal_precision_at_fixed_data_is_eq47_and_figure14s_band():
    k, C = 6 / 16, 1e24
    for D, want in ((1e11, 4.27), (1e14, 7.62)):   # Figure 14: 0.1T .. 100T lies in 4 .. 8 bits
        res = LAW.plan_precision(SUN, flops=C, D=D)
        assert res["mode"] == "fixed D" and res["P_opt"] == pytest.approx(want, abs=0.005)
        # the closed form is the minimum over continuous P of Eq. 20 with N = C / (k P D)
        r = minimize_scalar(lambda P: _eq20(SUN, C / (k * P * D), D, P, 7.0), bounds=(1, 40), method="bounded",
                            options={"xatol": 1e-10})
        assert res["P_opt"] == pytest.approx(r.x, rel=1e-6)
        # the integer answer: the best (P, E) over every split, evaluated with the law itself
        brute = {(P, E): by_hand(SUN, C / (k * P * D), D, E, P - 1 - E, 128) for P in range(2, 17)
                 for E in range(1, P)}
        P, E = min(brute, key=brute.get)
        assert (res["bits"], res["exp_bits"]) == (P, E) and res["D_opt"] == D
        assert res["loss"] == pytest.approx(brute[(P, E)], rel=1e-12)
    assert LAW.plan_precision(SUN, flops=1e24, D=1e11)["bits"] == 4
    assert LAW.plan_precision(SUN, flops=1e24, D=1e14)["bits"] == 8
    # at fixed D the optimum does not depend on the budget (Eq. 47 has no C)
    assert LAW.plan_precision(SUN, flops=1e27, D=1e12)["P_opt"] == LAW.plan_precision(SUN, flops=1e23, D=1e12)["P_opt"]


def test_optimal_precision_at_fixed_model_size_is_eq52():
    k, C, N = 6 / 16, 1e22, 1e9
    res = LAW.plan_precision(SUN, flops=C, N=N)
    r = minimize_scalar(lambda P: _eq20(SUN, N, C / (k * P * N), P, 7.0), bounds=(1, 40), method="bounded",
                        options={"xatol": 1e-10})
    assert res["mode"] == "fixed N" and res["P_opt"] == pytest.approx(r.x, rel=1e-6)
    brute = {(P, E): by_hand(SUN, N, C / (k * P * N), E, P - 1 - E, 128) for P in range(2, 17)
             for E in range(1, P)}
    assert (res["bits"], res["exp_bits"]) == min(brute, key=brute.get) and res["N_opt"] == N
    # Eq. 24: at a fixed budget, P_opt^(delta+nu+2 beta) N^(alpha+2 beta) is the same for every N
    s, a, b = SUN["delta"] + SUN["nu"], SUN["alpha"], SUN["beta"]
    const = [LAW.plan_precision(SUN, flops=C, N=n)["P_opt"] ** (s + 2 * b) * n ** (a + 2 * b) for n in (1e8, 1e9, 1e10)]
    assert const == pytest.approx([const[0]] * 3, rel=1e-9)


def test_joint_optimal_precision_is_eq54_and_the_4_to_8_bit_band():
    k = 6 / 16
    for C, bits in ((1e21, 4), (1e31, 8)):   # Sec. 4.4: C in (1e21, 1e31) -> 4 to 8 bits
        res = LAW.plan_precision(SUN, flops=C)
        assert res["mode"] == "joint" and res["bits"] == bits

        # Eq. 54 against a numerical minimum of Eq. 20 over N and continuous P along C = k P N D
        def best_at(P):
            return minimize_scalar(lambda x: _eq20(SUN, math.exp(x), C / (k * P * math.exp(x)), P, 7.0),
                                   bounds=(0, math.log(C)), method="bounded", options={"xatol": 1e-10}).fun
        r = minimize_scalar(best_at, bounds=(2, 20), method="bounded", options={"xatol": 1e-8})
        assert res["P_opt"] == pytest.approx(r.x, rel=1e-4)
    assert 4 < LAW.plan_precision(SUN, flops=1e21)["P_opt"] < LAW.plan_precision(SUN, flops=1e31)["P_opt"] < 8


def test_channel_wise_precision_uses_log2_b_channel():
    res = LAW.plan_precision(SUN, flops=1e24, D=1e12, scale_span=1)
    s = SUN["delta"] + SUN["nu"]
    gD = (s - SUN["alpha"]) / (SUN["n"] * SUN["alpha"] * _gamma_rho(SUN))
    assert res["P_opt"] == pytest.approx((gD * 1e12 ** SUN["beta"] * 13.1567) ** (1 / s), rel=1e-12)
    assert res["log2_B"] == 13.1567 and "group_size" not in res


def test_planner_scaling_options_are_checked():
    with pytest.raises(InputError, match="group.size 64 and --scale-span 1 say two things"):
        LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3, group_size=64, scale_span=1)
    with pytest.raises(InputError, match="group.size or --scale-span is needed"):
        LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3)
    with pytest.raises(InputError, match="scale_span.*<= 2"):
        LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3, scale_span=3)
    with pytest.raises(InputError, match="per-tensor.*does not apply to the precision planner"):
        LAW.plan_precision(SUN, flops=1e23, scale_span=2)
    with pytest.raises(InputError, match="and --N together with --flops fix the precision"):
        LAW.plan_precision(SUN, flops=1e23, N=1e9, D=1e11)
    with pytest.raises(InputError, match="no precision penalty"):
        LAW.plan_precision(SUN, flops=1e23, group_size=1)
    with pytest.raises(InputError, match="less than one parameter"):
        LAW.plan_precision(SUN, flops=1e10, D=1e12)
    with pytest.raises(InputError, match="xi, omega, eta"):
        LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3, scale_span=2)


def test_the_cli_plans_at_fixed_data_and_per_channel(capsys):
    from scalinglaws.cli.main import run
    assert run(["optimal", "precision", "sun2025", "--flops", "1e24", "--D", "100T", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["P_opt"] == pytest.approx(7.62, abs=0.005) and out["bits"] == 8
    assert run(["optimal", "data", "sun2025", "--N", "1B", "--exp-bits", "4", "--man-bits", "3",
                "--scale-span", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["D_crit"] == pytest.approx(LAW.plan_data(SUN, N=1e9, exp_bits=4, man_bits=3, scale_span=1)["D_crit"])
    assert run(["optimal", "data", "sun2025", "--N", "1B", "--exp-bits", "4", "--man-bits", "3",
                "--group-size", "64", "--scale-span", "2"]) == 2
    assert "say two things" in capsys.readouterr().err
