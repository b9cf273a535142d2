"""Extrapolation checks: would the fit have predicted the runs it did not see?

Three ways to split a run table into runs to fit on and runs to predict:

* :func:`holdout` -- a condition picks the held-out runs (``"N>=1e9"``); the law is
  fitted on the rest and scored on them.
* :func:`leave_one_out` -- once per distinct value of a column (model size ``N`` or
  tokens ``D``): hold out the runs at that value and fit on the others, or, with
  ``forward=True``, on the *smaller* values only (the honest direction: predicting the
  next, larger size from the ones below it).

Errors are ``predicted - observed`` in the law's target (``loss``, nats per token, or
the degradation for laws that predict one).  Each check reports the mean and maximum
absolute error, the signed bias (the mean error: negative when the law predicts too
low a loss) and the root mean square error.

Verdict (the rule, also in docs/trust.md)
----------------------------------------
Each held-out run gets a **prediction interval** at ``level`` (default 95%) from the fit
on the other runs: the spread of its prediction over :data:`RESAMPLES` bootstrap refits
of those runs (the uncertainty of the law's parameters) combined with the noise of a
single run, ``s = 1.4826 * median(|r|)`` over the in-sample residuals ``r`` in the fitted
space (log loss by default) without the ``p`` smallest (a robust fit with a small Huber
delta passes through about ``p`` runs, one per free parameter): a median is not inflated
by a few badly fitted runs, and it is floored at 1e-4 so that a noise-free fit does not
turn rounding into failures; a target known only to a resolution (:meth:`Law.resolution
<scalinglaws.laws.base.Law.resolution>`: the best of a sweep's few points) adds that resolution to
``sd`` as well.  The interval is ``prediction +- t sd`` with ``t`` Student's
quantile for the ``n - p`` degrees of freedom of the residuals, as in a least-squares prediction
interval (both parts of ``sd`` scale with the noise level the fitted runs estimate).  With ``z``
the held-out run's error in units of ``sd``:

* **INCONCLUSIVE** when the fitted part cannot identify the law: fewer than ``p +``
  :data:`MARGIN` runs, inputs collinear in log space, an input with one value, an
  unidentified direction of the parameters, a parameter on a bound, or runs whose noise is
  not one level (the fit's own warnings, :mod:`scalinglaws.fitting.identifiability`: the
  intervals take one noise level for every run), a parameter whose profile interval
  (at the default level) is open or could not be computed, or a held-out run without a
  finite prediction; the reason is given.
* **FAIL** when any of three tests, each at :data:`ALPHA` (1%), says the held-out runs do not
  follow the fit: the count outside their intervals is improbable, or their mean error (in units
  of their intervals) is -- they lie on one side of their predictions together, as where a slope
  bends -- both probabilities simulated (:func:`null_stats`: the held-out runs share the fitted
  parameters' error and the noise level's); or one run is so far out that it is improbable even
  after a Bonferroni correction for the number of held-out runs (``|z| > t_(1 - ALPHA/(2m))``).
  The runs outside are listed, with how far out they are.
* **PASS** otherwise: the held-out runs sit inside their intervals about as often as the
  level says; it gives the smallest shift of every held-out run the rule would have FAILed
  (:func:`detectable_shift`), which says how much such a PASS means.

The mean error against the in-sample residual scale (``ratio``) is still reported, as
information: a few badly fitted in-sample runs inflate it, so it decides nothing.
``benchmarks/validate_calibration.py`` measures the rule on synthetic tables with known
truth (PASS rate where the law holds, FAIL rate where its slope changes at large N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from scalinglaws.data.errors import OptionError
from scalinglaws.data.runs import select, subset
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting import defaults
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError
from scalinglaws.laws import get_law
from scalinglaws.fitting.problem import filtered_table

#: the level of the prediction intervals behind a verdict
LEVEL = defaults.LEVEL
#: significance of each FAIL test (the count outside; the mean error, one side; the most extreme run,
#: Bonferroni-corrected): a law that holds FAILs on at most about three times this
ALPHA = 0.01
#: a check is inconclusive when the fitted part has fewer than free parameters + MARGIN runs
MARGIN = 3
#: bootstrap refits behind each prediction interval
RESAMPLES = 200
#: the fit warnings that make a check inconclusive
INCONCLUSIVE_CODES = ("underdetermined", "collinear_inputs", "one_value", "unidentified", "on_bound",
                      "noise_varies")
#: the rule, in one line (printed under every validation table)
RULE = (f"rule: FAIL when more held-out runs fall outside their {{level:.0%}} prediction intervals than is "
        f"plausible at {ALPHA:.0%}, or they lie on one side of their predictions together more than is plausible at "
        f"{ALPHA:.0%} (the runs share the parameters' error: both simulated from the bootstrap refits), or one is "
        f"beyond the Bonferroni {ALPHA:.0%} limit; INCONCLUSIVE when the fitted runs cannot identify the law "
        f"(too few runs, a fit warning such as noise that is not one level, or a parameter its profile does not "
        f"pin down) or a held-out run cannot be scored; PASS otherwise "
        f"(docs/trust.md)")
#: noise draws per bootstrap refit in the simulated count of runs outside (:func:`count_tail`)
DRAWS = 50
#: a fold is skipped when its training runs hold fewer distinct values of the split column
MIN_DISTINCT = 3


def target_name(law) -> str:
    """What a law's target is, in words (``loss``, ``degradation``, ``optimal QAT fraction``)."""
    return get_law(law).target_name


def residual_scale(obs: np.ndarray, pred: np.ndarray, n_params: int = 0) -> float:
    """Scale of in-sample residuals: ``sqrt(pi/2) * sum|obs - pred| / (n - n_params)``, floored (module doc)."""
    obs, pred = np.asarray(obs, float), np.asarray(pred, float)
    if not obs.size:
        return float("nan")
    dof = obs.size - n_params if obs.size > n_params else obs.size
    s = math.sqrt(math.pi / 2) * float(np.sum(np.abs(obs - pred))) / dof
    return max(s, 1e-4 * float(np.median(np.abs(obs))))


def errors_of(obs: np.ndarray, pred: np.ndarray) -> dict:
    """Mean and max absolute error, bias (mean of pred - obs) and RMSE."""
    e = np.asarray(pred, float) - np.asarray(obs, float)
    return {"mean_abs_error": float(np.mean(np.abs(e))), "max_abs_error": float(np.max(np.abs(e))),
            "bias": float(np.mean(e)), "rmse": float(np.sqrt(np.mean(e * e))),
            "mean_abs_rel_error": float(np.mean(np.abs(e) / np.abs(obs)))}


def predict_runs(result: FitResult, runs: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The rows of ``runs`` the law scores (after its ``prepare``; a target <= 0 is kept here, and a
    log-space check calls it unscorable), their observed target and prediction.

    A law's ``prepare`` may refuse a subset as a whole (a QAT law wants quantized rows
    to *fit*); the rows can still be predicted, so the subset is then used as it is.
    """
    law = get_law(result.law)
    try:
        table = law.prepare(runs)
    except InputError:
        table = runs
    law = result.law_obj
    obs = law.observed(table)
    try:
        pred = law.predict(result.params, table)
    except InputError as exc:
        raise InputError(f"cannot predict the held-out runs: {exc}") from None
    return table, obs, pred


def noise_scale(residuals: np.ndarray, n_params: int = 0) -> float:
    """Robust noise scale of one run: ``1.4826 * median(|r|)`` without the ``n_params`` smallest, floored at 1e-4."""
    r = np.sort(np.abs(np.asarray(residuals, float)))
    r = r[min(n_params, max(r.size - 1, 0)):]
    if not r.size:
        return float("nan")
    return max(1.4826 * float(np.median(r)), 1e-4)


def binomial_tail(k: int, m: int, p: float) -> float:
    """``P(K >= k)`` for K ~ Binomial(m, p)."""
    return float(sum(math.comb(m, j) * p ** j * (1 - p) ** (m - j) for j in range(k, m + 1)))


def null_counts(draws: np.ndarray, centre: np.ndarray, half: np.ndarray, noise: float, dof: int,
                seed: int = 0, per: int = DRAWS) -> np.ndarray:
    """How many held-out runs fall outside their intervals ``centre +- half`` in each of ``per`` seeded
    simulations per bootstrap refit, where every run's truth is that refit's prediction (a row of
    ``draws``, fitted space) and its observation adds independent Gaussian noise of sd ``noise``; both
    scaled by the noise level as it may really be, given that it was estimated with ``dof`` degrees of
    freedom (one factor ``sqrt(dof / chi2_dof)`` per simulation, shared by its runs, on the refit's
    departure from ``centre`` and on the noise: both scale with the noise level)."""
    return null_stats(draws, centre, half, noise, dof, seed, per)[0]


def null_stats(draws: np.ndarray, centre: np.ndarray, half: np.ndarray, noise: float, dof: int,
               seed: int = 0, per: int = DRAWS, extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The simulations of :func:`null_counts`, two statistics of each: the count of runs outside their
    intervals, and the mean of the runs' errors in units of their half-widths (``mean((sim - centre) /
    half)``: near 0 when the runs scatter around their predictions, far from it when they lie on one side).
    ``extra``: each run's further Gaussian error of known sd (the resolution of its observed target, not
    estimated from the residuals, so not scaled by the noise level's uncertainty), or None."""
    m = centre.size
    draws = draws[np.isfinite(draws).all(axis=1)]
    rng = np.random.default_rng([int(seed), 2])
    counts, means = [], []
    step = max(1, 2_000_000 // max(1, per * m))    # refits per chunk: arrays of at most ~16 MB
    for i in range(0, draws.shape[0], step):
        d = draws[i:i + step]
        f = np.sqrt(dof / rng.chisquare(dof, (d.shape[0], per, 1)))   # the noise level as it may really be
        sim = (d[:, None, :] - centre) * f + noise * f * rng.standard_normal((d.shape[0], per, m))
        if extra is not None:
            sim += extra * rng.standard_normal(sim.shape)
        counts.append((np.abs(sim) > half).sum(axis=-1).reshape(-1))
        means.append((sim / half).mean(axis=-1).reshape(-1))
    if not counts:
        return np.zeros(0, int), np.zeros(0)
    return np.concatenate(counts), np.concatenate(means)


def count_tail(k: int, draws: np.ndarray, centre: np.ndarray, half: np.ndarray, noise: float, dof: int,
               seed: int = 0, per: int = DRAWS) -> float:
    """``P(K >= k)`` for K the number of held-out runs outside their intervals, simulated by
    :func:`null_counts`.

    The held-out runs share the error of the fitted parameters and of the noise estimate, so their chances of
    falling outside are not independent: three runs at one extrapolated model size are all outside or all
    inside together far more often than a binomial says (which made the true law FAIL on small tables)."""
    counts = null_counts(draws, centre, half, noise, dof, seed, per)
    if not counts.size:
        raise ValueError("no refit has a finite prediction for every held-out run: nothing to simulate")
    return _share_at_least(counts, k)


def _share_at_least(counts: np.ndarray, k: int) -> float:
    """The share of simulated ``counts`` that reach ``k`` (1 for k <= 0)."""
    return 1.0 if k <= 0 else float((counts >= k).mean())


def detectable_shift(z: np.ndarray, sd: np.ndarray, q: float, count_fails: Callable[[int], bool],
                     z_limit: float, side_fails: Callable[[float], bool] | None = None,
                     max_doublings: int = 200) -> float | None:
    """The smallest shift (fitted space) of every held-out observation, up or down whichever needs more,
    that the rule would FAIL: a measure of what a PASS could have caught.  ``q``: the interval's half-width
    in sd; ``count_fails(k)``: whether k runs outside fail the count test; ``z_limit``: the Bonferroni
    limit; ``side_fails(mean z)``: whether the runs' mean error in sd fails the one-side test (None: no such
    test).  None where no shift within ``2**max_doublings`` sd would fail (or sd is not finite)."""
    if not (np.isfinite(z).all() and np.isfinite(sd).all() and (sd > 0).all()):
        return None

    def fails(shift):
        zs = z + shift / sd
        return bool((np.abs(zs) > z_limit).any() or count_fails(int((np.abs(zs) > q).sum()))
                    or (side_fails is not None and side_fails(float(np.mean(zs)))))

    out = 0.0
    for sign in (1.0, -1.0):
        hi = float(np.max(sd))
        for _ in range(max_doublings):
            if fails(sign * hi):
                break
            hi *= 2.0
        else:
            return None
        lo = 0.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if fails(sign * mid) else (mid, hi)
        out = max(out, hi)
    return out


@dataclass
class Validation:
    """One extrapolation check: a fit on some runs, scored on the others.

    Attributes
    ----------
    law : law name
    split : how the held-out runs were chosen (``"N>=1e9"``, ``"N == 1e9 (forward)"``)
    n_train, n_test : runs fitted on / held out (after the law's ``prepare``)
    errors : mean_abs_error, max_abs_error, bias, rmse, mean_abs_rel_error (target units)
    residual_scale : the in-sample residual scale (information only, see :func:`residual_scale`)
    level : level of the prediction intervals
    noise : robust noise scale of one run in the fitted space (:func:`noise_scale`)
    outcome : ``"PASS"``, ``"FAIL"`` or ``"INCONCLUSIVE"`` (the rule: module doc)
    reasons : why it is inconclusive (the fit's warnings), empty otherwise
    n_outside : held-out runs outside their intervals; ``p_count``: the probability of at least that
        count (:func:`count_tail`); ``p_extreme``: the Bonferroni-corrected p-value of the most extreme run;
        ``p_side``: the probability of a mean error (in units of the intervals) at least as far from 0, up or
        down (:func:`null_stats`)
    detectable : for a PASS, the smallest shift of every held-out observation (up or down, whichever needs
        more) the rule would FAIL, as a fraction of the target in log space (0.02: 2%) or in the target's
        units in linear space: what the PASS could have caught (None otherwise)
    fit : the FitResult on the training runs
    runs : one row per held-out run: data row, covariates, observed, predicted, error,
        interval ``low``/``high``, ``z`` and ``outside``
    """

    law: str
    split: str
    n_train: int
    n_test: int
    errors: dict
    residual_scale: float
    level: float
    noise: float
    outcome: str
    reasons: list
    n_outside: int
    p_count: float
    p_extreme: float
    fit: FitResult
    runs: pd.DataFrame
    train_index: list = field(default_factory=list)
    value: float | None = None  # the held-out value of a leave-one-out fold
    detectable: float | None = None
    p_side: float = 1.0

    @property
    def passed(self) -> bool:
        return self.outcome == "PASS"

    @property
    def ratio(self) -> float:
        """Held-out mean |error| over the in-sample residual scale (information only)."""
        return self.errors["mean_abs_error"] / self.residual_scale

    @property
    def verdict(self) -> str:
        """One line a person can act on."""
        e = self.errors
        what = target_name(self.law)
        expected = (1 - self.level) * self.n_test
        head = (f"{self.n_outside} of {self.n_test} held-out runs outside their {self.level:.0%} prediction "
                f"intervals (expected {expected:.2g})")
        if self.outcome == "INCONCLUSIVE":
            return (f"INCONCLUSIVE: the check cannot tell (the {self.n_train} fitted runs cannot identify the law, "
                    f"or it cannot score the held-out runs as they are): " + "; ".join(self.reasons))
        if self.outcome == "PASS":
            return (f"PASS: {head}; the {what} of the held-out runs is predicted within the fit's uncertainty"
                    + (f" (the check would have failed a shift of every held-out {what} by {self.shift_text} "
                       f"or more)" if self.detectable is not None else ""))
        out = self.runs[self.runs["outside"]]
        worst = out.iloc[int(np.argmax(np.abs(out["z"].to_numpy())))] if len(out) else None
        direction = "too low" if e["bias"] < 0 else "too high"
        why = []
        if self.p_count < ALPHA:
            why.append(f"that many outside has probability {self.p_count:.2g}")
        if self.p_extreme < ALPHA:
            why.append(f"the farthest is improbable even alone (p = {self.p_extreme:.2g} after Bonferroni)")
        if self.p_side < ALPHA:
            mz = float(self.runs["z"].mean())
            why.append(f"they lie {'below' if mz < 0 else 'above'} their predictions together (observed minus "
                       f"predicted {mz:+.2g} sd on average, probability {self.p_side:.2g} for runs that share the "
                       f"fit's error)")
        listed = ", ".join(f"row {r['row']} ({r['error']:+.4g}, {r['z']:+.2g} sd)" for _, r in out.head(6).iterrows())
        return (f"FAIL: {head}: {'; '.join(why)}; the law predicts the held-out {what} {direction} by "
                f"{abs(e['bias']):.4g} on average"
                + (f", worst row {worst['row']} off by {worst['error']:+.4g}" if worst is not None else "")
                + (f"; outside: {listed}" if listed else "") + ": it does not extrapolate to these runs")

    @property
    def shift_text(self) -> str:
        """:attr:`detectable` as printed: a percentage in log space, the target's units otherwise."""
        d = self.detectable
        if d is None:
            return "-"
        log = (self.fit.loss or {}).get("space", "log") == "log"
        return f"{100 * d:.2g}%" if log else f"{d:.3g}"

    def to_dict(self) -> dict:
        return {"law": self.law, "split": self.split, "n_train": self.n_train, "n_test": self.n_test,
                "detectable_shift": self.detectable,
                **self.errors, "residual_scale": self.residual_scale, "ratio": self.ratio, "level": self.level,
                "noise_scale": self.noise, "outcome": self.outcome, "reasons": self.reasons,
                "n_outside": self.n_outside, "p_count": self.p_count, "p_extreme": self.p_extreme,
                "p_side": self.p_side,
                "passed": self.passed, "verdict": self.verdict, "rule": RULE.format(level=self.level),
                "params": self.fit.params, "runs": self.runs.to_dict(orient="records")}


def _score(result: FitResult, train: pd.DataFrame, test: pd.DataFrame, split: str, level: float,
           seed: int = 0) -> Validation:
    from scalinglaws.fitting.problem import Problem
    from scalinglaws.trust.bootstrap import bootstrap, sample_predictions
    from scalinglaws.trust.profile import profile, profile_warnings
    law = result.law_obj
    prob = Problem.from_fit(result, train)
    fitted = prob.table
    tr_obs = law.observed(fitted)
    tr_pred = law.predict(result.params, fitted)
    table, obs, pred = predict_runs(result, test)
    if len(table) == 0:
        raise InputError(f"{split}: the law '{result.law}' scores none of the held-out runs")
    n_free = len(result.params) - len(result.fixed or {})
    log_space = prob.space == "log"
    noise = noise_scale(prob.residuals(), n_free)
    reasons = [w["message"] for w in result.warnings if w["code"] in INCONCLUSIVE_CODES]
    if len(fitted) < n_free + MARGIN:
        reasons.insert(0, f"{len(fitted)} runs for {n_free} free parameters (fewer than {n_free} + {MARGIN})")
    if not reasons:
        # a parameter the fitted runs leave free to slide (an open profile interval) makes the bootstrap's
        # intervals, whose refits start at the optimum and stay near it, too narrow to judge by (at the default
        # level whatever the check's: a looser level would pin more)
        with np.errstate(all="ignore"):
            prof = profile(result, train, level=defaults.LEVEL, problem=prob)
        reasons = [w["message"] for w in profile_warnings(law, prof)]
        unknown = sorted({iv["reason"] for iv in prof["params"].values() if iv.get("reason")})
        reasons += [f"the profile intervals that would say whether the runs pin the law down could not be "
                    f"computed: {r}" for r in unknown]
    with np.errstate(all="ignore"):
        # (the spread of the predictions only: no path probe, which would cost a third more refits)
        boot = bootstrap(result, train, RESAMPLES, seed=seed, n_jobs=1, probe=0)
        samples = sample_predictions(boot, table) if boot.bootstrap.get("samples") else np.empty((0, len(table)))
        tf = np.log if log_space else (lambda v: v)
        centre, y = tf(pred), tf(obs)
        draws = tf(samples)
        draws = draws[np.isfinite(draws).all(axis=1)]     # refits with a prediction for every held-out run
        spread = np.var(draws, axis=0) if draws.shape[0] >= 2 else np.zeros(len(table))
        # a target known only to a resolution (the best of a sweep's few points) may be off by it as well
        extra = law.resolution(table)
        if extra is not None:
            extra = np.nan_to_num(np.asarray(extra, float), nan=0.0) * (1.0 if log_space else np.abs(obs))
        sd = np.sqrt(spread + noise ** 2 + (0.0 if extra is None else extra ** 2))
        z = (y - centre) / sd
    m = len(table)
    bad = ~(np.isfinite(z) & np.isfinite(sd) & (sd > 0))
    below = log_space & ~(obs > 0)     # a target <= 0 (a degradation noise put there) has no logarithm
    if below.any():
        rows = ", ".join(str(i) for i in table.index[below][:6])
        reasons.append(f"{int(below.sum())} of the {m} held-out runs have a {law.target_name} <= 0 (rows {rows}), "
                       f"which has no logarithm: a log-space check cannot score them, and leaving them out would "
                       f"keep only those noise put high (--space linear scores them)")
    elif bad.any() and not reasons:
        rows = ", ".join(str(i) for i in table.index[bad][:6])
        reasons.append(f"no finite prediction or interval for {int(bad.sum())} of the {m} held-out runs (rows "
                       f"{rows}): the law cannot score them")
    # Student's t with the n - p degrees of freedom of the residuals, for the whole interval: as in a least-
    # squares prediction interval, both its parts (the parameters' spread and one run's noise) scale with the
    # noise level, which the fitted runs estimate with n - p degrees of freedom (the robust scale taken as
    # such an estimate).  t for the noise part alone (Welch-Satterthwaite) made the true law FAIL on 9-run
    # tables: the bootstrap's spread is as uncertain as the noise scale
    dof = max(len(fitted) - n_free, 1)
    q = float(student_t.ppf(0.5 + level / 2, dof))
    lo, hi = centre - q * sd, centre + q * sd
    low, high = (np.exp(lo), np.exp(hi)) if log_space else (lo, hi)
    outside = ~(np.abs(z) <= q)
    if draws.shape[0] >= 2:
        counts, means = null_stats(draws, centre, q * sd, noise, dof, seed, extra=extra)
        means = np.abs(means)
        tail = lambda k: _share_at_least(counts, k)  # noqa: E731
        side = lambda mz: float((means >= abs(mz)).mean())  # noqa: E731
    else:  # no refit converged: nothing to say how the runs' errors go together
        tail = lambda k: binomial_tail(k, m, 1 - level)  # noqa: E731
        side = lambda mz: 1.0  # noqa: E731
    p_count = tail(int(outside.sum()))
    p_side = side(float(np.mean(z)) / q) if not bad.any() else 1.0
    z_limit = float(student_t.isf(ALPHA / (2 * m), dof))      # the Bonferroni limit
    with np.errstate(all="ignore"):
        p_extreme = min(1.0, m * 2 * float(student_t.sf(np.nanmax(np.abs(z)), dof))) if not bad.all() else 1.0
    if reasons:
        outcome = "INCONCLUSIVE"
    elif p_count < ALPHA or p_extreme < ALPHA or p_side < ALPHA:
        outcome = "FAIL"
    else:
        outcome = "PASS"
    shift = None  # what this PASS could have caught
    if outcome == "PASS":
        shift = detectable_shift(z, sd, q, lambda k: tail(k) < ALPHA, z_limit, lambda mz: side(mz / q) < ALPHA)
        shift = None if shift is None else float(np.expm1(shift)) if log_space else shift
    cols = [c for c in ("N", "D") + tuple(law.required_columns()) + tuple(law.optional_columns)
            if c in table.columns]
    cols = list(dict.fromkeys(cols))
    per_run = table[cols].copy()
    per_run.insert(0, "row", [int(i) if isinstance(i, (int, np.integer)) else str(i) for i in table.index])
    per_run["observed"], per_run["predicted"] = obs, pred
    per_run["error"] = pred - obs
    per_run["low"], per_run["high"], per_run["z"], per_run["outside"] = low, high, z, outside
    return Validation(law=result.law, split=split, n_train=len(fitted), n_test=m, errors=errors_of(obs, pred),
                      residual_scale=residual_scale(tr_obs, tr_pred, n_free), level=level, noise=noise,
                      outcome=outcome, reasons=reasons, n_outside=int(outside.sum()), p_count=p_count, p_side=p_side,
                      p_extreme=p_extreme, fit=result, runs=per_run.reset_index(drop=True), detectable=shift,
                      train_index=list(train.index))


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and not isinstance(level, bool) and 0 < level < 1):
        raise OptionError("level", f"must be between 0 and 1, got {level}")
    return float(level)


def holdout(runs, law: str, expression: str, *, level: float = LEVEL, options: FitOptions | None = None,
            mapping=None, **option_values) -> Validation:
    """Fit ``law`` on the runs *not* matching ``expression`` and score it on those that do.

    ``expression`` is a condition on the run table in pandas ``query`` syntax (suffixes
    allowed): ``"N>=1e9"``, ``"D > 100B and w_bits == 4"``.  ``options`` (or single
    fields such as ``starts``, ``seed``, ``fix``, ``where``) are the
    :class:`~scalinglaws.fitting.options.FitOptions` of the fit.
    """
    level = _check_level(level)
    law_obj = get_law(law)
    table, opts = filtered_table(runs, law_obj, FitOptions.of(options, **option_values), mapping=mapping)
    if not expression or not str(expression).strip():
        raise OptionError("holdout", "needs a condition on the runs, e.g. \"N>=1e9\"")
    mask = select(table, expression, "holdout")
    src = table.attrs.get("source")
    if not mask.any():
        raise OptionError("holdout", f"{expression!r} selects no runs", file=src)
    if mask.all():
        raise OptionError("holdout", f"{expression!r} holds out all {len(table)} runs and leaves none to fit on",
                          file=src)
    train, test = subset(table, ~mask), subset(table, mask)
    result = fit_law(train, law=law_obj, options=opts)
    return _score(result, train, test, str(expression), level, opts.seed)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Distinct values, merging those equal to 9 significant digits (values read from text)."""
    v = np.asarray(values, float)
    key = np.array([float(f"{x:.9g}") for x in v])
    return np.unique(key), key


@dataclass
class LeaveOneOut:
    """Leave-one-value-out checks along a column (``N`` or ``D``).

    ``folds`` holds one :class:`Validation` per held-out value that could be fitted;
    ``skipped`` lists the values that could not, with the reason.
    """

    law: str
    by: str
    forward: bool
    folds: list
    skipped: list
    level: float

    @property
    def outcome(self) -> str:
        """FAIL when a fold fails; INCONCLUSIVE when none fails but one cannot tell (or none could be
        fitted); PASS when every fold passes."""
        if any(f.outcome == "FAIL" for f in self.folds):
            return "FAIL"
        if not self.folds or any(f.outcome == "INCONCLUSIVE" for f in self.folds):
            return "INCONCLUSIVE"
        return "PASS"

    @property
    def passed(self) -> bool:
        return self.outcome == "PASS"

    @property
    def verdict(self) -> str:
        direction = "forward (fitting on smaller values only)" if self.forward else "leave-one-out"
        if not self.folds:
            return "INCONCLUSIVE: no fold could be fitted (see the skipped values)"
        bad = [f for f in self.folds if f.outcome == "FAIL"]
        unsure = [f for f in self.folds if f.outcome == "INCONCLUSIVE"]
        outside = sum(f.n_outside for f in self.folds)
        total = sum(f.n_test for f in self.folds)
        if bad:
            return (f"FAIL: {len(bad)} of {len(self.folds)} {direction} folds over {self.by} fail: "
                    + "; ".join(f"{f.split}: {f.n_outside} of {f.n_test} outside, bias {f.errors['bias']:+.4g}"
                                for f in bad))
        if unsure:
            return (f"INCONCLUSIVE: {len(unsure)} of {len(self.folds)} {direction} folds over {self.by} cannot tell "
                    f"({unsure[0].split}: {unsure[0].reasons[0] if unsure[0].reasons else 'see the fold'}); "
                    f"none fails")
        return (f"PASS: every {direction} fold over {self.by} predicts its held-out runs within the fit's "
                f"uncertainty ({outside} of {total} runs outside their {self.level:.0%} prediction intervals)")

    def summary(self) -> dict:
        if not self.folds:
            return {}
        m = np.array([f.errors["mean_abs_error"] for f in self.folds])
        return {"folds": len(self.folds), "mean_abs_error": float(m.mean()),
                "max_abs_error": float(max(f.errors["max_abs_error"] for f in self.folds)),
                "bias": float(np.mean([f.errors["bias"] for f in self.folds])),
                "failed": int(sum(not f.passed for f in self.folds))}

    def to_dict(self) -> dict:
        return {"law": self.law, "by": self.by, "forward": self.forward, "level": self.level,
                "outcome": self.outcome, "passed": self.passed, "verdict": self.verdict,
                "rule": RULE.format(level=self.level), "summary": self.summary(),
                "folds": [f.to_dict() for f in self.folds], "skipped": self.skipped}


def leave_one_out(runs, law: str, by: str = "N", *, forward: bool = False, level: float = LEVEL,
                  min_distinct: int = MIN_DISTINCT, options: FitOptions | None = None, mapping=None,
                  progress: Callable[[float], None] | None = None, **option_values) -> LeaveOneOut:
    """One check per distinct value of ``by``: hold out its runs, fit on the others
    (``forward=True``: on the smaller values only).

    A fold is skipped (and listed with the reason) when its training runs hold fewer
    than ``min_distinct`` distinct values of ``by`` (a law cannot separate a size
    exponent from a constant with fewer) or fewer runs than the law has free parameters.
    """
    level = _check_level(level)
    if by not in ("N", "D"):
        raise OptionError("by", f"must be N or D, got {by!r}")
    law_obj = get_law(law)
    table, opts = filtered_table(runs, law_obj, FitOptions.of(options, **option_values), mapping=mapping)
    if by not in table.columns:
        raise OptionError("by", f"{by}: the table has no column {by!r}", file=table.attrs.get("source"))
    values, key = _distinct(table[by].to_numpy())
    if values.size < 2:
        raise OptionError("by", f"{by}: the table has one value of {by} only ({values[0]:g}); "
                                f"nothing to hold out", file=table.attrs.get("source"))
    n_free = len(law_obj.params) - len(opts.fix)
    folds, skipped = [], []
    for i, v in enumerate(values):
        test_mask = key == v
        train_mask = key < v if forward else ~test_mask
        n_vals = np.unique(key[train_mask]).size
        split = f"{by} == {v:.4g}" + (" (forward)" if forward else "")
        if n_vals < min_distinct:
            skipped.append({"value": float(v), "split": split,
                            "reason": f"the runs to fit on hold {n_vals} distinct value{'s' if n_vals != 1 else ''} "
                                      f"of {by} (need {min_distinct})"})
        elif train_mask.sum() <= n_free:
            skipped.append({"value": float(v), "split": split,
                            "reason": f"{int(train_mask.sum())} runs to fit on for {n_free} free parameters"})
        else:
            train, test = subset(table, train_mask), subset(table, test_mask)
            result = fit_law(train, law=law_obj, options=opts)
            fold = _score(result, train, test, split, level, opts.seed)
            fold.value = float(v)
            folds.append(fold)
        if progress is not None:
            progress((i + 1) / values.size)
    return LeaveOneOut(law=law_obj.name, by=by, forward=forward, folds=folds, skipped=skipped, level=level)
