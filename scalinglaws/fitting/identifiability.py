"""What a fit cannot tell: plain warnings that :func:`scalinglaws.fit` attaches to every result.

Each warning is ``{"code", "message"}``, one line a person can act on.  The checks, and
their thresholds:

``underdetermined``
    no more runs than free parameters: any parameter set through the runs fits them.
``collinear_inputs``
    the law's inputs (its columns that vary, in log space when positive) satisfy a linear
    relation on every run -- a ladder with ``D = 100 N`` -- to within a relative singular
    value of :data:`COLLINEAR` of the centred design: the data pin only the combinations
    across that relation, and the message says which ratio is fixed.
``one_value``
    an input the law reads (N, D, ...) takes one value only.
``unidentified``
    directions of the parameters along which no fitted value changes: a singular value of
    the Jacobian (columns scaled to unit norm) below :data:`WEAK` of the largest; the
    message names the parameters that move along it.
``on_bound``
    a free parameter ended on a bound of the fitted space.
``noise_varies``
    the runs' scatter about the fit is not one level: the median absolute residual of the
    third of runs with the smallest fitted values and that of the third with the largest
    differ by at least :data:`NOISE_RATIO` (either way), and a Mann-Whitney test of the two
    thirds' absolute residuals says so at :data:`NOISE_ALPHA` (so a table of fewer than 15
    runs, whose thirds of at most 4 cannot reach it, is never flagged).  Intervals and checks that take one
    noise level for every run (``validate``'s) are then off: too narrow at one end, too wide at
    the other.  The usual cause is a noise model that does not match the fitted space: noise of
    a fixed size in the target's units (a degradation, the difference of two measured losses,
    near 0) grows as 1/target in log space; noise proportional to the target grows with it in
    linear space.
``rows_not_modelled``
    rows with a precision (quantized training, post-training quantization, a
    floating-point format) that a law without precision terms cannot describe; the message
    names how many and the ``where`` filter that leaves them out.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu

from scalinglaws.data.columns import as_columns
from scalinglaws.data.schema import BITS_COLUMNS, UNQUANTIZED_BITS

#: relative singular value of the centred log-design below which the law's inputs are collinear
COLLINEAR = 1e-6
#: relative singular value of the unit-column Jacobian below which a parameter direction is unidentified
WEAK = 1e-6
#: ratio of the median absolute residuals of the third of runs with the smallest fitted values and the third
#: with the largest (either way) from which the noise is not one level.  Calibrated on synthetic tables with
#: one noise level (every law's example design, 300 runs, 5 seeds each, 0.5% noise: 0.69-1.44 in the fitted
#: log space, 0.49-1.16 in linear space; the main design of benchmarks/validate_calibration.py: see
#: docs/trust.md) and with a noise of fixed size on a degradation fitted in log space (ouyang-qid's example:
#: 4.4-12.2); on the project's trainer runs ouyang-qid's log fit gives 2.8, its linear fit 1/130
NOISE_RATIO = 3.0
#: significance of the two thirds' Mann-Whitney test behind ``noise_varies``
NOISE_ALPHA = 0.01
#: residuals below this (in the fitted space) are rounding, not noise: no ``noise_varies`` then
NOISE_FLOOR = 1e-8


def _warn(out: list, code: str, message: str) -> None:
    out.append({"code": code, "message": message})


def _inputs(law, cols) -> dict[str, np.ndarray]:
    """The law's input columns present in the table, as floats."""
    names = [c for c in tuple(law.columns) + tuple(law.optional_columns) if c in cols]
    return {c: np.asarray(cols[c], dtype=float) for c in dict.fromkeys(names)}


def input_warnings(law, table) -> list[dict]:
    """Warnings about the design alone: one value of an input, collinear inputs, rows the law does not model."""
    cols = as_columns(table)
    out: list[dict] = []
    inputs = _inputs(law, cols)
    varying = {}
    for c, full in inputs.items():
        v = full[np.isfinite(full)]
        if not v.size:
            continue
        if np.unique(np.round(v, 12)).size == 1:
            if c not in BITS_COLUMNS:
                _warn(out, "one_value", f"{c} takes one value only ({v[0]:.4g}): the data cannot tell how the "
                                        f"{law.target_name} changes with {c}")
            continue
        if v.size == full.size:  # an input with empty cells (group size of unquantized rows) is left out
            varying[c] = np.log(full) if np.all(full > 0) else full
    if len(varying) >= 2 and cols.n > len(varying) + 1:  # fewer runs are collinear whatever they are
        names = list(varying)
        rows = np.isfinite(np.column_stack(list(varying.values()))).all(1)
        Z = np.column_stack([varying[c][rows] for c in names])
        Z = Z - Z.mean(0)
        scale = np.linalg.norm(Z, axis=0)
        Z = Z / np.where(scale > 0, scale, 1.0)
        _, s, vt = np.linalg.svd(Z, full_matrices=False)
        for k in np.flatnonzero(s / s.max() < COLLINEAR):
            coef = vt[k] / scale
            used = [i for i in np.flatnonzero(np.abs(vt[k]) > 0.05)]
            if len(used) < 2:
                continue
            _warn(out, "collinear_inputs", _collinear_message(law, [names[i] for i in used], coef[used],
                                                              {c: inputs[c][rows] for c in names}))
    modelled = set(law.columns) | set(law.optional_columns)
    if law.target == "loss":
        quant = np.zeros(cols.n, bool)
        which = []
        for c in BITS_COLUMNS:
            if c in cols and c not in modelled and np.any(cols[c] < UNQUANTIZED_BITS):
                quant |= cols[c] < UNQUANTIZED_BITS
                which.append(c)
        for c in ("exp_bits", "man_bits"):
            if c in cols and c not in modelled and np.isfinite(cols[c]).any():
                quant |= np.isfinite(cols[c])
                which.append(c)
        if quant.any():
            keep = " and ".join(f"{c} >= 16" for c in which if c in BITS_COLUMNS)
            keep += (" and " if keep and any(c in ("exp_bits", "man_bits") for c in which) else "") + " and ".join(
                f"{c} != {c}" for c in which if c in ("exp_bits", "man_bits"))
            rows_ = [cols.rows[i] for i in np.flatnonzero(quant)]
            shown = ", ".join(map(str, rows_[:5])) + (", ..." if len(rows_) > 5 else "")
            _warn(out, "rows_not_modelled",
                  f"{int(quant.sum())} of {cols.n} runs are quantized or in a number format ({', '.join(which)}; "
                  f"data rows {shown}), which law '{law.name}' does not model; leave them out with the where "
                  f"filter \"{keep}\" (--where on the command line)")
    return out


def _collinear_message(law, names, coef, inputs) -> str:
    logs = [np.all(inputs[n] > 0) for n in names]
    if len(names) == 2 and all(logs):
        a, b = names
        r = coef[1] / coef[0]  # log a + r log b is the same on every run: a * b^r is
        if abs(r + 1) < 1e-3:
            ratio = float(np.median(inputs[b] / inputs[a]))
            rel = f"{b}/{a} is the same on every run ({b} = {ratio:.4g} {a})"
            joint = f"{a}*{b}"
        elif abs(r - 1) < 1e-3:
            prod = float(np.median(inputs[a] * inputs[b]))
            rel = f"{a}*{b} is the same on every run ({prod:.4g})"
            joint = f"{a}/{b}"
        else:
            rel = f"{a} * {b}^{r:.3g} is the same on every run"
            joint = f"{a}^{r:.3g} / {b}"
        return (f"{a} and {b} are collinear in log space: {rel}, so the data cannot separate the effect of {a} "
                f"from that of {b}; only how the {law.target_name} changes along {joint} is pinned")
    terms = " + ".join(f"{c:.3g} {'log ' if lg else ''}{n}" for c, n, lg in zip(coef / np.abs(coef).max(), names, logs))
    return (f"{', '.join(names)} are collinear: {terms} is the same on every run, so the data cannot separate "
            f"their effects")


def parameter_warnings(prob, x: np.ndarray, on_bound: list[str]) -> list[dict]:
    """Warnings about the parameters at the optimum ``x``: underdetermined, unidentified directions, bounds."""
    out: list[dict] = []
    law = prob.law
    names = law.param_names
    fidx = np.flatnonzero(prob.free)
    if prob.n <= fidx.size:
        _warn(out, "underdetermined", f"{prob.n} runs for {fidx.size} free parameters: the fit is underdetermined "
                                      f"(other parameter values fit these runs as well); add runs or fix parameters")
    with np.errstate(all="ignore"):
        J = prob.jacobian(x)[:, fidx]
    if J.size and np.all(np.isfinite(J)):
        norms = np.linalg.norm(J, axis=0)
        flat = [names[fidx[i]] for i in np.flatnonzero(norms == 0)]
        Jn = J / np.where(norms > 0, norms, 1.0)
        _, s, vt = np.linalg.svd(Jn, full_matrices=False)
        rel = s / s.max() if s.max() > 0 else s
        weak: dict[tuple, list] = {}   # one warning per set of parameters, however many directions it has
        for k in np.flatnonzero(rel < WEAK):
            involved = [names[fidx[i]] for i in np.flatnonzero(np.abs(vt[k]) > 0.1) if names[fidx[i]] not in flat]
            if len(involved) >= 2 and prob.n > fidx.size:
                weak.setdefault(tuple(involved), []).append(rel[k])
        for involved, values in weak.items():
            along = ("a combination of them (Jacobian singular value" if len(values) == 1 else
                     f"{len(values)} combinations of them (Jacobian singular values")
            _warn(out, "unidentified", f"the data cannot separate {', '.join(involved)}: no fitted value "
                                       f"changes along {along} "
                                       f"{' and '.join(f'{v:.1e}' for v in values)} of the largest)")
        for name in flat:
            _warn(out, "unidentified", f"{name} has no effect on any fitted run: the data say nothing about it")
    for name in on_bound:
        j = names.index(name)
        p = law.params[j]
        side = "lower" if abs(x[j] - prob.lower[j]) <= abs(x[j] - prob.upper[j]) else "upper"
        _warn(out, "on_bound", f"{name} ended on its {side} bound ({p.bounds[0 if side == 'lower' else 1]:.4g}): "
                               f"the data may not pin it, or the bound is too tight")
    return out


def noise_warnings(prob, x: np.ndarray, weights=None) -> list[dict]:
    """``noise_varies`` where the residuals at ``x`` scatter more at one end of the fitted values than at the
    other (module doc; runs of weight 0 left out)."""
    out: list[dict] = []
    with np.errstate(all="ignore"):
        r = prob.residuals(x)
    fitted = prob.y - r
    keep = np.isfinite(r) & np.isfinite(fitted)
    if weights is not None:
        keep &= np.asarray(weights, float) > 0
    r, fitted = r[keep], fitted[keep]
    k = r.size // 3
    if k < 5:   # two thirds of 4 runs each cannot reach NOISE_ALPHA (the least exact p is 0.029)
        return out
    order = np.argsort(fitted, kind="stable")
    low, high = np.abs(r[order[:k]]), np.abs(r[order[-k:]])
    s_low, s_high = float(np.median(low)), float(np.median(high))
    if max(s_low, s_high) <= NOISE_FLOOR:
        return out
    ratio = s_low / s_high if s_high > 0 else np.inf
    big = max(ratio, 1.0 / ratio) if ratio > 0 else np.inf
    if big < NOISE_RATIO:
        return out
    p = float(mannwhitneyu(low, high).pvalue)
    if not p < NOISE_ALPHA:
        return out
    name = prob.law.target_name
    times = f"{big:.2g}" if big < 10 else f"{big:.0f}"
    ends = ("smallest", "largest") if ratio > 1 else ("largest", "smallest")
    if prob.space == "log" and ratio > 1 and prob.law.predicts != "loss":
        hint = (f"noise of a fixed size in the {name}'s units (a difference of two measured losses, near 0) "
                f"is fitted as such in linear space (--space linear)")
    elif prob.space == "log" and ratio > 1:
        hint = f"if the noise is of a fixed size in the {name}'s units, linear space (--space linear) fits it as such"
    elif prob.space == "linear" and ratio < 1:
        hint = f"noise proportional to the {name} is fitted as such in log space (--space log)"
    else:
        hint = "some runs may be measured less precisely than others (fewer evaluation tokens, other seeds)"
    _warn(out, "noise_varies",
          f"the runs scatter about the fit {times}x as much among the third with the {ends[0]} fitted {name} as "
          f"among the third with the {ends[1]} (median absolute {prob.space} residual; Mann-Whitney p = {p:.1g}): "
          f"one noise level does not describe them, so intervals that assume one (validate's) are off; {hint}")
    return out
