"""compare: AIC/BIC from the summed objective, a shared held-out split, the true law wins."""

import math

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.trust.compare import compare, information_criteria, parse_laws
from scalinglaws.data.errors import InputError
from scalinglaws.fitting.synthetic import grid, simulate

CHEN = sl.get_law("chen-qat").presets["chen2025"].values
FIT = dict(starts=64, seed=0)


def chen_by_hand(p, N, D, G=None):
    base = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if G is None:
        return base
    return base + p["k"] * D ** p["gamma_D"] * math.log2(G) ** p["gamma_G"] / N ** p["gamma_N"]


@pytest.fixture(scope="module")
def chen_runs():
    rows = []
    for N in (74e6, 145e6, 297e6, 595e6, 1.2e9):
        for D in (10e9, 20e9, 50e9, 100e9):
            rows.append(dict(N=N, D=D, w_bits=16, a_bits=16, loss=chen_by_hand(CHEN, N, D)))
            for G in (32, 64, 128, 256):
                rows.append(dict(N=N, D=D, w_bits=4, a_bits=4, group_size=G, loss=chen_by_hand(CHEN, N, D, G)))
    df = pd.DataFrame(rows)
    df["loss"] *= np.exp(np.random.default_rng(0).normal(0.0, 1e-3, len(df)))
    return sl.load_runs(df)


def test_information_criteria_equal_the_gaussian_ones_for_mse():
    runs = sl.load_runs(simulate("chinchilla", {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37},
                                 grid(np.geomspace(3e7, 3e9, 5), np.geomspace(1e9, 1e11, 5)), noise=0.003, seed=2))
    fit = sl.fit(runs, law="chinchilla", loss="mse", **FIT)
    p = fit.params
    r = np.log(runs["loss"]) - np.log(p["E"] + p["A"] / runs["N"] ** p["alpha"] + p["B"] / runs["D"] ** p["beta"])
    n, k = len(r), 5
    sigma2 = np.sum(r ** 2) / n  # maximum-likelihood noise variance
    loglik = -0.5 * n * (np.log(2 * np.pi * sigma2) + 1)
    ic = information_criteria(fit.objective, n, k)
    assert ic["aic"] == pytest.approx(-2 * loglik + 2 * (k + 1), rel=1e-6)
    assert ic["bic"] == pytest.approx(-2 * loglik + (k + 1) * np.log(n), rel=1e-6)


def test_compare_picks_the_true_law(chen_runs):
    c = compare(chen_runs, "chinchilla,chen-qat", **FIT)
    assert c.split == "N >= 1200000000.0"
    assert c.winners == {"objective": "chen-qat", "aic": "chen-qat", "bic": "chen-qat",
                         "heldout_mean_abs_error": None}
    # chen-qat's own held-out check cannot tell (w_bits = a_bits on every run): its held-out error, however
    # low, names no winner
    assert c.entry("chen-qat").heldout.outcome == "INCONCLUSIVE"
    assert c.verdicts["heldout_mean_abs_error"].startswith("cannot tell: the held-out check of chen-qat")
    chen, chin = c.entry("chen-qat"), c.entry("chinchilla")
    assert chen.fit.n_runs == chin.fit.n_runs == 100 and chen.comparable and chin.comparable
    assert chin.criteria["aic"] - chen.criteria["aic"] > 10  # not a near tie
    # the held-out split is the same for both laws: the 20 runs of the largest size
    assert chen.heldout.n_test == chin.heldout.n_test == 20
    assert chen.heldout.errors["mean_abs_error"] < chin.heldout.errors["mean_abs_error"]
    # AIC and BIC follow from each law's own objective and parameter count
    for e in (chen, chin):
        ic = information_criteria(e.fit.objective, 100, len(e.fit.params))
        assert e.criteria == pytest.approx(ic)
    d = c.to_dict()
    assert {x["law"] for x in d["laws"]} == {"chinchilla", "chen-qat"}


def test_a_law_that_cannot_be_fitted_is_listed_not_fatal(chen_runs):
    # capybara needs an exp_bits column this table lacks
    c = compare(chen_runs, ["chinchilla", "capybara"], holdout="", **FIT)
    kp = c.entry("capybara")
    assert kp.fit is None and "exp_bits" in kp.error
    assert c.winners["aic"] == "chinchilla" and c.split is None
    assert any("no held-out check" in n for n in c.notes)


def test_compare_errors(chen_runs):
    with pytest.raises(InputError, match="unknown law 'nosuch'"):
        parse_laws("chinchilla,nosuch")
    with pytest.raises(InputError, match="at least one law"):
        parse_laws(" , ")
    with pytest.raises(InputError, match="selects no runs"):
        compare(chen_runs, "chinchilla", holdout="N > 1e15", **FIT)
    with pytest.raises(InputError, match="no law could be fitted"):
        compare(chen_runs, "capybara", **FIT)


def test_one_law_written_twice_ties_on_every_measure():
    # frantar-eff on 16-bit runs is the Chinchilla law with the same five parameters: the data cannot
    # tell them apart, and no measure may say otherwise
    runs = sl.load_runs(simulate("chinchilla", {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37},
                                 grid(np.geomspace(3e7, 3e9, 5), np.geomspace(1e9, 1e11, 4)), noise=0.005, seed=1))
    c = compare(runs, "chinchilla,frantar-eff", **FIT)
    a, b = c.entry("chinchilla"), c.entry("frantar-eff")
    assert a.fit.objective == pytest.approx(b.fit.objective, rel=1e-9)
    assert c.winners == {m: None for m in c.winners}
    assert all(c.label(m) == "tie" for m in c.winners), c.verdicts
    assert "within 2 units" in c.verdicts["aic"] and "same objective" in c.verdicts["objective"]
    assert "one run's noise" in c.verdicts["heldout_mean_abs_error"]
    d = c.to_dict()
    assert d["labels"]["bic"] == "tie" and d["ties"]["aic"] == 2.0


def _entry(law, objective, aic, outcome="PASS", mae=0.01, noise=0.001, observed=2.0):
    from scalinglaws.trust.compare import LawEntry
    from types import SimpleNamespace
    fit = SimpleNamespace(objective=objective, n_runs=20, params={}, fixed={})
    held = SimpleNamespace(outcome=outcome, errors={"mean_abs_error": mae}, noise=noise, n_test=4,
                           runs=pd.DataFrame({"observed": [observed] * 4}))
    return LawEntry(law=law, fit=fit, criteria={"aic": aic, "bic": aic}, heldout=held)


def test_a_measure_names_a_winner_only_beyond_its_stated_margin():
    from scalinglaws.trust.compare import TIE_IC, _winners
    # AIC 1.9 apart: a tie; 2.1 apart: a winner (Burnham & Anderson's 2 units)
    w, _, v = _winners([_entry("chinchilla", 1.0, 10.0), _entry("kaplan", 1.1, 10.0 + TIE_IC - 0.1)])
    assert w["aic"] is None and w["bic"] is None and v["aic"].startswith("tie")
    w, _, v = _winners([_entry("chinchilla", 1.0, 10.0), _entry("kaplan", 1.1, 10.0 + TIE_IC + 0.1)])
    assert w["aic"] == w["bic"] == "chinchilla" and w["objective"] == "chinchilla"
    # objectives 1e-7 apart relative: the same optimum, a tie; 1e-5 apart: a winner
    w, _, _ = _winners([_entry("chinchilla", 1.0, 10.0), _entry("kaplan", 1.0 + 1e-7, 20.0)])
    assert w["objective"] is None and w["aic"] == "chinchilla"
    w, _, _ = _winners([_entry("chinchilla", 1.0, 10.0), _entry("kaplan", 1.0 + 1e-5, 20.0)])
    assert w["objective"] == "chinchilla"
    # held-out errors: one run's noise is noise x the mean observed loss in log space (0.001 x 2.0 = 0.002)
    w, _, v = _winners([_entry("chinchilla", 1.0, 10.0, mae=0.010), _entry("kaplan", 2.0, 20.0, mae=0.0119)])
    assert w["heldout_mean_abs_error"] is None and "0.002" in v["heldout_mean_abs_error"]
    w, _, _ = _winners([_entry("chinchilla", 1.0, 10.0, mae=0.010), _entry("kaplan", 2.0, 20.0, mae=0.0121)])
    assert w["heldout_mean_abs_error"] == "chinchilla"
    w, _, _ = _winners([_entry("chinchilla", 1.0, 10.0, mae=0.010), _entry("kaplan", 2.0, 20.0, mae=0.0121)],
                       space="linear")
    assert w["heldout_mean_abs_error"] == "chinchilla"  # noise 0.001 as it is
    # a held-out check that cannot tell makes the held-out error say nothing, however large the gap
    w, _, v = _winners([_entry("chinchilla", 1.0, 10.0, mae=0.01),
                        _entry("kaplan", 2.0, 20.0, mae=0.5, outcome="INCONCLUSIVE")])
    assert w["heldout_mean_abs_error"] is None and v["heldout_mean_abs_error"].startswith("cannot tell")


def test_aic_and_bic_cannot_tell_for_a_law_fitted_to_too_few_runs():
    from scalinglaws.trust.compare import _winners
    a, b = _entry("chinchilla", 1.0, 10.0), _entry("kaplan", 2.0, 40.0)
    b.fit.params = {k: 1.0 for k in "abcd"}
    a.fit.n_runs = b.fit.n_runs = 6        # 6 runs for kaplan's 4 free parameters: fewer than 4 + 3
    w, _, v = _winners([a, b])
    assert w["aic"] is None and w["bic"] is None
    assert v["aic"].startswith("cannot tell: kaplan has fewer runs than free parameters + 3")
    a.fit.n_runs = b.fit.n_runs = 7        # 4 + 3: the criterion speaks (30 units apart)
    w, _, v = _winners([a, b])
    assert w["aic"] == "chinchilla" and "(ties: within 2)" in v["aic"]
