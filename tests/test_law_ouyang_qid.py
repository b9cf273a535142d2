"""ouyang-qid: quantization-induced degradation dL = k D^beta / (N^alpha P^gamma) (Ouyang et al. 2024),
and kaplan, the 16-bit loss that goes with it (Loss_q = Loss_16-bit + dL)."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError, OptionError

PRESET = {"k": 0.017, "alpha": 0.2261, "beta": 0.5251, "gamma": 5.4967}


def by_hand(p, N, D, P):
    return p["k"] * D ** p["beta"] / (N ** p["alpha"] * P ** p["gamma"])


def synthetic(p, Ns, noise, seed, Ds=np.geomspace(1e9, 3e11, 6), bits=(2, 3, 4, 8)):
    """Per checkpoint (N, D): one unquantized row (no loss_fp) and one row per PTQ bit-width."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in Ns:
        for D in Ds:
            fp = 1.8 + 400 / N ** 0.34 + 400 / D ** 0.28
            rows.append(dict(N=N, D=D, ptq_bits="", loss=fp, loss_fp=""))
            for P in bits:
                dl = by_hand(p, N, D, P) * math.exp(rng.normal(0.0, noise))
                rows.append(dict(N=N, D=D, ptq_bits=P, loss=fp + dl, loss_fp=fp))
    return sl.load_runs(pd.DataFrame(rows), required=())


def test_registered_with_preset():
    law = sl.get_law("ouyang-qid")
    assert law.param_names == ["k", "alpha", "beta", "gamma"]
    assert dict(law.presets["ouyang2024"].values) == PRESET
    assert "Ouyang" in law.presets["ouyang2024"].source


def test_predicts_the_degradation_by_hand():
    law = sl.get_law("ouyang-qid")
    df = pd.DataFrame({"N": [1.6e8, 7e10], "D": [3e11, 1.7e13], "ptq_bits": [4, 3]})
    want = [by_hand(PRESET, 1.6e8, 3e11, 4), by_hand(PRESET, 7e10, 1.7e13, 3)]
    np.testing.assert_allclose(law.predict(PRESET, df), want, rtol=1e-12)
    # the paper's direction: bigger models and fewer tokens degrade less, more bits degrade less
    assert want[0] > by_hand(PRESET, 1e9, 3e11, 4) > by_hand(PRESET, 1e9, 3e10, 4) > by_hand(PRESET, 1e9, 3e10, 8)


def test_fits_only_qualifying_rows_and_recovers_parameters():
    df = synthetic(PRESET, np.geomspace(1.6e8, 2.8e9, 5), noise=0.02, seed=0)
    # a noisy row with loss < loss_fp is left out (its log degradation does not exist)
    df.loc[df.index[1], "loss"] = df.loc[df.index[1], "loss_fp"] - 0.01
    res = sl.fit(df, law="ouyang-qid")
    n_quant = int((df.ptq_bits < 16).sum())
    assert res.n_runs == n_quant - 1
    assert [w["message"] for w in res.warnings if w["code"] == "not_positive"] == [
        f"1 run has a degradation <= 0, which has no logarithm: left out of this log-space fit ({n_quant - 1} runs "
        f"fitted; --space linear keeps them)"]
    # in linear space it is kept: noise around a small degradation, whose absence would bias the fit up there
    lin = sl.fit(df, law="ouyang-qid", space="linear")
    assert lin.n_runs == n_quant and "not_positive" not in [w["code"] for w in lin.warnings]
    # the rows a fit used, fitted again, lose none and are not said to
    from scalinglaws.fitting.problem import Problem
    used = Problem.build(df, "ouyang-qid").table
    assert len(used) == n_quant - 1
    again = sl.fit(used, law="ouyang-qid")
    assert again.n_runs == n_quant - 1 and "not_positive" not in [w["code"] for w in again.warnings]
    # weights are one per fitted run: the left-out row is not one of them
    with pytest.raises(OptionError, match=f"one weight per fitted run \\({n_quant - 1} runs, 1 left out as <= 0"):
        sl.fit(df, law="ouyang-qid", weights=np.ones(n_quant))
    assert sl.fit(df, law="ouyang-qid", weights=np.ones(n_quant - 1)).objective == pytest.approx(res.objective, rel=1e-9)
    for k in ("alpha", "beta", "gamma"):
        assert res.params[k] == pytest.approx(PRESET[k], rel=0.05), k
    assert res.params["k"] == pytest.approx(PRESET["k"], rel=0.3)
    # held-out larger models: predicted degradation within a few percent of the truth
    held = pd.DataFrame({"N": [1.2e10, 7e10], "D": [1e12, 1e13], "ptq_bits": [3, 4]})
    truth = [by_hand(PRESET, 1.2e10, 1e12, 3), by_hand(PRESET, 7e10, 1e13, 4)]
    np.testing.assert_allclose(res.predict(held), truth, rtol=0.08)


def test_refuses_when_no_row_qualifies():
    df = synthetic(PRESET, [1e9], noise=0.0, seed=0)
    with pytest.raises(InputError, match="none of the 6 rows qualifies"):
        sl.fit(df[df.ptq_bits >= 16], law="ouyang-qid")
    bad = df.copy()
    bad["loss"] = bad["loss_fp"].fillna(3.0) - 0.1
    with pytest.raises(InputError, match=r"fitted in log space, where a degradation <= 0 has no logarithm, and each "
                                         r"of the 24 runs has one \(from -0.1 to -0.1\): fit it in linear space"):
        sl.fit(bad, law="ouyang-qid")


def test_missing_column_is_named():
    df = synthetic(PRESET, [1e9], noise=0.0, seed=0)
    with pytest.raises(InputError, match="loss_fp"):
        sl.fit(df.drop(columns="loss_fp"), law="ouyang-qid")
    with pytest.raises(InputError, match="ptq_bits"):
        sl.fit(df.drop(columns="ptq_bits"), law="ouyang-qid")


def test_csv_with_empty_cells(tmp_path):
    path = tmp_path / "runs.csv"
    synthetic(PRESET, np.geomspace(1.6e8, 2.8e9, 3), noise=0.01, seed=3).to_csv(path, index=False)
    text = path.read_text().replace(",16.0,", ",,")  # unquantized rows: empty ptq_bits
    path.write_text(text)
    res = sl.fit(str(path), law="ouyang-qid")
    assert res.n_runs == 3 * 6 * 4
    assert res.params["gamma"] == pytest.approx(PRESET["gamma"], rel=0.05)


def test_data_planner_by_hand():
    law = sl.get_law("ouyang-qid")
    out = law.plan_data(PRESET, N=7e10, ptq_bits=4, threshold=0.2)
    assert by_hand(PRESET, 7e10, out["D"], 4) == pytest.approx(0.2, rel=1e-10)
    assert out["D"] == pytest.approx((0.2 * 7e10 ** 0.2261 * 4 ** 5.4967 / 0.017) ** (1 / 0.5251), rel=1e-10)


@pytest.mark.parametrize("opts, msg", [
    (dict(N=1e9, ptq_bits=0, threshold=0.1), "ptq_bits must be a number of bits >= 1"),
    (dict(N=0.0, ptq_bits=4, threshold=0.1), "N must be a finite number > 0"),
    (dict(N=1e9, ptq_bits=4, threshold=-0.1), "threshold must be a finite number > 0"),
    (dict(N=1e9, ptq_bits=4), "threshold is required"),
])
def test_planner_outside_domain_says_why(opts, msg):
    with pytest.raises(InputError, match=msg):
        sl.get_law("ouyang-qid").plan_data(PRESET, **opts)


# ------------------------------------------------------------------ Table 1 of the paper
#: Table 1 of Ouyang et al. 2024: training tokens (trillions) at which the degradation reaches dL,
#: by model size N, dL and bit width, as printed (4 decimals)
TABLE1 = {
    1e9: {0.2: (0.0011, 0.1089, 1.4424), 0.3: (0.0025, 0.1990, 2.6786),
          0.4: (0.0043, 0.3051, 4.1556), 0.5: (0.0066, 0.4251, 5.8422)},
    7e9: {0.2: (0.0026, 0.3038, 4.5066), 0.3: (0.0057, 0.5550, 8.3689),
          0.4: (0.0099, 0.8512, 12.9836), 0.5: (0.0152, 1.1860, 18.2531)},
    70e9: {0.2: (0.0071, 1.0228, 17.3499), 0.3: (0.0154, 1.8687, 32.2192),
           0.4: (0.0267, 2.8659, 49.9854), 0.5: (0.0409, 3.9932, 70.2723)},
    405e9: {0.2: (0.0151, 2.5807, 48.4861), 0.3: (0.0328, 4.7151, 90.0398),
            0.4: (0.0567, 7.2311, 139.6892), 0.5: (0.0868, 10.0754, 196.3829)},
}
CELLS = [(N, q, bits, row[j]) for N, qs in TABLE1.items() for q, row in qs.items() for j, bits in enumerate((2, 3, 4))]
HALF_UNIT = 0.5e-4  # trillions: the table prints 4 decimals


@pytest.mark.parametrize("N, q, bits, cell", CELLS)
def test_per_bit_presets_reproduce_every_cell_of_table_1_within_its_rounding(N, q, bits, cell):
    law = sl.get_law("ouyang-qid")
    p = dict(law.presets[f"ouyang2024-{bits}bit"].values)
    out = law.plan_data(p, N=N, ptq_bits=bits, threshold=q)
    assert abs(out["D"] / 1e12 - cell) <= HALF_UNIT, (out["D"] / 1e12, cell)
    assert "Warning" not in out["summary"]


def test_table_1_through_the_cli(cli):
    import json
    code, out, err = cli("optimal", "data", "ouyang2024-4bit", "--N", "405B", "--ptq-bits", "4", "--threshold", "0.2",
                         "--json")
    assert code == 0, err
    assert abs(json.loads(out)["D"] / 1e12 - 48.4861) <= HALF_UNIT


def test_per_bit_presets_are_declared_per_bit_and_say_how_they_were_got():
    law = sl.get_law("ouyang-qid")
    for bits in (2, 3, 4):
        pre = law.presets[f"ouyang2024-{bits}bit"]
        assert pre.values["gamma"] == 0.0 and pre.values["k"] > 0
        assert "Table 1" in pre.source and f"{bits}-bit column" in pre.source and "fitted here" in pre.source
    # more training, more loss; bigger models, less (as in the table's rows and columns)
    for bits in (2, 3, 4):
        assert all(law.presets[f"ouyang2024-{bits}bit"].values[k] > 0 for k in ("alpha", "beta"))


def test_a_per_bit_preset_at_another_width_is_flagged():
    law = sl.get_law("ouyang-qid")
    p = dict(law.presets["ouyang2024-3bit"].values)
    out = law.plan_data(p, N=70e9, ptq_bits=4, threshold=0.2)
    assert "Warning: these are the 3-bit constants" in out["summary"] and "not at 4" in out["summary"]
    # a fit (or the unified preset) is never flagged
    assert "Warning" not in law.plan_data(PRESET, N=70e9, ptq_bits=4, threshold=0.2)["summary"]
    assert "Warning" not in law.plan_data({**p, "k": p["k"] * 1.01}, N=70e9, ptq_bits=4, threshold=0.2)["summary"]


def test_the_unified_law_gives_the_2_bit_column_but_not_the_3_and_4_bit_ones():
    """The unified constants (Fig. 6) are within 2.1% of the 2-bit cells of 0.005T and more; they miss the
    3- and 4-bit cells by up to 2.4x (so Table 1 comes from per-bit fits)."""
    law = sl.get_law("ouyang-qid")
    ratio = {(N, q, bits): law.plan_data(PRESET, N=N, ptq_bits=bits, threshold=q)["D"] / 1e12 / cell
             for N, q, bits, cell in CELLS}
    two = [r for (N, q, b), r in ratio.items() if b == 2 and TABLE1[N][q][0] >= 0.005]
    assert max(abs(r - 1) for r in two) < 0.021
    assert ratio[(405e9, 0.2, 4)] == pytest.approx(21.833 / 48.4861, rel=1e-3)  # 21.8T against 48.5T
    assert min(r for (N, q, b), r in ratio.items() if b > 2) < 0.42
    # by hand: D = (dL N^alpha P^gamma / k)^(1/beta)
    assert ratio[(405e9, 0.2, 4)] * 48.4861e12 == pytest.approx(
        (0.2 * 405e9 ** 0.2261 * 4 ** 5.4967 / 0.017) ** (1 / 0.5251), rel=1e-9)


def test_each_column_of_table_1_is_a_power_law_in_qid_and_n():
    """What the per-bit presets rest on: log D is linear in log dL and log N within the table's rounding
    (a least-squares plane through each column's 16 cells misses none of the 3- and 4-bit ones by 3e-4)."""
    for j in (1, 2):
        A, y = [], []
        for N, qs in TABLE1.items():
            for q, row in qs.items():
                A.append([1.0, math.log(q), math.log(N)])
                y.append(math.log(row[j]))
        A, y = np.array(A), np.array(y)
        coef = np.linalg.lstsq(A, y, rcond=None)[0]
        assert np.max(np.abs(A @ coef - y)) < 3e-4


# ------------------------------------------------------------------ the 16-bit loss (law kaplan)
LOSS16 = {"N_c": 4.74e19, "D_c": 7.63e10, "alpha_N": 0.045, "alpha_D": 0.399}


def loss16_by_hand(N, D):
    return ((4.74e19 / N) ** (0.045 / 0.399) + 7.63e10 / D) ** 0.399


def test_16_bit_loss_preset_is_the_fig_7_caption():
    law = sl.get_law("kaplan")
    assert dict(law.presets["ouyang2024-16bit"].values) == LOSS16
    assert "Fig. 7" in law.presets["ouyang2024-16bit"].source
    df = pd.DataFrame({"N": [1.6e8, 1.2e10, 7e10], "D": [3e11, 3e11, 1.5e13]})
    want = [loss16_by_hand(n, d) for n, d in zip(df.N, df.D)]
    np.testing.assert_allclose(law.predict(LOSS16, df), want, rtol=1e-12)
    # Pythia's range (160M..12B at 300B tokens): a language-model loss of 2.7-3.3 nats
    assert 2.6 < want[1] < want[0] < 3.4


def test_quantized_loss_is_the_16_bit_loss_plus_the_degradation():
    """Loss_q = Loss_16-bit + dL (Fig. 7): the two laws' predictions at the same N and D add up."""
    q16, qid = sl.get_law("kaplan"), sl.get_law("ouyang-qid")
    N, D, P = 1.2e10, 3e11, 3
    loss_q = q16.at(LOSS16, N=N, D=D) + qid.at(PRESET, N=N, D=D, ptq_bits=P)
    assert loss_q == pytest.approx(loss16_by_hand(N, D) + by_hand(PRESET, N, D, P), rel=1e-12)
    assert loss_q > q16.at(LOSS16, N=N, D=D)


def test_16_bit_law_fits_back_its_constants():
    law = sl.get_law("kaplan")
    N, D = np.meshgrid(np.geomspace(7e7, 1.2e10, 6), np.geomspace(1e9, 3e11, 6))
    rng = np.random.default_rng(0)
    N, D = N.ravel(), D.ravel()
    loss = law.predict(LOSS16, {"N": N, "D": D}) * np.exp(rng.normal(0, 0.002, N.size))
    res = sl.fit(pd.DataFrame({"N": N, "D": D, "loss": loss}), law="kaplan")
    assert res.params["alpha_D"] == pytest.approx(0.399, rel=0.05)
    assert res.params["alpha_N"] == pytest.approx(0.045, rel=0.05)
    held = {"N": [7e10], "D": [1.5e13]}
    assert res.predict(held)[0] == pytest.approx(loss16_by_hand(7e10, 1.5e13), rel=0.01)
