"""Bootstrap intervals: coverage on synthetic data, clustering, storage, intervals of derived quantities."""

import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import scalinglaws as sl
from scalinglaws.data.errors import OptionError
from scalinglaws.trust.bootstrap import resample_weights
from scalinglaws.fitting.synthetic import grid, simulate
from scalinglaws.fitting.api import planner_method

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def _runs(seed, noise=0.01):
    return simulate("chinchilla", TRUTH, grid(np.geomspace(5e7, 5e9, 5), np.geomspace(1e9, 3e11, 5)),
                    noise=noise, seed=seed)


def test_95_percent_intervals_cover_the_truth_in_most_repetitions():
    """40 seeded repetitions: the 95% intervals of alpha, beta and E cover the true values >= 85% of the time."""
    hits = {k: 0 for k in ("E", "alpha", "beta")}
    reps = 40
    for seed in range(reps):
        runs = _runs(seed)
        res = sl.fit(runs, law="chinchilla", loss="mse", starts=48, seed=seed)
        ci = sl.bootstrap(res, runs, n=200, seed=seed).intervals()
        for k in hits:
            hits[k] += ci[k][0] <= TRUTH[k] <= ci[k][1]
    for k, h in hits.items():
        assert h / reps >= 0.85, (k, h)


def test_weights_resample_runs_or_whole_clusters():
    runs = _runs(0)
    W = resample_weights(runs, 500, seed=1)
    assert W.shape == (500, len(runs)) and (W.sum(1) == len(runs)).all()
    assert W.mean() == pytest.approx(1.0, rel=0.01)
    Wc = resample_weights(runs, 200, cluster="N", seed=1)
    for N in runs["N"].unique():  # runs of one model size are drawn together
        cols = Wc[:, (runs["N"] == N).to_numpy()]
        assert (cols == cols[:, :1]).all()
    assert (Wc.sum(1) == len(runs)).all()  # 5 sizes of 5 runs each: 5 clusters drawn
    assert np.array_equal(resample_weights(runs, 10, seed=3), resample_weights(runs, 10, seed=3))


def test_bootstrap_is_reproducible_stored_and_independent_of_workers(tmp_path):
    runs = _runs(1)
    res = sl.fit(runs, law="chinchilla", starts=64)
    a = sl.bootstrap(res, runs, n=150, seed=7, n_jobs=1)   # in this process
    b = sl.bootstrap(res, runs, n=150, seed=7, n_jobs=3)   # 3 batches in 3 worker processes
    assert a.extra["bootstrap"]["samples"] == b.extra["bootstrap"]["samples"]
    assert a.extra["bootstrap"]["path"] == b.extra["bootstrap"]["path"]
    with pytest.raises(OptionError, match="n_jobs must be a whole number >= 1, got 0"):
        sl.bootstrap(res, runs, n=10, n_jobs=0)
    assert a.intervals() == b.intervals()
    lo, hi = a.intervals()["alpha"]
    assert lo < res.params["alpha"] < hi
    a.save(tmp_path / "fit.json")
    back = sl.load_fit(tmp_path / "fit.json")
    assert back.intervals().keys() == a.intervals().keys()
    for k, (l, h) in a.intervals().items():
        assert back.intervals()[k] == pytest.approx((l, h), rel=1e-9)
    assert json.loads((tmp_path / "fit.json").read_text())["extra"]["bootstrap"]["n"] == 150
    assert back.extra["bootstrap"]["path"] == a.extra["bootstrap"]["path"]


def test_refit_of_each_resample_is_its_weighted_optimum():
    """The batch refit equals a separate weighted multi-start fit of the same resample."""
    runs = _runs(2)
    res = sl.fit(runs, law="chinchilla")
    boot = sl.bootstrap(res, runs, n=3, seed=0)
    W = resample_weights(runs, 3, seed=0)
    for k, row in enumerate(boot.extra["bootstrap"]["samples"]):
        ref = sl.fit(runs, law="chinchilla", weights=W[k])
        for name, v in zip(res.params, row):
            assert v == pytest.approx(ref.params[name], rel=1e-4), name


def test_prediction_and_planner_intervals_bracket_the_point_answer():
    runs = _runs(3)
    res = sl.bootstrap(sl.fit(runs, law="chinchilla", starts=64), runs, n=200, seed=0)
    conf = sl.predict_interval(res, {"N": [1e8, 7e10], "D": [2e10, 1.4e12]})
    pred = sl.predict_interval(res, {"N": [1e8, 7e10], "D": [2e10, 1.4e12]}, kind="prediction")
    assert (conf["low"] < conf["pred"]).all() and (conf["pred"] < conf["high"]).all()
    # far extrapolation is less certain than interpolation; a new run is less certain than the curve
    width = conf["high"] - conf["low"]
    assert width[1] > width[0]
    assert (pred["high"] - pred["low"] >= width - 1e-12).all()
    method = planner_method(res, "compute", {"flops": 1e23})
    ci = sl.plan_interval(res, method)
    point = method(res.params)
    assert ci["N_opt"][0] < point["N_opt"] < ci["N_opt"][1]


def test_cli_bootstrap_predict_and_optimal_show_intervals(cli, tmp_path):
    runs = _runs(4)
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    out = tmp_path / "fit.json"
    code, stdout, err = cli("fit", path, "--bootstrap", 100, "--cluster", "N", "--starts", 64, "--out", out)
    assert code == 0, err
    assert "95% low" in stdout and "resamples of clusters by N" in stdout
    p = json.loads(out.read_text())["extra"]["bootstrap"]["path"]
    assert (f"{p['n']} refitted again from jittered starts: {p['probed']} pairs converged, {p['differ']} ended at "
            f"another optimum, {p['lower']} at a lower one") in " ".join(stdout.split())
    code, stdout, err = cli("predict", out, "--N", "70B", "--D", "1.4T", "--json")
    rec = json.loads(stdout)["predictions"][0]
    assert rec["loss_low"] < rec["loss_pred"] < rec["loss_high"]
    code, stdout, err = cli("optimal", "compute", out, "--flops", "1e23", "--json")
    ans = json.loads(stdout)
    assert ans["intervals"]["N_opt"][0] < ans["N_opt"] < ans["intervals"]["N_opt"][1]
    assert "flops" not in ans["intervals"]


@pytest.mark.parametrize("args,message", [
    (["--bootstrap", "1"], "--bootstrap must be"),
    (["--cluster", "N"], "--cluster applies to --bootstrap"),
    (["--bootstrap", "10", "--cluster", "nope"], "--cluster nope: no such column"),
    (["--bootstrap", "10", "--level", "1.5"], "--level must be between 0 and 1"),
])
def test_cli_bootstrap_bad_options(cli, tmp_path, args, message):
    path = tmp_path / "runs.csv"
    _runs(5).to_csv(path, index=False)
    code, out, err = cli("fit", path, "--starts", 16, *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_predict_level_needs_a_bootstrapped_fit(cli):
    code, out, err = cli("predict", "hoffmann2022", "--N", "1B", "--D", "20B", "--level", "0.9")
    assert code == 2 and "--level applies to a bootstrapped fit" in err


def test_a_bootstrap_without_samples_gives_no_intervals(cli, tmp_path):
    runs = _runs(6)
    res = sl.fit(runs, law="chinchilla", starts=16)
    res.extra["bootstrap"] = {"n": 10, "level": 0.95, "samples": [], "n_failed": 10,
                              "intervals": {k: [float("nan"), float("nan")] for k in res.params}}
    res.save(tmp_path / "fit.json")
    assert sl.load_fit(tmp_path / "fit.json").intervals() == {}
    code, out, err = cli("predict", tmp_path / "fit.json", "--N", "1B", "--D", "20B", "--json")
    assert code == 0, err
    assert "loss_low" not in json.loads(out)["predictions"][0]


def test_refits_that_do_not_converge_are_said_in_a_warning():
    """Refits left out of the intervals narrow them: the fit says how many, as a warning."""
    from scalinglaws.fitting.synthetic import simulate
    params, _ = sl.get_law("kumar-unified").example()
    # PTQ to 3 bits and more, training in 4 bits and more: the PTQ term is near the 0.5% noise, and
    # C_w is not pinned down (its profile interval reaches its upper bound)
    train = ([(16, 16, 16), (8, 8, 8), (6, 6, 6)] + [(w, 16, 16) for w in (4, 6)]
             + [(16, a, 16) for a in (5, 6, 8)] + [(16, 16, k) for k in (4, 5, 6)])
    rows = [(N, N * t, *c, P) for N in (1e8, 1e9, 1e10) for t in (10, 40, 160) for c in train
            for P in (16, 3, 4, 5, 7) if P >= 16 or P < min(c)][:300]
    table = simulate("kumar-unified", params, pd.DataFrame(rows, columns=["N", "D", "w_bits", "a_bits",
                                                                          "kv_bits", "ptq_bits"]), seed=2)
    fit = sl.fit(table, law="kumar-unified")
    boot = sl.bootstrap(fit, table, n=60, seed=0)
    failed = boot.extra["bootstrap"]["n_failed"]
    warned = [w for w in boot.warnings if w["code"] == "bootstrap_failed"]
    assert failed > 0 and len(warned) == 1
    assert warned[0]["message"].startswith(f"{failed} of 60 bootstrap refits did not converge")
    runs = str(Path(__file__).resolve().parents[1] / "data" / "synthetic_chinchilla.csv")
    clean = sl.bootstrap(sl.fit(runs), runs, n=60, seed=0)
    assert clean.extra["bootstrap"]["n_failed"] == 0
    assert not [w for w in clean.warnings if w["code"] == "bootstrap_failed"]


def test_an_identifying_design_has_no_failed_refit():
    """kumar-unified's example design (PTQ to 2 bits, training in 3) pins all 18 parameters: unlike the
    design above, no refit wanders off."""
    from scalinglaws.fitting.synthetic import example_table
    _, table = example_table("kumar-unified", rows=300, seed=2)
    boot = sl.bootstrap(sl.fit(table, law="kumar-unified"), table, n=60, seed=0)
    assert boot.extra["bootstrap"]["n_failed"] == 0
    assert not [w for w in boot.warnings if w["code"] == "bootstrap_failed"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_does_not_inherit_a_held_derivatives_lock():
    """Bootstrap workers are forked: a lock another thread held at the fork would never be released
    in the child, and a worker generating a law's code would wait forever."""
    from scalinglaws.laws import derive
    held, release = threading.Event(), threading.Event()

    def hold():
        with derive._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the lock must be free here
            os._exit(0 if derive._lock.acquire(timeout=5) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join()
    assert os.WEXITSTATUS(status) == 0


def test_the_command_line_takes_jobs_and_the_numbers_do_not_depend_on_it(cli, tmp_path):
    runs = str(Path(__file__).resolve().parents[1] / "data" / "synthetic_chinchilla.csv")
    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"fit{jobs}.json"
        code, _, err = cli("fit", runs, "--starts", "64", "--bootstrap", "100", "--jobs", jobs, "--out", out)
        assert code == 0, err
        outs.append(json.loads(out.read_text())["extra"]["bootstrap"]["samples"])
    assert outs[0] == outs[1] and len(outs[0]) > 90
    code, _, err = cli("fit", runs, "--jobs", "0")
    assert code == 2 and err.strip().splitlines() == ["error: --jobs must be a whole number >= 1, got 0"]


def test_refits_starting_with_irls_reach_the_exact_start_refits_optima_in_fewer_steps(monkeypatch):
    """The bootstrap's refits (IRLS first, exact steps after ``REFIT_SWITCH``) end where refits that take exact
    steps from the start end, objective for objective, and take fewer steps on an 18-parameter law."""
    import warnings

    import scalinglaws.trust.bootstrap as bs
    from scalinglaws.fitting.fitter import minimize_multistart
    from scalinglaws.fitting.problem import Problem
    from scalinglaws.fitting.synthetic import example_table
    from scalinglaws.trust.bootstrap import REFIT_SWITCH

    _, table = example_table("kumar-unified", rows=300, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sl.fit(table, law="kumar-unified")
    prob = Problem.from_fit(res, table)
    W = resample_weights(prob.table, 64, seed=0)
    x0 = prob.law.to_internal(res.params)
    starts = np.repeat(x0[None], len(W), 0)
    common = dict(free=prob.free, weights=W)
    exact = minimize_multistart(prob.model, prob.y, starts, prob.lower, prob.upper, prob.loss, newton=True, **common)
    irls = minimize_multistart(prob.model, prob.y, starts, prob.lower, prob.upper, prob.loss, switch=REFIT_SWITCH,
                               **common)
    assert exact.converged.all() and irls.converged.all()
    np.testing.assert_allclose(irls.funs, exact.funs, rtol=1e-9)
    assert irls.n_iter.sum() < 0.9 * exact.n_iter.sum(), (irls.n_iter.sum(), exact.n_iter.sum())
    # and these are the steps bootstrap's refits take
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return minimize_multistart(*args, **kwargs)
    monkeypatch.setattr(bs, "minimize_multistart", spy)
    sl.bootstrap(res, table, n=8, seed=0, n_jobs=1)
    assert len(calls) == 2 and all(c.get("switch") == REFIT_SWITCH and not c.get("newton") for c in calls)
    # one batch of 8 refits from the optimum; then the path probe: the same 8 resamples from jittered starts
    np.testing.assert_array_equal(calls[0]["weights"], calls[1]["weights"])


def _pairs(res, table, n):
    """Objectives and end points of refits of ``n`` resamples (seed 0), from ``res``'s optimum and from the
    probe's jittered starts, computed here directly with the fitter."""
    from scalinglaws.fitting.fitter import minimize_multistart
    from scalinglaws.fitting.problem import Problem
    from scalinglaws.trust.bootstrap import REFIT_SWITCH, probe_starts

    prob = Problem.from_fit(res, table)
    W = resample_weights(prob.table, n, seed=0)
    x0 = prob.law.to_internal(res.params)
    starts = probe_starts(prob, x0, n, seed=0)
    # the probe starts near the optimum, about 1% of each parameter's size (at least 1) away
    size = np.maximum(np.abs(x0), 1.0)
    assert (starts != x0).any(1).all() and np.abs(starts - x0).max() < 0.06 * size.max()
    out = [minimize_multistart(prob.model, prob.y, X0, prob.lower, prob.upper, prob.loss, free=prob.free, weights=W,
                               switch=REFIT_SWITCH) for X0 in (np.repeat(x0[None], n, 0), starts)]
    return [(o.funs, o.xs, o.converged) for o in out]


def test_the_bootstrap_says_when_its_refits_depend_on_where_they_start():
    """A law whose resampled objectives have several optima near the fit's (Huber's delta far below the
    residuals): refits from jittered starts end elsewhere than those from the optimum, some lower, counted
    as computed here directly, and the fit is warned, with the delta advice; the same table fitted by least
    squares is not, though its probe starts as far away."""
    from scalinglaws.fitting.synthetic import example_table
    from scalinglaws.trust.bootstrap import PATH_RTOL, PATH_XTOL, SHIFT_WARN

    _, table = example_table("ouyang-qid", rows=300, seed=0)
    res = sl.fit(table, law="ouyang-qid")
    out = sl.bootstrap(res, table, n=64, seed=0, n_jobs=1)
    path = out.extra["bootstrap"]["path"]
    (f0, x0, c0), (f1, x1, c1) = _pairs(res, table, 64)
    both = c0 & c1
    rel = np.abs(f0 - f1) / np.minimum(f0, f1)
    differ = both & (rel > PATH_RTOL) & (np.abs(x0 - x1).max(1) > PATH_XTOL)
    lower = differ & (f1 < f0)
    assert path["probed"] == both.sum() == 64
    assert path["differ"] == differ.sum() > 32              # most of them: 63 of 64 when written
    assert path["lower"] == lower.sum() >= 4                # 15 when written
    assert path["max_rel_diff"] == pytest.approx(rel[lower].max(), rel=1e-9)
    assert path["max_shift"] >= SHIFT_WARN
    msgs = [w["message"] for w in out.warnings if w["code"] == "bootstrap_path_dependent"]
    assert len(msgs) == 1 and f"{path['differ']} of 64 resamples" in msgs[0] and "--loss mse" in msgs[0]
    # the probe only checks: the samples are those of the bootstrap without it
    assert out.extra["bootstrap"]["samples"] == sl.bootstrap(res, table, n=64, seed=0, probe=0).extra["bootstrap"]["samples"]

    mse = sl.fit(table, law="ouyang-qid", loss="mse")
    out = sl.bootstrap(mse, table, n=64, seed=0, n_jobs=1)
    (f0, x0, c0), (f1, x1, c1) = _pairs(mse, table, 64)
    assert c0.all() and c1.all() and np.abs(x0 - x1).max() < 1e-6   # from starts ~1% apart, the same ends
    assert out.extra["bootstrap"]["path"]["differ"] == 0
    assert not [w for w in out.warnings if w["code"] == "bootstrap_path_dependent"]


def test_a_bootstrap_whose_refits_agree_has_no_path_warning():
    """Chinchilla's refits end at the same optimum whichever start near the fit's they take: no warning, and a
    bootstrap of fewer resamples than the probe probes them all; so does a noise-free fit, whose objectives
    (about 1e-23) are all rounding."""
    from scalinglaws.fitting.synthetic import example_table

    _, table = example_table("chinchilla", rows=300, seed=1)
    res = sl.fit(table, law="chinchilla")
    out = sl.bootstrap(res, table, n=20, seed=0, n_jobs=1)
    path = out.extra["bootstrap"]["path"]
    assert path["probed"] == 20 and path["differ"] == path["lower"] == 0 and path["max_shift"] == 0.0
    assert not [w for w in out.warnings if w["code"] == "bootstrap_path_dependent"]
    assert "path" not in sl.bootstrap(res, table, n=20, seed=0, n_jobs=1, probe=0).extra["bootstrap"]
    for bad in (-1, 1.5, True):
        with pytest.raises(OptionError, match="probe"):
            sl.bootstrap(res, table, n=20, probe=bad)
    _, exact = example_table("ouyang-qid", rows=300, seed=0, noise=0.0)
    fit = sl.fit(exact, law="ouyang-qid")
    assert fit.objective < 1e-15
    out = sl.bootstrap(fit, exact, n=64, seed=0, n_jobs=1)
    assert out.extra["bootstrap"]["path"]["differ"] == 0
    assert not [w for w in out.warnings if w["code"] == "bootstrap_path_dependent"]


def test_path_counts_pairs_at_other_optima_by_objective_and_end_point():
    """``_path`` on hand-made refits: a pair differs only where both its objectives (1e-6 relative) and its end
    points (1e-6) do; ``lower`` where the jittered refit ended lower; the shift is the largest move of a
    parameter as a fraction of the samples' ``level`` interval (a parameter with no spread moves nowhere)."""
    from scalinglaws.trust.bootstrap import _path

    f = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    fp = np.array([1.0 + 1e-9, 1.0 + 1e-3, 1.0 - 1e-3, 1.0 - 2e-3, 1.0 - 5e-3])
    x = np.zeros((5, 2))
    xp = np.array([[0.5, 0.0], [0.3, 0.0], [1e-9, 0.0], [0.2, 0.0], [0.1, 0.7]])
    both = np.array([True, True, True, True, False])
    samples = np.column_stack([np.linspace(0.0, 1.0, 101), np.full(101, 3.0)])   # the second is held
    p = _path(f, fp, x, xp, both, samples, 0.9, ["u", "v"])
    # pair 0: objectives agree; 1: higher; 2: end points agree (rounding); 3: lower; 4: not converged
    assert (p["n"], p["probed"], p["differ"], p["lower"]) == (5, 4, 2, 1)
    assert p["max_rel_diff"] == pytest.approx(2e-3 / (1 - 2e-3))
    assert p["max_shift"] == pytest.approx(0.2 / 0.9) and p["shift_param"] == "u"      # the 5%-95% width is 0.9
    p = _path(f, fp, x, xp, both, samples, 0.5, ["u", "v"])
    assert p["max_shift"] == pytest.approx(0.2 / 0.5)
    none = _path(f, fp, x, xp, np.zeros(5, bool), samples, 0.9, ["u", "v"])
    assert none["probed"] == 0 and none["max_shift"] is None and none["max_rel_diff"] is None


def test_the_path_warning_needs_a_lower_optimum_a_tenth_of_an_interval_away(monkeypatch):
    """The warning's gate, with the probe's counts set by hand: a lower optimum closer than SHIFT_WARN of the
    interval, or only higher ones, are recorded without a warning."""
    import scalinglaws.trust.bootstrap as bs

    runs = _runs(5)
    fit = sl.fit(runs, law="chinchilla", starts=16)
    base = {"n": 8, "probed": 8, "differ": 3, "lower": 0, "max_rel_diff": 0.0, "max_shift": 0.0,
            "shift_param": None, "rtol": bs.PATH_RTOL, "xtol": bs.PATH_XTOL}
    for lower, shift, warned in ((0, 0.0, False), (1, 0.9 * bs.SHIFT_WARN, False), (1, bs.SHIFT_WARN, True),
                                 (2, 0.5, True)):
        rec = dict(base, lower=lower, max_shift=shift, shift_param="alpha" if lower else None,
                   max_rel_diff=1e-3 if lower else 0.0)
        monkeypatch.setattr(bs, "_path", lambda *a, rec=rec: rec)
        out = sl.bootstrap(fit, runs, n=8, seed=0, n_jobs=1)
        assert out.extra["bootstrap"]["path"] == rec
        codes = [w["code"] for w in out.warnings]
        assert ("bootstrap_path_dependent" in codes) == warned, (lower, shift)


def test_the_probe_jitters_free_parameters_only(monkeypatch):
    """With a parameter held (``fix``), the probe's starts keep it and move the others by about 1% of their
    fitted-space value (at least 0.01), seeded: the same starts for the same seed, others for another."""
    import scalinglaws.trust.bootstrap as bs
    from scalinglaws.trust.bootstrap import samples_of

    runs = _runs(6)
    fit = sl.fit(runs, law="chinchilla", starts=16, fix={"beta": 0.3})
    calls = []

    def spy(*args, **kwargs):
        calls.append(np.array(args[2]))
        return minimize_multistart(*args, **kwargs)
    from scalinglaws.fitting.fitter import minimize_multistart
    monkeypatch.setattr(bs, "minimize_multistart", spy)
    out = sl.bootstrap(fit, runs, n=64, seed=3, n_jobs=1)
    x0, starts = calls[0][0], calls[1]
    beta = list(fit.params).index("beta")
    assert (starts[:, beta] == 0.3).all() and (calls[0] == x0).all()
    free = np.delete(np.arange(x0.size), beta)
    moved = (starts - x0)[:, free] / (bs.JITTER * np.maximum(np.abs(x0[free]), 1.0))
    assert 0.7 < moved.std() < 1.3 and np.abs(moved.mean()) < 0.3          # a standard normal, scaled
    assert {s["beta"] for s in samples_of(out)} == {0.3}
    calls.clear()
    sl.bootstrap(fit, runs, n=64, seed=3, n_jobs=1)
    again = calls[1]
    calls.clear()
    sl.bootstrap(fit, runs, n=64, seed=4, n_jobs=1)
    assert (again == starts).all() and not np.allclose(calls[1], starts)


def test_fit_prints_the_probes_counts_and_the_warning(cli, tmp_path):
    """On a table whose refits depend on where they start the command line names the counts (other optima,
    lower ones, the largest move against the threshold) and prints the warning."""
    from scalinglaws.fitting.synthetic import example_table

    _, table = example_table("ouyang-qid", rows=300, seed=0)
    path, out = tmp_path / "runs.csv", tmp_path / "fit.json"
    table.to_csv(path, index=False)
    code, stdout, err = cli("fit", path, "--law", "ouyang-qid", "--bootstrap", 64, "--out", out)
    assert code == 0, err
    p = json.loads(out.read_text())["extra"]["bootstrap"]["path"]
    assert p["lower"] < p["differ"]
    text = " ".join(stdout.split())
    assert (f"64 refitted again from jittered starts: {p['probed']} pairs converged, {p['differ']} ended at another "
            f"optimum, {p['lower']} at a lower one (moving {p['shift_param']} by up to {p['max_shift']:.3g} of its "
            f"interval's width; warned from 0.1)") in text
    assert "warning (bootstrap_path_dependent)" in text
