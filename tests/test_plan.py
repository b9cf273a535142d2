"""``scalinglaws plan``: the joint search agrees with closed forms and with each law's own planners."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import scalinglaws as sl
from scalinglaws.laws import get_law
from scalinglaws.laws.dremov_qat import BITS_CANDIDATES
from scalinglaws.laws.plan import bytes_per_param, search, space


def chinchilla_optimum(E, A, B, alpha, beta, C):
    """Hoffmann et al. 2022, Eq. 4 by hand: N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A/(beta B))^(1/(alpha+beta))."""
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    N = G * (C / 6) ** (beta / (alpha + beta))
    return N, C / 6 / N


@pytest.mark.parametrize("C", [1e20, 5.76e23, 1e25])
def test_a_law_without_precision_gives_the_chinchilla_closed_form(C):
    p = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)   # Hoffmann et al. 2022, Eq. 10
    res = sl.plan("hoffmann2022", flops=C)
    N, D = chinchilla_optimum(**p, C=C)
    assert res["searched"] == 1 and res["config"] == "16-bit"
    assert res["N_opt"] == pytest.approx(N, rel=2e-4) and res["D_opt"] == pytest.approx(D, rel=2e-4)
    assert res["flops_used"] == pytest.approx(C, rel=1e-12)


def test_kumar_precision_agrees_with_its_own_precision_planner():
    law = get_law("kumar-precision")
    params = dict(law.presets["kumar2024"].values)
    own = law.plan_precision(params, 1e23)
    res = sl.plan("kumar2024", flops=1e23, cost="bits", bits=list(range(3, 17)))
    assert res["w_bits"] == res["a_bits"] == res["kv_bits"] == own["bits_opt"] == 7   # the paper's 7 bits
    assert res["N_opt"] == pytest.approx(own["N_opt"], rel=1e-3)
    assert res["D_opt"] == pytest.approx(own["D_opt"], rel=1e-3)
    assert res["loss"] == pytest.approx(own["loss"], rel=1e-7)
    # C = (6/16) N D P with P = 7 (Kumar et al. Sec. 4.3): the budget is spent exactly
    assert 6 / 16 * res["N_opt"] * res["D_opt"] * 7 == pytest.approx(1e23, rel=1e-9)


def test_capybara_agrees_with_its_precision_and_format_planners():
    law = get_law("capybara")
    params = dict(law.presets["sun2025"].values)
    own = law.plan_precision(params, 1e22, group_size=128)
    res = sl.plan("sun2025", flops=1e22, cost="bits", bits=list(range(2, 17)), group_sizes=[128])
    assert (res["exp_bits"], res["man_bits"]) == (own["exp_bits"], own["man_bits"])
    assert res["N_opt"] == pytest.approx(own["N_opt"], rel=1e-3)
    assert res["loss"] == pytest.approx(own["loss"], rel=1e-7)
    # fixed N and D, one width: the format planner's best split
    for bits in (4, 6, 8):
        fmt = law.plan_fp_format(params, bits, N=1e9, D=1e11, group_size=128)
        got = sl.plan("sun2025", N=1e9, D=1e11, bits=[bits], group_sizes=[128])
        assert (got["exp_bits"], got["man_bits"]) == (fmt["exp_bits"], fmt["man_bits"]), bits


def test_dremov_qat_agrees_with_its_fraction_and_bits_planners():
    law = get_law("dremov-qat")
    params, _ = law.example()
    N, D = 2e8, 4e10
    own = law.plan_qat_fraction(params, N, D, 4)
    fine = np.round(np.linspace(0, 1, 1001), 4)
    res = search(law, params, N=N, D=D, bits=[4], qat_fractions=fine)
    assert res["qat_fraction"] == pytest.approx(own["qat_fraction"], abs=1.5e-3)
    assert res["loss"] == pytest.approx(own["loss"], abs=1e-6)
    # memory and tokens fixed: the largest model that fits, per bit-width, as plan_bits ranks them
    bits = law.plan_bits(params, 1e8, 5e10)
    got = search(law, params, memory=1e8, D=5e10, bits=BITS_CANDIDATES, qat_fractions=fine)
    assert got["w_bits"] == bits["best"]["w_bits"]
    assert got["N_opt"] == pytest.approx(1e8 * 8 / got["w_bits"], rel=1e-9)   # memory-bound, by hand
    assert got["loss"] == pytest.approx(bits["best"]["loss"], abs=1e-5)


def test_memory_bound_plan_fills_the_budget_with_weights_and_scales():
    res = sl.plan("kumar2024-ptq", flops=1e23, memory="8GB")
    best = res["best"]
    assert best["memory_bound"]
    assert best["N"] * best["ptq_bits"] / 8 == pytest.approx(8e9, rel=1e-9)   # b/8 bytes per parameter
    assert bytes_per_param({"w_bits": 4, "group_size": 32}) == (4 + 16 / 32) / 8     # 16-bit scale per 32
    assert bytes_per_param({"exp_bits": 4, "man_bits": 3}) == 1.0


def test_the_search_space_follows_the_law_columns():
    fp = space(get_law("capybara"), {}, bits=[8])
    assert {(c["exp_bits"], c["man_bits"]) for c in fp} == {(e, 7 - e) for e in range(1, 8)}
    chen = space(get_law("chen-qat"), {}, w_bits=[4], a_bits=[4], group_sizes=[32, 128])
    assert chen == [{"w_bits": 16, "a_bits": 16}, {"w_bits": 4, "a_bits": 4, "group_size": 32},
                    {"w_bits": 4, "a_bits": 4, "group_size": 128}]   # its one fitted setting, per group size
    with pytest.raises(sl.OptionError, match="no term in the bit width"):
        space(get_law("chen-qat"), {}, bits=[2, 4])          # the penalty does not depend on the bits
    ck = space(get_law("kumar-precision"), {}, bits=[4, 16])
    assert ck == [{"w_bits": 4, "a_bits": 4, "kv_bits": 4}, {"w_bits": 16, "a_bits": 16, "kv_bits": 16}]
    sep = space(get_law("kumar-precision"), {}, w_bits=[4, 8], a_bits=[8])
    assert sep == [{"w_bits": 4, "a_bits": 8, "kv_bits": 8}, {"w_bits": 8, "a_bits": 8, "kv_bits": 8}]


def test_a_bootstrapped_fit_gives_intervals_and_how_often_the_choice_wins():
    runs = sl.load_runs("data/synthetic_chinchilla.csv")
    fit = sl.bootstrap(sl.fit(runs), runs, n=40, seed=0)
    res = sl.plan(fit, flops=1e22)
    lo, hi = res["intervals"]["N_opt"]
    assert lo <= res["N_opt"] <= hi and lo < hi
    assert res["choices"] == {"16-bit": 1.0} and res["choice_samples"] == 40
    assert "wins in 100% of 40 bootstrap resamples" in res["summary"]
    assert res["caveats"] == []


def test_intervals_from_a_bootstrap_the_fit_was_warned_about_say_so(cli, tmp_path):
    """predict, optimal and plan print a note beside intervals whose bootstrap the fit was warned about (and
    carry the warnings in --json); without such a warning they print none."""
    runs = sl.load_runs("data/synthetic_chinchilla.csv")
    fit = sl.bootstrap(sl.fit(runs), runs, n=20, seed=0)
    clean, warned = tmp_path / "clean.json", tmp_path / "warned.json"
    fit.save(clean)
    fit.warnings = list(fit.warnings) + [{"code": "bootstrap_failed", "message": "3 of 20 bootstrap refits did not "
                                          "converge and are left out of the intervals, which may be too narrow"},
                                         {"code": "one_value", "message": "not about the bootstrap"}]
    fit.save(warned)
    assert [w["code"] for w in sl.plan(sl.load_fit(warned), flops=1e22)["caveats"]] == ["bootstrap_failed"]
    note = ("note: these intervals come from a bootstrap the fit was warned about (bootstrap_failed: 3 of 20 bootstrap "
            "refits did not converge and are left out of the intervals), so they are less certain than they look")
    for args in (("predict", "{}", "--N", "1B", "--D", "20B"), ("optimal", "compute", "{}", "--flops", "1e22"),
                 ("plan", "{}", "--flops", "1e22")):
        for path, says in ((clean, False), (warned, True)):
            code, out, err = cli(*[a.format(path) for a in args])
            assert code == 0, err
            assert (note in " ".join(out.split())) == says, (args, path)
    code, out, err = cli("predict", str(warned), "--N", "1B", "--D", "20B", "--json")
    assert [w["code"] for w in json.loads(out)["caveats"]] == ["bootstrap_failed"]


def test_plan_command_prints_json_and_refuses_bad_input(cli, tmp_path):
    code, out, err = cli("plan", "kumar2024", "--flops", "1e23", "--cost", "bits", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["config"] == "W7A7" and len(data["table"]) == 5
    code, out, _ = cli("plan", "kumar2024", "--flops", "1e23", "--memory", "16GB")
    assert code == 0 and "16GB" in out and "limited by memory" in out
    for args, needle in [(("--flops", "1e23", "--cost", "fp8"), "--cost"),
                         (("--flops", "1e23", "--bits", "0,4"), "--bits"),
                         (("--memory", "lots"), "--memory"),
                         ((), "--flops"),
                         (("--N", "1B"), "--flops"),
                         (("--memory", "16GB"), "--flops"),
                         (("--N", "1B", "--memory", "16GB"), "--flops"),
                         (("--flops", "1e23", "--group-sizes", "32"), "--group-sizes"),
                         (("--flops", "1e23", "--qat-fractions", "0.5"), "--qat-fractions"),
                         (("--N", "1B", "--D", "20B", "--flops", "1e20"), "--flops")]:
        code, out, err = cli("plan", "kumar2024", *args)
        assert code == 2 and needle in err and "Traceback" not in err, (args, err)
    code, _, err = cli("plan", "dremov2025", "--flops", "1e21")
    assert code == 2 and "not the loss" in err


def test_infeasible_budgets_say_so():
    with pytest.raises(sl.InputError, match="no configuration"):
        sl.plan("kumar2024", N="70B", D="1T", bits=[2])     # N_eff <= 0 at 2 bits: outside the law
    assert math.isfinite(sl.plan("kumar2024", N="70B", D="1T")["loss"])


def test_a_weight_only_law_pays_16_bit_activations_under_the_bits_cost():
    from scalinglaws.laws.plan import cost_factor, training_bits
    assert training_bits({"w_bits": 4, "qat_fraction": 0.5}) == 16       # dremov-qat models weights only
    assert cost_factor({"w_bits": 4, "qat_fraction": 0.5}, "bits") == 1.0
    assert cost_factor({"w_bits": 4, "a_bits": 8}, "bits") == pytest.approx(0.5)   # C = 6ND max(w, a)/16
    law = get_law("dremov-qat")
    params, _ = law.example()
    with pytest.raises(sl.OptionError, match="activation bit width"):
        search(law, params, flops=1e21, a_bits=[4])


def test_lists_narrow_the_fitted_formats_of_a_per_format_law():
    law = get_law("frantar-eff").for_runs({"w_bits": [16, 4, 4, 2], "a_bits": [16, 16, 4, 2],
                                           "N": [1e8] * 4, "D": [1e9] * 4})
    params = {"E": 1.7, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37,
              "eff[W4A16]": 0.9, "eff[W4A4]": 0.7, "eff[W2A2]": 0.3}
    every = space(law, params)
    assert len(every) == 4 and every[0] == {"w_bits": 16.0, "a_bits": 16.0}
    four = space(law, params, bits=[4])
    assert {(c["w_bits"], c["a_bits"]) for c in four} == {(16.0, 16.0), (4.0, 16.0), (4.0, 4.0)}
    with pytest.raises(sl.OptionError, match="QAT fraction"):
        space(law, params, qat_fractions=[0.5])
    best = search(law, params, flops=1e21, memory=1e9)      # by hand: at 1 GB the 2-bit model holds 4x N
    assert best["config"] in {c["config"] for c in best["table"]}
