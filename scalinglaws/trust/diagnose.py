"""Diagnose a fit: is its optimum the answer, and can the data pin every parameter down?

:func:`diagnose` looks at a finished fit from four sides:

1. **Start-grid sensitivity.**  The multi-start fitter leaves every start's end point in
   ``FitResult.multistart`` (not saved in ``fit.json``; a loaded fit is refitted with
   its own settings to get them back).  Converged end points are grouped into distinct
   optima (points within ``1e-3 * (1 + |x|)`` of each other in the fitted space are one
   optimum; starts the fitter left behind after exploring are not optima and are not
   counted); the report gives how many distinct optima the grid found, how many starts
   reached each, their objectives, and the spread of every parameter over the optima
   whose objective is within ``near`` (default 1%) of the best.  Near-best optima far
   apart mean the answer depends on the start grid.
2. **Bounds.**  Parameters that ended on a bound of the fitted space.
3. **Conditioning.**  The Hessian of the summed robust objective at the optimum, in the
   fitted space, over the free parameters: its eigenvalues, condition number
   (largest / smallest eigenvalue) and whether it is positive definite.  Also the
   singular values of the Jacobian of the fitted values with unit-norm columns: a
   singular value near zero is a direction of parameters the data cannot see, and its
   singular vector names the parameters that trade off along it.
4. **Identifiability warnings** from the data: one model size (or one token count)
   only, so a size exponent cannot be told from the constant; fewer runs than
   parameters; the irreducible loss ``E`` above the smallest observed loss (a law that
   cannot go below E then overshoots the data it claims to fit); a column the law uses
   with one value only.
5. **Profile intervals** (:mod:`scalinglaws.trust.profile`): how far each parameter can move
   before the objective rises by the calibrated threshold; an end that reaches the
   parameter's bound means the data cannot pin it down, and the warning names the
   parameters that trade off against it.  Unlike a correlation, this does not depend on
   how the other parameters are written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scalinglaws.data.errors import OptionError
from scalinglaws.fitting.api import fit as fit_law
from scalinglaws.fitting import defaults
from scalinglaws.fitting.result import FitResult
from scalinglaws.data.errors import InputError  # noqa: F401
from scalinglaws.laws import get_law
from scalinglaws.fitting.problem import Problem, load_table
from scalinglaws.trust.profile import profile as profile_intervals, profile_warnings

NEAR = defaults.NEAR
#: condition number above which the problem is called ill-conditioned
ILL_CONDITIONED = 1e10
#: relative singular value (unit-norm Jacobian columns) below which a direction is unidentified
WEAK = 1e-6


@dataclass
class Diagnosis:
    """What :func:`diagnose` found; ``warnings`` is a list of ``{"code", "message"}``."""

    law: str
    n_runs: int
    optima: list          # the best few distinct optima (at most ``max_optima``)
    n_starts: int
    n_converged: int
    spread: dict
    on_bound: list
    hessian: dict
    jacobian: dict
    warnings: list = field(default_factory=list)
    n_distinct: int | None = None  # all distinct optima among the converged starts (``optima`` shows the best)
    profile: dict | None = None    # profile intervals (:func:`scalinglaws.trust.profile.profile`)

    @property
    def n_optima(self) -> int:
        return len(self.optima) if self.n_distinct is None else self.n_distinct

    def to_dict(self) -> dict:
        return {"law": self.law, "n_runs": self.n_runs, "n_starts": self.n_starts, "n_converged": self.n_converged,
                "n_optima": self.n_optima, "optima": self.optima, "spread": self.spread, "on_bound": self.on_bound,
                "hessian": self.hessian, "jacobian": self.jacobian, "profile": self.profile, "warnings": self.warnings}


def distinct_optima(xs: np.ndarray, funs: np.ndarray, converged: np.ndarray | None = None,
                    tol: float = 1e-3) -> list[tuple[np.ndarray, float, int]]:
    """Group end points into distinct optima: ``[(x, objective, n_starts), ...]``, best first.

    Points are taken best objective first; a point within ``tol * (1 + |x|)`` (every
    coordinate) of an optimum already found joins it.
    """
    xs, funs = np.asarray(xs, float), np.asarray(funs, float)
    ok = np.isfinite(funs) & np.isfinite(xs).all(1)
    if converged is not None:
        ok &= np.asarray(converged, bool)
    order = np.flatnonzero(ok)[np.argsort(funs[ok], kind="stable")]
    reps: list[list] = []
    for i in order:
        x = xs[i]
        for r in reps:
            if np.all(np.abs(x - r[0]) <= tol * (1.0 + np.abs(r[0]))):
                r[2] += 1
                break
        else:
            reps.append([x, float(funs[i]), 1])
    return [(r[0], r[1], r[2]) for r in reps]


def _warn(out: list, code: str, message: str) -> None:
    out.append({"code": code, "message": message})


def _data_warnings(law, table: pd.DataFrame, fit: FitResult, warnings: list) -> None:
    cols = set(law.required_columns()) | {c for c in law.optional_columns if c in table.columns}
    for col, what, exps in (("N", "model size", "A, alpha"), ("D", "token count", "B, beta")):
        if col not in table.columns or col not in cols:
            continue
        k = np.unique(np.round(np.log(table[col].to_numpy(float)), 9)).size
        if k == 1:
            _warn(warnings, f"one_{'model_size' if col == 'N' else 'token_count'}",
                  f"the runs have one {what} only ({col} = {table[col].iloc[0]:.4g}): the data cannot tell the "
                  f"{col} term of the law ({exps} or what plays their part) from the constant E; "
                  f"add runs at other {what}s or fix those parameters with --fix")
        elif k == 2:
            _warn(warnings, f"two_{'model_sizes' if col == 'N' else 'token_counts'}",
                  f"the runs have two {what}s only: a power law in {col} plus a constant has three unknowns, "
                  f"so E and the {col} term are barely identified")
    for col in sorted(cols - {"N", "D"}):
        if col in table.columns:
            v = pd.to_numeric(table[col], errors="coerce").dropna()
            if len(v) and v.nunique() == 1:
                _warn(warnings, "constant_column",
                      f"column '{col}' has one value only ({v.iloc[0]:g}): parameters describing how the "
                      f"{law.predicts} changes with {col} are not identified by these runs")
    n_free = len(fit.params) - len(fit.fixed or {})
    if len(table) <= n_free:
        _warn(warnings, "underdetermined", f"{len(table)} runs for {n_free} free parameters: the fit is "
                                           f"underdetermined")
    if law.predicts == "loss":
        obs = law.observed(table)
        for name in ("E", "epsilon"):
            if name in fit.params and name not in (fit.fixed or {}) and fit.params[name] >= obs.min():
                _warn(warnings, "E_above_min_loss",
                      f"{name} = {fit.params[name]:.4g} is above the smallest observed loss {obs.min():.4g}: "
                      f"the irreducible loss cannot be larger than a loss some run reached, so the data do not "
                      f"identify {name} (too few large models or long runs, or a noisy small-loss run)")


def diagnose(fit: FitResult, runs, *, near: float = NEAR, tol: float = 1e-3, max_optima: int = 10,
             refit_kw: dict | None = None, profile: bool = True, level: float = defaults.LEVEL) -> Diagnosis:
    """Diagnose ``fit`` on the ``runs`` it was made on (a canonical table or a path).

    When ``fit`` has no ``multistart`` record (a ``fit.json`` loaded from disk) the fit is
    made again with its own options (``refit_kw`` replaces some, such as ``starts`` and
    ``seed``).
    """
    if not (near >= 0):
        raise OptionError("near", f"must be >= 0, got {near}")
    law = get_law(fit.law)
    table = load_table(runs, law)
    ms = fit.multistart
    if ms is None:
        fit = fit_law(table, law=law, options=fit.options, **(refit_kw or {}))
        ms = fit.multistart
    prob = Problem.from_fit(fit, table)
    law = prob.law
    free = prob.free
    names = law.param_names
    warnings: list = []

    # 1. start-grid sensitivity ------------------------------------------------------
    conv = np.asarray(ms.converged, bool)
    optima = distinct_optima(ms.xs, ms.funs, conv, tol)
    best = optima[0][1] if optima else fit.objective
    near_opt = [o for o in optima if o[1] <= best + near * abs(best)]
    shown = [{"objective": o[1], "rel_gap": (o[1] - best) / abs(best) if best else 0.0, "n_starts": o[2],
              "params": law.to_public(o[0])} for o in optima[:max_optima]]
    spread = {}
    for j, name in enumerate(names):
        vals = np.array([law.to_public(o[0])[name] for o in near_opt])
        if vals.size:
            mid = np.median(vals)
            spread[name] = {"min": float(vals.min()), "max": float(vals.max()),
                            "rel_spread": float((vals.max() - vals.min()) / abs(mid)) if mid else float("inf")}
    n_conv = int(conv.sum())  # the others were left behind after exploring: not optima
    if len(near_opt) > 1:
        wide = {k: v for k, v in spread.items() if v["rel_spread"] > 0.05}
        if wide:
            _warn(warnings, "start_sensitivity",
                  f"{len(near_opt)} distinct optima within {near:.0%} of the best objective disagree on "
                  + ", ".join(f"{k} ({v['min']:.4g} .. {v['max']:.4g})" for k, v in wide.items())
                  + ": the answer depends on the start grid; a flat valley or several minima")
    if optima and optima[0][2] == 1 and conv.size > 1:
        _warn(warnings, "best_reached_once",
              "only one start reached the best optimum: a denser start grid might find a better one")
    if not fit.converged:
        _warn(warnings, "not_converged", f"the best start did not converge ({fit.status.get('message')})")

    # 2. bounds ------------------------------------------------------------------------
    on_bound = prob.on_bound()
    for name in on_bound:
        _warn(warnings, "on_bound", f"{name} ended on a bound of the fitted space: the data may not identify it "
                                    f"(or the bound is too tight); fix it or widen the bound")

    # 3. conditioning ---------------------------------------------------------------------
    fidx = np.flatnonzero(free)
    H = prob.hessian()[np.ix_(fidx, fidx)]
    if np.all(np.isfinite(H)) and fidx.size:
        ev = np.linalg.eigvalsh(H)
        pd_ = bool(ev.min() > 0)
        cond = float(ev.max() / ev.min()) if pd_ else float("inf")
        vec = np.linalg.eigh(H)[1][:, 0]
    else:
        ev, pd_, cond, vec = np.array([]), False, float("nan"), np.zeros(fidx.size)
    weakest = {names[fidx[i]]: float(vec[i]) for i in np.argsort(-np.abs(vec))[:3]} if vec.size else {}
    hessian = {"space": f"fitted ({prob.space} residuals; parameters as fitted, e.g. log A)",
               "eigenvalues": ev.tolist(), "condition_number": cond, "positive_definite": pd_,
               "weakest_direction": weakest}
    if not pd_:
        _warn(warnings, "not_positive_definite",
              "the Hessian at the optimum is not positive definite: a flat or saddle direction along "
              + ", ".join(weakest) + " (the data do not determine this combination)")
    elif cond > ILL_CONDITIONED:
        _warn(warnings, "ill_conditioned", f"the Hessian's condition number is {cond:.3g} (> {ILL_CONDITIONED:.0e}): "
                                           f"a nearly flat direction along " + ", ".join(weakest))
    J = prob.jacobian()[:, fidx]
    norms = np.linalg.norm(J, axis=0)
    zero_cols = [names[fidx[i]] for i in np.flatnonzero(norms == 0)]
    Jn = J / np.where(norms > 0, norms, 1.0)
    if J.size:
        _, sv, vt = np.linalg.svd(Jn, full_matrices=False)
        rel = sv / sv.max() if sv.max() > 0 else sv
    else:
        sv, rel, vt = np.array([]), np.array([]), np.zeros((0, 0))
    weak = np.flatnonzero(rel < WEAK)
    involved = sorted({int(i) for k in weak for i in np.flatnonzero(np.abs(vt[k]) > 0.1)})
    weak_names = [names[fidx[i]] for i in involved]
    jac = {"singular_values": rel.tolist(),
           "condition_number": float(rel.max() / rel.min()) if rel.size and rel.min() > 0 else float("inf"),
           "n_unidentified": int(weak.size), "unidentified": weak_names, "no_effect": zero_cols}
    if weak.size:
        _warn(warnings, "unidentified",
              f"the data cannot separate {', '.join(weak_names)}: the fitted values do not change along "
              f"{'a combination' if weak.size == 1 else f'{weak.size} combinations'} of them (Jacobian "
              f"singular value < {WEAK:g} of the largest)")
    for name in zero_cols:
        _warn(warnings, "no_effect", f"{name} has no effect on any fitted run")

    # 4. data ---------------------------------------------------------------------------------
    _data_warnings(law, prob.table, fit, warnings)

    # 5. profile intervals: open ends name the parameters that cannot be pinned down ----------------
    prof = None
    if profile:
        prof = profile_intervals(fit, table, level=level, problem=prob)
        warnings.extend(profile_warnings(law, prof))
    return Diagnosis(law=law.name, n_runs=len(prob.table), optima=shown, n_starts=int(ms.n_starts),
                     n_converged=n_conv, spread=spread, on_bound=on_bound, hessian=hessian, jacobian=jac,
                     warnings=warnings, n_distinct=len(optima), profile=prof)
