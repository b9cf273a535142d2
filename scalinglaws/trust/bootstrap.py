"""Bootstrap intervals: resample the runs, refit, and read percentiles.

:func:`bootstrap` draws ``n`` resamples of a fit's runs (seeded), refits the law to each
and stores the parameter samples and their percentile intervals in the fit
(``result.extra["bootstrap"]``, saved in ``fit.json``).  Resampling is by run, or by
cluster with ``cluster="N"``: the checkpoints of one model are not independent runs, so
whole model sizes are drawn with replacement.

How it is fast: a resample is a weighting of the same runs (how often each was drawn),
so all refits are one batch for the fitter, each row with its own weights, started at
the full fit's optimum (IRLS steps first, exact ones once a step gains less than
:data:`REFIT_SWITCH`).  Where a resample's objective has several optima near the full fit's
(measured on one law's example design: docs/trust.md), which one a refit ends at depends on its
steps: the first 64 resamples are refitted a second time from a start near the optimum to find out,
and the fit is warned where the two disagree.  Batches of 64 refits run in worker processes (forked, so nothing is pickled but the rows and the results): threads do not pay
here, the refits being many small numpy calls that hold the GIL between them (measured on
2 cores: threads 1.0-1.2x, processes 1.4-2x; ``benchmarks/fit_speed.py``).  Where fork is
not available or not safe (Windows, macOS) the batches run in threads.  The law's generated
code is loaded before the fork, and the generator's lock is renewed in each child (another
thread may hold it at the fork; tested), so a worker never waits on the parent's threads.
The batches have a fixed size whatever the number of workers, so the numbers do not depend on
the machine's core count.

Derived quantities get intervals the same way: :func:`predict_interval` pushes every
parameter sample through the law (confidence interval of the mean prediction) and, with
``kind="prediction"``, adds the fit's own residuals drawn at random (the spread of a new
run).  :func:`plan_interval` does it for a planner.
"""

from __future__ import annotations

import copy
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import OptionError
from scalinglaws.data.columns import as_table
from scalinglaws.fitting.problem import Problem
from scalinglaws.fitting import defaults
from scalinglaws.fitting.threads import one_blas_thread
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError
from scalinglaws.fitting import workers
from scalinglaws.fitting.fitter import load_code, minimize_multistart

#: refits per task: fixed, so that results do not depend on the number of workers
BATCH = 64
#: a refit starts from the full fit with IRLS steps and goes on with exact ones after its first step that
#: lowers the objective by less than this (relative).  Exact Huber steps from there see the curvature of
#: the runs inside ``delta`` only (with ``delta`` 1e-3 on log loss, few): they overshoot.  Steps per refit
#: (1,000 resamples of the laws' example designs, docs/fitter-speed.md): the 16- and 18-parameter laws 18.7-19.8 ->
#: 15.6-17.0, the others about the same; the slowest law's bootstrap 1.2x faster in one process, 1.37x in
#: two workers.  The grid fit's switch (1e-4) took more steps here (20-23).
REFIT_SWITCH = 1e-2
#: the first this many resamples are refitted a second time from a start near the fit's optimum, to test that
#: a refit's optimum does not depend on where it starts (``path`` in the result; a warning where it does)
PROBE = BATCH
#: the probe's starts: the fit's optimum moved by a seeded Gaussian jitter whose standard deviation is this
#: fraction of each free parameter's fitted-space value (its log for a log-scaled one), at least this itself
#: (0.01): an exponent of 0.3 moves by about 0.01, a scale A = e^6 by about 6%
JITTER = 1e-2
#: two refits of one resample ended at different optima where their objectives differ by more than PATH_RTOL
#: (relative) and their end points by more than PATH_XTOL (in the fitted space; the objectives alone would
#: count the rounding of a noise-free fit's objective, about 1e-23; two refits of one optimum both stop
#: within the fitter's ftol, 1e-13)
PATH_RTOL = 1e-6
PATH_XTOL = 1e-6
#: the fit is warned where a probe's refit found a lower optimum than the refit from the fit's optimum, moving a
#: parameter by at least this fraction of its interval's width.  On every law's example design (300 runs, 0.5%
#: noise, 3 seeds, 200 resamples) one law's probes found lower optima on 12-17 of 64 resamples, moving a
#: parameter by 0.70-1.24 widths; of the others one pair on one table did, by 0.06 (docs/trust.md)
SHIFT_WARN = 0.1


def _refit(token: int, rows: np.ndarray):
    """Refit the resamples ``rows`` of a running bootstrap: (rows, end points, objectives, converged).
    Rows from ``n`` on are the path probe: resample ``row - n`` refitted from the jittered start ``row - n``."""
    prob, W, x0, n, starts = workers.JOBS[token]
    probe = bool(rows[0] >= n)
    X0 = starts[rows - n] if probe else np.repeat(x0[None], rows.size, 0)
    with one_blas_thread():
        res = minimize_multistart(prob.model, prob.y, X0, prob.lower, prob.upper, prob.loss, free=prob.free,
                                  weights=W[rows - n if probe else rows], switch=REFIT_SWITCH)
    return rows, res.xs, res.funs, res.converged & np.isfinite(res.funs)


def probe_starts(prob: Problem, x0: np.ndarray, m: int, seed: int = 0) -> np.ndarray:
    """``m`` starts near the fit's optimum ``x0`` (fitted space) for the path probe: each free parameter moved
    by a seeded Gaussian jitter of ``JITTER`` times the larger of 1 and its fitted-space value's magnitude,
    clipped into the bounds."""
    rng = np.random.default_rng([int(seed), 1])      # a stream of its own: the resampling's is untouched
    step = JITTER * np.maximum(np.abs(x0), 1.0) * np.asarray(prob.free, float)
    return np.clip(x0 + rng.standard_normal((m, x0.size)) * step, prob.lower, prob.upper)


def resample_weights(table: pd.DataFrame, n: int, cluster: str | None = None, seed: int = 0) -> np.ndarray:
    """``(n, runs)`` bootstrap counts: how many times each run is drawn in each resample.

    Without ``cluster`` every resample draws ``len(table)`` runs with replacement; with
    ``cluster`` (a column, usually ``"N"``) it draws as many clusters as there are
    distinct values of that column, and a run counts as often as its cluster was drawn.
    """
    rng = np.random.default_rng(seed)
    m = len(table)
    if cluster is None:
        return rng.multinomial(m, np.full(m, 1.0 / m), size=n).astype(float)
    if cluster not in table.columns:
        raise OptionError("cluster", f"{cluster}: no such column (the runs have {', '.join(map(str, table.columns))})",
                          file=table.attrs.get("source"))
    _, group = np.unique(table[cluster].to_numpy(), return_inverse=True)
    k = group.max() + 1
    if k < 2:
        raise OptionError("cluster", f"{cluster}: the runs have one value of {cluster} only; "
                                     f"resampling clusters needs at least 2", file=table.attrs.get("source"))
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n).astype(float)
    return counts[:, group.reshape(-1)]


def bootstrap(result: FitResult, runs, n: int = 1000, *, cluster: str | None = None, seed: int = 0,
              level: float = defaults.LEVEL, n_jobs: int | None = None, mapping=None, probe: int = PROBE,
              progress: Callable[[float], None] | None = None) -> FitResult:
    """Percentile-bootstrap intervals for every parameter of ``result``.

    Parameters
    ----------
    result : FitResult
        The fit (from :func:`scalinglaws.fit`).
    runs : DataFrame or path
        The runs given to :func:`scalinglaws.fit` (its ``where`` and ``exclude_top`` are applied again).
    n : int
        Number of resamples.
    cluster : str, optional
        Resample whole groups of runs sharing this column's value (``"N"``: by model size).
    seed : int
        Seed of the resampling; the same seed gives the same intervals.
    level : float
        Interval coverage, e.g. 0.95 for the 2.5th-97.5th percentiles.
    n_jobs : int, optional
        Worker processes (default: the cores this process may use; 1: no workers, all in this process).
    probe : int
        How many of the resamples (the first ones) are refitted a second time, from a start near the fit's
        optimum, to test that the refits do not depend on where they start (see ``path`` below; 0: no
        test, and no ``path``).

    Returns a copy of ``result`` whose ``extra["bootstrap"]`` holds ``n``, ``cluster``,
    ``seed``, ``level``, ``samples`` (one row of public parameter values per converged
    resample), ``n_failed`` (resamples whose refit did not converge), ``intervals``
    (name -> [low, high]), ``residuals`` (the full fit's residuals in its fitted space,
    used for prediction intervals) and ``path``: the first ``min(n, probe)`` resamples are refitted a
    second time from the fit's optimum moved by a seeded jitter (:func:`probe_starts`), and ``path``
    says how many were (``n``), how many pairs both converged (``probed``), how many of those ended
    at different optima (``differ``: objectives more than ``rtol`` apart relative, end points more
    than ``xtol``), how many of those the probe ended lower (``lower``), and over those the largest
    relative difference of the objectives (``max_rel_diff``) and the largest move of a parameter
    between the two refits as a fraction of its interval's width (in the fitted space, so on the log
    scale for a log-scaled parameter; ``max_shift``, of ``shift_param``); None where no pair converged.
    Where any differ, the resampled objectives have several optima near the fit's and which one a refit reaches depends on where it starts; where a probe found
    a lower optimum that moves a parameter by at least :data:`SHIFT_WARN` of its interval's width, a
    ``bootstrap_path_dependent`` warning says so (the samples are those of the refits from the
    optimum either way).
    """
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise OptionError("n", f"(resamples) must be a whole number >= 2, got {n}")
    if not (0 < level < 1):
        raise OptionError("level", f"must be between 0 and 1, got {level}")
    if not (isinstance(probe, (int, np.integer)) and not isinstance(probe, bool) and probe >= 0):
        raise OptionError("probe", f"must be a whole number >= 0, got {probe}")
    prob = Problem.from_fit(result, runs, mapping)
    W = resample_weights(prob.table, int(n), cluster, seed)
    x0 = prob.law.to_internal(result.params)
    n, m = int(n), min(int(n), int(probe))
    starts = probe_starts(prob, x0, m, seed)
    X = np.empty((n + m, len(x0)))
    F = np.full(n + m, np.nan)
    ok = np.zeros(n + m, bool)
    batches = [np.arange(i, min(n, i + BATCH)) for i in range(0, n, BATCH)]
    batches += [np.arange(j, min(n + m, j + BATCH)) for j in range(n, n + m, BATCH)]
    workers.validate_jobs(n_jobs)
    n_workers = workers.workers_for(n_jobs, len(batches))
    with one_blas_thread():
        for rows, xs, fs, conv in workers.map_batches(_refit, (prob, W, x0, n, starts), batches, n_workers,
                                                      progress, lambda: load_code(prob.model, x0[None])):
            X[rows], F[rows], ok[rows] = xs, fs, conv
    Xp, okp = X[n:], ok[n:]
    X, ok = X[:n], ok[:n]
    path = _path(F[:m], F[n:], X[:m], Xp, ok[:m] & okp, X[ok], level, list(result.params)) if m else None
    samples = np.array([list(prob.law.to_public(x).values()) for x in X[ok]]).reshape(-1, len(x0))
    out = copy.deepcopy(result)
    out.extra = dict(out.extra or {})
    with np.errstate(all="ignore"):
        fitted = prob.model.value(x0[None])[0]
    out.extra["bootstrap"] = {
        "n": int(n), "cluster": cluster, "seed": int(seed), "level": float(level),
        "n_failed": int((~ok).sum()), "samples": samples.tolist(),
        "intervals": intervals(samples, list(result.params), level),
        "residuals": (prob.y - fitted).tolist(), **({"path": path} if path is not None else {}),
    }
    if path and path["lower"] and path["max_shift"] >= SHIFT_WARN:
        out.warnings = list(out.warnings) + [_path_warning(path, prob, prob.y - fitted)]
    failed = int((~ok).sum())
    if failed:
        # a refit that does not converge is usually wandering along a direction the data leave
        # flat; leaving it out narrows the intervals of exactly the parameters it moves
        out.warnings = list(out.warnings) + [{
            "code": "bootstrap_failed",
            "message": f"{failed} of {n} bootstrap refits did not converge and are left out of the intervals, "
                       f"which may then be too narrow for the parameters those refits move; the profile "
                       f"intervals (fit --profile) say which parameters the data cannot pin down"}]
    return out


#: a fit's warnings that make its bootstrap intervals less certain than they look
INTERVAL_CAVEATS = ("bootstrap_failed", "bootstrap_path_dependent")


def interval_caveats(result: FitResult) -> list[dict]:
    """The warnings of ``result`` that bear on its bootstrap intervals (``{"code", "message"}`` each): what a
    prediction or a plan with those intervals should say beside them."""
    return [w for w in result.warnings if w.get("code") in INTERVAL_CAVEATS]


def _path(f, f_probe, x, x_probe, both, samples, level, names) -> dict:
    """How the probe's refits (from jittered starts) compare with the same resamples' refits (from the optimum):
    objectives ``f``, end points ``x`` (fitted space), ``both``: the pairs whose two refits converged;
    ``samples``: every converged refit's end point, whose ``level`` intervals (fitted space) measure the shift."""
    f, f_probe, d = f[both], f_probe[both], np.abs(x - x_probe)[both]
    rel = np.abs(f - f_probe) / np.maximum(np.minimum(np.abs(f), np.abs(f_probe)), 1e-300)
    differ = (rel > PATH_RTOL) & (d.max(1, initial=0.0) > PATH_XTOL)
    lower = differ & (f_probe < f)                            # the refit from the optimum missed a better optimum
    none = None if not rel.size else 0.0
    out = {"n": int(both.size), "probed": int(both.sum()), "differ": int(differ.sum()), "lower": int(lower.sum()),
           "max_rel_diff": none, "max_shift": none, "shift_param": None, "rtol": PATH_RTOL, "xtol": PATH_XTOL}
    if lower.any():
        lo, hi = _band(samples, level)
        # (a parameter the refits agree on to rounding, or hold, has no interval to move in: no shift)
        shift = d[lower] / np.where(hi - lo > PATH_XTOL, hi - lo, np.inf)
        k = int(np.argmax(shift.max(0)))
        out.update(max_rel_diff=float(rel[lower].max()), max_shift=float(shift.max()), shift_param=names[k])
    return out


def _path_warning(path: dict, prob: Problem, residuals: np.ndarray) -> dict:
    msg = (f"the bootstrap refits depend on where they start: refitted a second time from the fit's optimum "
           f"moved by a seeded jitter ({100 * JITTER:g}% of each parameter's value, of its log for log-scaled "
           f"ones), {path['differ']} of {path['probed']} resamples ended at another optimum, {path['lower']} of "
           f"them at a lower one (objectives up to {100 * path['max_rel_diff']:.3g}% lower, {path['shift_param']} "
           f"up to {100 * path['max_shift']:.3g}% of its interval's width away, on the log scale if log-scaled), "
           f"so the resampled objectives have several optima near the fit's and the intervals reflect which one "
           f"a refit reached as well as the data")
    med = float(np.median(np.abs(residuals)))
    if prob.loss.kind == "huber" and prob.loss.delta < med:
        msg += (f"; Huber's delta ({prob.loss.delta:g}) is below most residuals (median |r| {med:.3g}), which "
                f"makes the objective nearly an absolute-error one, whose kinks leave many local optima: a larger "
                f"delta (--delta) or --loss mse removed this on the synthetic table measured (docs/trust.md)")
    return {"code": "bootstrap_path_dependent", "message": msg}


def intervals(samples: np.ndarray, names: list[str], level: float = defaults.LEVEL) -> dict[str, list[float]]:
    """Percentile intervals ``{name: [low, high]}`` of the columns of ``samples``."""
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0:
        return {k: [float("nan"), float("nan")] for k in names}
    lo, hi = _band(samples, level)
    return {k: [float(a), float(b)] for k, a, b in zip(names, lo, hi)}


def _band(values: np.ndarray, level: float):
    """The ``level`` percentile band of ``values`` along its first axis: (low, high)."""
    return np.percentile(values, 100 * np.array([(1 - level) / 2, (1 + level) / 2]), axis=0)


def samples_of(result: FitResult) -> list[dict[str, float]]:
    """The fit's bootstrap samples as parameter dicts (empty without a bootstrap)."""
    b = result.bootstrap
    names = list(result.params)
    return [dict(zip(names, row)) for row in b.get("samples") or []]


def sample_predictions(result: FitResult, table: pd.DataFrame) -> np.ndarray:
    """The prediction for every run of ``table`` under every bootstrap sample, shape (R, runs)."""
    law = result.law_obj
    theta = np.stack([law.to_internal(p) for p in samples_of(result)])
    with np.errstate(all="ignore"):
        return np.exp(law.log_predict(theta, law.design(table)))


def _level(result: FitResult, level: float | None) -> float:
    b = result.bootstrap
    if not b.get("samples"):
        raise InputError("this fit has no bootstrap samples: fit it with a bootstrap first (fit --bootstrap R, "
                         "or scalinglaws.bootstrap)")
    level = float(b.get("level", 0.95)) if level is None else float(level)
    if not (0 < level < 1):
        raise OptionError("level", f"must be between 0 and 1, got {level}")
    return level


def predict_interval(result: FitResult, runs, level: float | None = None, kind: str = "confidence",
                     seed: int = 0) -> pd.DataFrame:
    """Prediction with a bootstrap interval for each run: columns ``pred``, ``low``, ``high``.

    ``kind="confidence"``: percentiles of the prediction over the parameter samples (where
    the law's curve is).  ``kind="prediction"``: each sample's prediction also carries a
    residual of the fit drawn at random (seeded), so the interval covers a new run.
    """
    if kind not in ("confidence", "prediction"):
        raise OptionError("kind", f"must be 'confidence' or 'prediction', got {kind!r}")
    level = _level(result, level)
    law = result.law_obj
    table = as_table(runs, law.required_columns())
    preds = sample_predictions(result, table)
    if kind == "prediction":
        b = result.bootstrap
        res = np.asarray(b.get("residuals") or [0.0], dtype=float)
        draw = np.random.default_rng(seed).choice(res, size=preds.shape)
        preds = preds * np.exp(draw) if result.loss.get("space", "log") == "log" else preds + draw
    lo, hi = _band(preds, level)
    return pd.DataFrame({"pred": result.predict(table), "low": lo, "high": hi})


def plan_interval(result: FitResult, method: Callable[[Mapping[str, float]], dict],
                  level: float | None = None) -> dict[str, list[float]]:
    """Intervals of a planner's numeric outputs over the bootstrap samples.

    ``method(params) -> dict`` is the planner with its options bound.  Scalars give
    ``{key: [low, high]}``; a ``table`` of rows gives ``{"table[i].key": [low, high]}``.
    """
    level = _level(result, level)
    values: dict[str, list[float]] = {}
    for p in samples_of(result):
        try:
            out = method(p)
        except (InputError, ValueError, ArithmeticError):
            continue  # a sample where the planner has no answer (e.g. no crossing) adds nothing
        for k, v in _numbers(out):
            values.setdefault(k, []).append(v)
    q = [(1 - level) / 2, (1 + level) / 2]
    return {k: [float(x) for x in np.quantile(np.asarray(v, float), q)] for k, v in values.items()
            if np.isfinite(v).all()}


def _numbers(out: dict):
    for k, v in out.items():
        if isinstance(v, (bool, np.bool_)):
            continue
        if isinstance(v, (int, float, np.integer, np.floating)):
            yield k, float(v)
        elif k == "table" and isinstance(v, list):
            for i, row in enumerate(v):
                for kk, vv in row.items():
                    if isinstance(vv, (int, float, np.integer, np.floating)) and not isinstance(vv, bool):
                        yield f"table[{i}].{kk}", float(vv)


