"""frantar-eff: one effective-parameter multiplier per compression format (Frantar et al. 2025),
and the generic hooks for laws whose parameters depend on the data (Law.specialize,
Law.from_param_names)."""

import json

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError
from scalinglaws.laws.base import Law, Param
from scalinglaws.laws.frantar_eff import FrantarEff, format_key

TRUE = {"E": 1.9, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36,
        "eff[W2A16]": 0.45, "eff[W4A4G32]": 0.6, "eff[W4A16]": 0.8, "eff[W8A8]": 0.95}
FORMATS = {"W16A16": (16, 16, np.nan), "W4A16": (4, 16, np.nan), "W2A16": (2, 16, np.nan),
           "W4A4G32": (4, 4, 32), "W8A8": (8, 8, np.nan)}


def by_hand(p, N, D, fmt):
    eff = 1.0 if fmt == "W16A16" else p[f"eff[{fmt}]"]
    return p["A"] * (N * eff) ** -p["alpha"] + p["B"] * D ** -p["beta"] + p["E"]


def synthetic(p, Ns, noise, seed, tpps=(5, 14, 37, 100)):
    rows, exact = [], []
    for N in Ns:
        for t in tpps:
            for fmt, (w, a, g) in FORMATS.items():
                rows.append(dict(N=N, D=N * t, w_bits=w, a_bits=a, group_size=g))
                exact.append(by_hand(p, N, N * t, fmt))
    df = sl.load_runs(pd.DataFrame(rows), required=())
    exact = np.array(exact)
    df["loss"] = exact * np.exp(np.random.default_rng(seed).normal(0.0, noise, len(df)))
    return df, exact


def test_format_keys():
    assert format_key(4, 16) == "W4A16"
    assert format_key(4, 4, 32) == "W4A4G32"
    assert format_key(3.5, 8.0, 128.0) == "W3.5A8G128"


def test_for_runs_makes_one_efficiency_per_quantized_format():
    df, _ = synthetic(TRUE, [1e8], noise=0.0, seed=0)
    law = FrantarEff.for_runs(df)
    assert law.param_names == ["E", "A", "B", "alpha", "beta",
                               "eff[W2A16]", "eff[W4A4G32]", "eff[W4A16]", "eff[W8A8]"]
    registered = sl.get_law("frantar-eff")
    assert registered.param_names == ["E", "A", "B", "alpha", "beta"]  # the registry's instance is untouched
    # eff is fitted as log eff in [-10, 0]: always in (0, 1]
    for prm in law.params[5:]:
        assert prm.log and prm.internal_bounds() == (-10.0, 0.0)
    assert law.describe()["start_grid_size"] <= 1000


def test_16_bit_rows_have_eff_exactly_one():
    law = FrantarEff(["W4A16"])
    df = pd.DataFrame({"N": [1e8, 1e8, 1e8], "D": [2e9] * 3, "w_bits": [16, 16, 4], "a_bits": [16, 16, 16],
                       "group_size": [np.nan, 64, np.nan]})
    p = {k: v for k, v in TRUE.items() if "[" not in k} | {"eff[W4A16]": 0.8}
    got = law.predict(p, df)
    dense = p["A"] * 1e8 ** -p["alpha"] + p["B"] * 2e9 ** -p["beta"] + p["E"]
    assert got[0] == pytest.approx(dense, rel=1e-14) and got[1] == got[0]
    assert got[2] == pytest.approx(by_hand(p, 1e8, 2e9, "W4A16"), rel=1e-12)


def test_recovers_parameters_and_predicts_larger_models():
    df, _ = synthetic(TRUE, np.geomspace(3e7, 3e8, 4), noise=0.001, seed=0)
    res = sl.fit(df, law="frantar-eff")  # default grid; specialize() adds the formats found
    assert res.converged
    assert set(res.params) == set(TRUE)
    for k in ("E", "alpha", "beta"):
        assert res.params[k] == pytest.approx(TRUE[k], rel=0.03), k
    for k in ("A", "B"):
        assert res.params[k] == pytest.approx(TRUE[k], rel=0.25), k
    for k in TRUE:
        if k.startswith("eff["):
            assert res.params[k] == pytest.approx(TRUE[k], abs=0.03), k
            assert 0 < res.params[k] <= 1
    held, exact = synthetic(TRUE, [1e9, 3e9], noise=0.0, seed=1)
    assert np.abs(res.predict(held) / exact - 1).max() < 0.01


def test_eff_stays_at_most_one():
    # a "compressed" format that is really better than dense: eff is held at its bound 1
    p = dict(TRUE, **{"eff[W4A16]": 1.3})
    df, _ = synthetic(p, np.geomspace(3e7, 3e8, 4), noise=0.0005, seed=4)
    res = sl.fit(df, law="frantar-eff", starts=20)
    assert res.params["eff[W4A16]"] == pytest.approx(1.0, abs=1e-9)
    assert "eff[W4A16]" in res.status["on_bound"]


def test_save_load_and_fix_by_format_name(tmp_path):
    df, _ = synthetic(TRUE, np.geomspace(3e7, 3e8, 4), noise=0.001, seed=2)
    res = sl.fit(df, law="frantar-eff", fix={"eff[W4A16]": 0.8}, starts=30)
    assert res.params["eff[W4A16]"] == 0.8
    path = tmp_path / "fit.json"
    res.save(path)
    assert "eff[W8A8]" in json.loads(path.read_text())["params"]
    back = sl.load_fit(path)  # rebuilt from the parameter names through from_param_names
    assert back.law_obj.param_names == list(res.params)
    np.testing.assert_allclose(back.predict(df), res.predict(df), rtol=1e-14)
    # predicting through the registered (format-less) instance also rebuilds the law
    np.testing.assert_allclose(sl.get_law("frantar-eff").predict(res.params, df), res.predict(df), rtol=1e-14)
    with pytest.raises(InputError, match="format W3A16 has no fitted efficiency"):
        back.predict({"N": 1e9, "D": 2e10, "w_bits": 3, "a_bits": 16})


def test_load_fit_rejects_unknown_parameter(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps({"law": "frantar-eff", "params": dict(TRUE, gamma=1.0)}))
    with pytest.raises(InputError, match="no parameter 'gamma'"):
        sl.load_fit(path)


def test_absent_precision_column_means_16_bits_and_missing_column_is_named():
    df, _ = synthetic(TRUE, [1e8], noise=0.0, seed=0)
    for col in ("a_bits", "w_bits"):  # an absent precision column reads as 16 bits on every row
        assert FrantarEff.for_runs(df.drop(columns=col)).formats == FrantarEff.for_runs(df.assign(**{col: 16})).formats
    with pytest.raises(InputError, match="'N'"):
        sl.fit(df.drop(columns="N"), law="frantar-eff")


def test_compute_planner():
    law = sl.get_law("frantar-eff")
    out = law.plan_compute(TRUE, flops=1e22, w_bits=4, a_bits=4, group_size=32)
    assert out["eff"] == 0.6
    assert out["loss"] == pytest.approx(by_hand(TRUE, out["N_opt"], out["D_opt"], "W4A4G32"), rel=1e-12)
    dense = law.plan_compute(TRUE, flops=1e22)
    assert dense["eff"] == 1.0 and dense["loss"] < out["loss"]
    with pytest.raises(InputError, match="format W3A16 has no fitted efficiency"):
        law.plan_compute(TRUE, flops=1e22, w_bits=3)
    with pytest.raises(InputError, match="w_bits must be a number of bits >= 1"):
        law.plan_compute(TRUE, flops=1e22, w_bits=0.5)
    with pytest.raises(InputError, match="flops must be a finite number > 0"):
        law.plan_compute(TRUE, flops=-1.0)


# ---------------------------------------------------------------- the generic hooks
def test_default_hooks_return_the_law_itself():
    chin = sl.get_law("chinchilla")
    df = pd.DataFrame({"N": [1e8], "D": [1e9], "loss": [3.0]})
    assert chin.specialize(df) is chin
    assert chin.from_param_names(["E", "A", "B", "alpha", "beta"]) is chin


class _PerGroup(Law):
    """A toy data-dependent law: L = c_g for each value g of column 'grp' (tests the hooks only)."""

    name = "toy-per-group"
    columns = ("N", "grp")

    def __init__(self, groups=()):
        self.groups = tuple(groups)
        self.params = tuple(Param(f"c[{g}]", "level", (-5.0, 5.0), (0.0,)) for g in self.groups)

    def specialize(self, runs):
        return _PerGroup(sorted({int(g) for g in runs["grp"]}))

    def from_param_names(self, names):
        return _PerGroup([int(n[2:-1]) for n in names])

    def design(self, runs):
        X = super().design(runs)
        X["onehot"] = (X["grp"][:, None] == np.array(self.groups)[None, :]).astype(float)
        return X

    def log_predict(self, theta, X):
        return np.asarray(theta) @ X["onehot"].T


def test_fit_calls_specialize_for_any_law():
    df = pd.DataFrame({"N": [1.0] * 6, "grp": [1, 1, 2, 2, 5, 5], "loss": np.exp([0.1, 0.1, 0.2, 0.2, -0.3, -0.3])})
    res = sl.fit(df, law=_PerGroup())
    assert list(res.params) == ["c[1]", "c[2]", "c[5]"]
    np.testing.assert_allclose(list(res.params.values()), [0.1, 0.2, -0.3], atol=1e-8)
    np.testing.assert_allclose(_PerGroup().predict(res.params, df), df["loss"], rtol=1e-8)
