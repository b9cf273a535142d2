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

Verdict
-------
A held-out error means little without a yardstick, so every check compares it with
the **residual scale** of the fit it came from,
``s = sqrt(pi/2) * sum_i |obs_i - fit_i| / (n - p)`` over the ``n`` runs the law was
fitted on, with ``p`` its free parameters: the standard deviation of Gaussian noise
estimated from the mean absolute residual, corrected for the ``p`` residuals a robust
(nearly least-absolute) fit sets to zero; in the target's units, and floored at 1e-4
of the median observed value so that a noise-free fit does not turn rounding into
failures.  (The median absolute residual is not used: a Huber fit with a small delta
passes exactly through about ``p`` runs, which drags the median down.)  The check **passes**
when the held-out mean absolute error is at most ``tolerance * s`` (default
``tolerance = 3``): runs the fit did not see are predicted about as well as the runs it
did.  Otherwise it **fails** and says by how much and in which direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from scalinglaws.data.errors import OptionError
from scalinglaws.data.runs import select, subset
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError
from scalinglaws.laws import get_law
from scalinglaws.fitting.problem import load_table

#: default verdict threshold, in units of the fit's residual scale
TOLERANCE = 3.0
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
    """The rows of ``runs`` the law scores (after its ``prepare``), their observed target and prediction.

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


@dataclass
class Validation:
    """One extrapolation check: a fit on some runs, scored on the others.

    Attributes
    ----------
    law : law name
    split : how the held-out runs were chosen (``"N>=1e9"``, ``"N == 1e9 (forward)"``)
    n_train, n_test : runs fitted on / held out (after the law's ``prepare``)
    errors : mean_abs_error, max_abs_error, bias, rmse, mean_abs_rel_error (target units)
    residual_scale : robust scale of the training fit's residuals (the yardstick)
    tolerance : the verdict threshold in units of ``residual_scale``
    passed : whether mean_abs_error <= tolerance * residual_scale
    fit : the FitResult on the training runs
    runs : one row per held-out run: its data row, covariates, observed, predicted, error
    """

    law: str
    split: str
    n_train: int
    n_test: int
    errors: dict
    residual_scale: float
    tolerance: float
    passed: bool
    fit: FitResult
    runs: pd.DataFrame
    train_index: list = field(default_factory=list)
    value: float | None = None  # the held-out value of a leave-one-out fold

    @property
    def ratio(self) -> float:
        return self.errors["mean_abs_error"] / self.residual_scale

    @property
    def verdict(self) -> str:
        """One line a person can act on."""
        e, s = self.errors, self.residual_scale
        what = target_name(self.law)
        head = (f"held-out mean |error| {e['mean_abs_error']:.4g} = {self.ratio:.3g}x the fit's residual scale "
                f"{s:.3g} (threshold {self.tolerance:g}x)")
        if self.passed:
            return f"PASS: {head}; the {what} of the {self.n_test} held-out runs is predicted as well as the fitted ones"
        direction = "too low" if e["bias"] < 0 else "too high"
        return (f"FAIL: {head}; the law predicts the held-out {what} {direction} by {abs(e['bias']):.4g} on average "
                f"(max |error| {e['max_abs_error']:.4g}): it does not extrapolate to these runs")

    def to_dict(self) -> dict:
        return {"law": self.law, "split": self.split, "n_train": self.n_train, "n_test": self.n_test,
                **self.errors, "residual_scale": self.residual_scale, "ratio": self.ratio,
                "tolerance": self.tolerance, "passed": self.passed, "verdict": self.verdict,
                "params": self.fit.params, "runs": self.runs.to_dict(orient="records")}


def _score(result: FitResult, train: pd.DataFrame, test: pd.DataFrame, split: str, tolerance: float) -> Validation:
    law = result.law_obj
    fitted = law.prepare(train)
    tr_obs = law.observed(fitted)
    tr_pred = law.predict(result.params, fitted)
    table, obs, pred = predict_runs(result, test)
    if len(table) == 0:
        raise InputError(f"{split}: the law '{result.law}' scores none of the held-out runs")
    cols = [c for c in ("N", "D") + tuple(law.required_columns()) + tuple(law.optional_columns)
            if c in table.columns]
    cols = list(dict.fromkeys(cols))
    per_run = table[cols].copy()
    per_run.insert(0, "row", [int(i) if isinstance(i, (int, np.integer)) else str(i) for i in table.index])
    per_run["observed"], per_run["predicted"] = obs, pred
    per_run["error"] = pred - obs
    n_free = len(result.params) - len(result.fixed or {})
    s = residual_scale(tr_obs, tr_pred, n_free)
    errs = errors_of(obs, pred)
    return Validation(law=result.law, split=split, n_train=len(fitted), n_test=len(table), errors=errs,
                      residual_scale=s, tolerance=tolerance, passed=bool(errs["mean_abs_error"] <= tolerance * s),
                      fit=result, runs=per_run.reset_index(drop=True), train_index=list(train.index))


def _check_tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and np.isfinite(tolerance) and tolerance > 0):
        raise OptionError("tolerance", f"must be a finite number > 0, got {tolerance}")
    return float(tolerance)


def _table_and_options(runs, law, options, mapping, option_values):
    """The filtered table, and the options for the fits inside a check (the filters already applied)."""
    opts = FitOptions.of(options, **option_values)
    table = load_table(runs, law, mapping=mapping, where=opts.where, exclude_top=opts.exclude_top)
    return table, opts.replace(where=None, exclude_top=0)


def holdout(runs, law: str, expression: str, *, tolerance: float = TOLERANCE, options: FitOptions | None = None,
            mapping=None, **option_values) -> Validation:
    """Fit ``law`` on the runs *not* matching ``expression`` and score it on those that do.

    ``expression`` is a condition on the run table in pandas ``query`` syntax (suffixes
    allowed): ``"N>=1e9"``, ``"D > 100B and w_bits == 4"``.  ``options`` (or single
    fields such as ``starts``, ``seed``, ``fix``, ``where``) are the
    :class:`~scalinglaws.fitting.options.FitOptions` of the fit.
    """
    tolerance = _check_tolerance(tolerance)
    law_obj = get_law(law)
    table, opts = _table_and_options(runs, law_obj, options, mapping, option_values)
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
    return _score(result, train, test, str(expression), tolerance)


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
    tolerance: float

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.folds)

    @property
    def verdict(self) -> str:
        if not self.folds:
            return "no fold could be fitted (see the skipped values)"
        bad = [f for f in self.folds if not f.passed]
        worst = max(self.folds, key=lambda f: f.ratio)
        direction = "forward (fitting on smaller values only)" if self.forward else "leave-one-out"
        if not bad:
            return (f"PASS: every {direction} fold over {self.by} predicts its held-out runs within "
                    f"{self.tolerance:g}x the fit's residual scale (worst {worst.ratio:.3g}x at {worst.split})")
        return (f"FAIL: {len(bad)} of {len(self.folds)} {direction} folds over {self.by} miss by more than "
                f"{self.tolerance:g}x the residual scale: " +
                "; ".join(f"{f.split}: bias {f.errors['bias']:+.4g}, {f.ratio:.3g}x" for f in bad))

    def summary(self) -> dict:
        if not self.folds:
            return {}
        m = np.array([f.errors["mean_abs_error"] for f in self.folds])
        return {"folds": len(self.folds), "mean_abs_error": float(m.mean()),
                "max_abs_error": float(max(f.errors["max_abs_error"] for f in self.folds)),
                "bias": float(np.mean([f.errors["bias"] for f in self.folds])),
                "failed": int(sum(not f.passed for f in self.folds))}

    def to_dict(self) -> dict:
        return {"law": self.law, "by": self.by, "forward": self.forward, "tolerance": self.tolerance,
                "passed": self.passed, "verdict": self.verdict, "summary": self.summary(),
                "folds": [f.to_dict() for f in self.folds], "skipped": self.skipped}


def leave_one_out(runs, law: str, by: str = "N", *, forward: bool = False, tolerance: float = TOLERANCE,
                  min_distinct: int = MIN_DISTINCT, options: FitOptions | None = None, mapping=None,
                  progress: Callable[[float], None] | None = None, **option_values) -> LeaveOneOut:
    """One check per distinct value of ``by``: hold out its runs, fit on the others
    (``forward=True``: on the smaller values only).

    A fold is skipped (and listed with the reason) when its training runs hold fewer
    than ``min_distinct`` distinct values of ``by`` (a law cannot separate a size
    exponent from a constant with fewer) or fewer runs than the law has free parameters.
    """
    tolerance = _check_tolerance(tolerance)
    if by not in ("N", "D"):
        raise OptionError("by", f"must be N or D, got {by!r}")
    law_obj = get_law(law)
    table, opts = _table_and_options(runs, law_obj, options, mapping, option_values)
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
            fold = _score(result, train, test, split, tolerance)
            fold.value = float(v)
            folds.append(fold)
        if progress is not None:
            progress((i + 1) / values.size)
    return LeaveOneOut(law=law_obj.name, by=by, forward=forward, folds=folds, skipped=skipped, tolerance=tolerance)
