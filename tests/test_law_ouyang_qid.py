"""ouyang-qid: quantization-induced degradation dL = k D^beta / (N^alpha P^gamma) (Ouyang et al. 2024)."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError

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
    with pytest.raises(InputError, match="loss <= loss_fp"):
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
