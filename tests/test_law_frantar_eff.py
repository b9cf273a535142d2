"""frantar-eff: one effective-parameter multiplier per compression format (Frantar et al. 2025),
and the generic hooks for laws whose parameters depend on the data (Law.specialize,
Law.from_param_names)."""

import json

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import InputError, OptionError
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


# ------------------------------------------------------------ sparsity (a format of its own)
SPARSE_TRUE = {"E": 1.9, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.36,
               "eff[W4A16]": 0.9, "eff[W4A16S50]": 0.6, "eff[W16A16S50]": 0.85}
SPARSE_FORMATS = {"W16A16": (16, 16, 0.0), "W4A16": (4, 16, 0.0), "W16A16S50": (16, 16, 0.5),
                  "W4A16S50": (4, 16, 0.5)}


def sparse_table(p, Ns=(3e7, 1e8, 3e8), tpps=(5, 20, 80), sparsity_cells=True):
    """Noise-free runs of SPARSE_FORMATS by the paper's law written out by hand; dense rows leave
    the sparsity cell empty (empty = 0)."""
    rows = []
    for N in Ns:
        for t in tpps:
            for fmt, (w, a, s) in SPARSE_FORMATS.items():
                eff = 1.0 if fmt == "W16A16" else p[f"eff[{fmt}]"]
                loss = p["A"] * (N * eff) ** -p["alpha"] + p["B"] * (N * t) ** -p["beta"] + p["E"]
                rows.append(dict(N=N, D=N * t, loss=loss, w_bits=w, a_bits=a,
                                 **({"sparsity": s if s else ""} if sparsity_cells else {})))
    return pd.DataFrame(rows)


def test_format_keys_with_sparsity_and_their_inverse():
    from scalinglaws.laws.frantar_eff import parse_format_key
    assert format_key(16, 16, None, 0.5) == "W16A16S50"
    assert format_key(4, 16, None, 0.5) == "W4A16S50"
    assert format_key(16, 16, 64, 0.5) == "W16A16S50"      # a 16-bit format has no scales: no G
    assert format_key(4, 4, 32, 0.875) == "W4A4G32S87.5"
    assert format_key(4, 16, None, 0.0) == "W4A16"           # 0 sparsity is dense: no S
    assert format_key(4, 4, 32, 0.07) == "W4A4G32S7"         # 100 * 0.07 = 7.000000000000001 reads 7
    for key in ("W4A16", "W4A4G32", "W16A16S50", "W4A4G32S87.5", "W3.5A8G128"):
        cfg = parse_format_key(key)
        assert format_key(cfg["w_bits"], cfg["a_bits"], cfg.get("group_size"), cfg.get("sparsity", 0.0)) == key
    assert parse_format_key("W16A16S50") == {"w_bits": 16.0, "a_bits": 16.0, "sparsity": 0.5}
    with pytest.raises(InputError, match="not a key of the form"):
        parse_format_key("int4")


def test_sparse_formats_get_their_own_efficiency_and_16_bit_dense_rows_none():
    df = sl.load_runs(sparse_table(SPARSE_TRUE))
    assert list(df["sparsity"]) == [0.0, 0.0, 0.5, 0.5] * 9        # empty cells read as 0 (dense)
    law = FrantarEff.for_runs(df)
    assert law.formats == ("W4A16", "W4A16S50", "W16A16S50")      # ordered by bits, group, sparsity
    p = dict(SPARSE_TRUE)
    got = law.predict(p, df)
    np.testing.assert_allclose(got, df["loss"], rtol=1e-13)        # the hand-written law, row by row


def test_an_efficiency_is_the_fraction_of_a_dense_model_it_is_worth():
    """The paper's definition: N parameters in format C predict the loss of N eff(C) dense ones."""
    law = FrantarEff(["W16A16S50", "W4A16S50"])
    p = {k: v for k, v in SPARSE_TRUE.items() if k != "eff[W4A16]"}
    for key, (w, a, s) in (("W16A16S50", (16, 16, 0.5)), ("W4A16S50", (4, 16, 0.5))):
        N, D = 7e8, 1.4e10
        compressed = law.predict(p, {"N": N, "D": D, "w_bits": w, "a_bits": a, "sparsity": s})
        dense = law.predict(p, {"N": N * p[f"eff[{key}]"], "D": D})
        assert compressed[0] == pytest.approx(dense[0], rel=1e-14)


def test_a_combined_format_is_fitted_not_taken_as_the_product_of_its_parts():
    # truth where eff(W4A16S50) = 0.6 is NOT eff(W4A16) * eff(W16A16S50) = 0.765: the fit finds 0.6
    res = sl.fit(sl.load_runs(sparse_table(SPARSE_TRUE)), law="frantar-eff")
    assert res.converged
    for k, v in SPARSE_TRUE.items():
        assert res.params[k] == pytest.approx(v, rel=1e-6), k
    product = res.params["eff[W4A16]"] * res.params["eff[W16A16S50]"]
    assert abs(res.params["eff[W4A16S50]"] - product) > 0.1
    # a combination that was not fitted is refused even though both its parts were
    with pytest.raises(InputError, match=r"format W4A4S50 has no fitted efficiency.*not as the product"):
        res.predict({"N": 1e9, "D": 2e10, "w_bits": 4, "a_bits": 4, "sparsity": 0.5})


def test_absent_sparsity_column_means_dense_and_empty_cells_mean_zero():
    with_col = sl.load_runs(sparse_table(SPARSE_TRUE))
    dense_only = with_col[with_col["sparsity"] == 0]
    assert (FrantarEff.for_runs(dense_only.drop(columns="sparsity")).formats
            == FrantarEff.for_runs(dense_only).formats == ("W4A16",))


@pytest.mark.parametrize("cell,message", [
    ("50", "sparsity must be a fraction in \\[0, 1\\) \\(0.5 for 50% of the weights pruned\\), got 50"),
    ("1", "got 1$"), ("-0.1", "got -0.1$")])
def test_sparsity_out_of_range_is_refused_naming_file_row_and_column(cli, write, cell, message):
    text = "N,D,loss,w_bits,a_bits,sparsity\n1e8,2e9,3.1,4,16,\n1e8,2e9,3.2,16,16," + cell + "\n"
    p = write("sparse.csv", text)
    with pytest.raises(InputError, match=message) as err:
        sl.load_runs(p)
    assert str(err.value).startswith(f"{p}, data row 2 (line 3), column 'sparsity'")
    code, out, errtext = cli("fit", p, "--law", "frantar-eff")
    assert code == 2 and "column 'sparsity'" in errtext and "Traceback" not in errtext
    alias = "N,D,loss,w_bits,a_bits,weight_sparsity\n1e8,2e9,3.1,4,16,\n1e8,2e9,3.2,16,16,0.5\n"
    assert sl.load_runs(write("alias.csv", alias))["sparsity"].tolist() == [0.0, 0.5]


def test_cli_fit_with_and_without_the_sparsity_column(cli, tmp_path):
    table = sparse_table(SPARSE_TRUE)
    with_col, without = tmp_path / "with.csv", tmp_path / "without.csv"
    table.to_csv(with_col, index=False)
    table[table["sparsity"] == ""].drop(columns="sparsity").to_csv(without, index=False)
    code, out, err = cli("fit", with_col, "--law", "frantar-eff", "--json")
    assert code == 0, err
    got = json.loads(out)["params"]
    assert set(got) == set(SPARSE_TRUE)
    for k, v in SPARSE_TRUE.items():
        assert got[k] == pytest.approx(v, rel=1e-6), k
    code, out, err = cli("fit", without, "--law", "frantar-eff", "--json", "--out", tmp_path / "fit.json")
    assert code == 0, err
    got = json.loads(out)["params"]
    assert set(got) == {"E", "A", "B", "alpha", "beta", "eff[W4A16]"}
    assert got["eff[W4A16]"] == pytest.approx(0.9, rel=1e-6)


def test_compute_planner_in_a_sparse_format(cli, tmp_path):
    law = sl.get_law("frantar-eff")
    out = law.plan_compute(SPARSE_TRUE, flops=1e21, sparsity=0.5)
    assert out["eff"] == 0.85 and out["format"] == "W16A16S50"
    N, D = out["N_opt"], out["D_opt"]
    hand = SPARSE_TRUE["A"] * (N * 0.85) ** -0.34 + SPARSE_TRUE["B"] * D ** -0.36 + SPARSE_TRUE["E"]
    assert out["loss"] == pytest.approx(hand, rel=1e-12) and 6 * N * D == pytest.approx(1e21, rel=1e-12)
    # Chinchilla with A' = A eff^-alpha: the optimum moves to N_opt(dense) * eff^(-alpha/(alpha+beta))
    dense = law.plan_compute(SPARSE_TRUE, flops=1e21)
    assert N / dense["N_opt"] == pytest.approx(0.85 ** (-0.34 / (0.34 + 0.36)), rel=1e-9)
    with pytest.raises(InputError, match="format W2A16S50 has no fitted efficiency"):
        law.plan_compute(SPARSE_TRUE, flops=1e21, w_bits=2, sparsity=0.5)
    with pytest.raises(OptionError, match="sparsity must be a fraction < 1"):
        law.plan_compute(SPARSE_TRUE, flops=1e21, sparsity=1.0)
    with pytest.raises(OptionError, match="sparsity must be >= 0"):
        law.plan_compute(SPARSE_TRUE, flops=1e21, sparsity=-0.5)
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"law": "frantar-eff", "params": SPARSE_TRUE}))
    code, text, err = cli("optimal", "compute", fit, "--flops", "1e21", "--w-bits", "4", "--sparsity", "0.5", "--json")
    assert code == 0, err
    assert json.loads(text)["eff"] == 0.6


def test_plan_space_is_dense_and_the_fitted_formats():
    law = FrantarEff.for_runs(sl.load_runs(sparse_table(SPARSE_TRUE)))
    assert law.plan_space(SPARSE_TRUE) == [
        {"w_bits": 16.0, "a_bits": 16.0}, {"w_bits": 4.0, "a_bits": 16.0},
        {"w_bits": 4.0, "a_bits": 16.0, "sparsity": 0.5}, {"w_bits": 16.0, "a_bits": 16.0, "sparsity": 0.5}]
