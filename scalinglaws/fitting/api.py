"""The user-facing Python API: ``fit`` and ``planner_method``.

This module joins a law (what to fit) to the fitter (how to fit): the fitter sees only
a model with values, derivatives and curvature (:class:`~scalinglaws.fitting.problem.LawModel`).

>>> import scalinglaws as sl
>>> res = sl.fit("data/synthetic_chinchilla.csv")                # doctest: +SKIP
>>> res.params                                                   # doctest: +SKIP
{'E': 1.81, 'A': 477.8, 'B': 2143.4, 'alpha': 0.347, 'beta': 0.367}
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from scalinglaws.data.errors import FitError, OptionError
from scalinglaws.fitting import amplitudes, defaults
from scalinglaws.fitting.fitter import explore_subset, minimize_multistart
from scalinglaws.fitting.identifiability import input_warnings, noise_warnings, parameter_warnings
from scalinglaws.fitting.options import FitOptions
from scalinglaws.fitting.problem import Problem
from scalinglaws.fitting.threads import one_blas_thread
from scalinglaws.fitting.result import FitResult
from scalinglaws.laws import DEFAULT_LAW, Law


def fit(runs, law: str | Law = DEFAULT_LAW, options: FitOptions | None = None, *, mapping=None, weights=None,
        init: Mapping[str, float] | None = None, progress: Callable[[float], None] | None = None,
        **option_values) -> FitResult:
    """Fit ``law`` to ``runs`` by robust multi-start minimisation.

    Parameters
    ----------
    runs : DataFrame or path
        Run table (see :func:`scalinglaws.load_runs`).
    law : str or Law
        A registered law name (``scalinglaws laws`` lists them); default the first registered.
    options : FitOptions, optional
        How to fit (loss, delta, space, starts, seed, fix, where, exclude_top, converge,
        confirm, max_iter, explore_rows, n_jobs); ``option_values`` replace single fields, e.g. ``fit(runs, delta=1e-2)``.
    mapping : dict or list of ``"COLUMN=canonical"``, optional
        Column renames for the table.
    weights : array, optional
        Run weights (bootstrap counts).
    init : dict, optional
        One extra start at these public values (added to the grid).
    progress : callable, optional
        Called with the fraction done.

    Returns
    -------
    FitResult
        ``params``, ``objective``, ``status`` (convergence, starts that reached the best,
        parameters on a bound) and ``multistart`` (every start's end point).
    """
    opts = FitOptions.of(options, **option_values)
    prob = Problem.build(runs, law, opts, mapping=mapping)
    law, table, lo, hi, free = prob.law, prob.table, prob.lower, prob.upper, prob.free
    w = None if weights is None else np.asarray(weights, dtype=float)
    if w is not None and (w.ndim != 1 or w.shape[0] != len(table)):
        raise OptionError("weights", f"must be one weight per fitted run ({len(table)} runs"
                                     + (f", {prob.not_positive} left out as <= 0 in log space" if prob.not_positive
                                        else "") + f"), got shape {w.shape}")
    S0 = prob.hold(_starts(law, opts.starts, opts.seed))
    solved = amplitudes.indices(law, free) if _grid(opts.starts) else []
    if solved:  # the grid's amplitudes solved for each start of the other parameters
        X, y, ws = prob.X, prob.y, w
        if opts.explore_rows and y.size > opts.explore_rows:  # the fitter's own exploring subset of a large table
            rows = explore_subset(y.size, opts.explore_rows, opts.seed)
            X, y, ws = prob.model.take(rows).X, y[rows], None if w is None else w[rows]
        S0, n_solved = amplitudes.solve(law, X, y, prob.space, prob.loss, S0, lo, hi, free, ws)
        solved = solved if n_solved else []
    if init:
        S0 = np.vstack([prob.hold(law.to_internal({**law.to_public(S0[0]), **init}, "init")[None]), S0])
    with one_blas_thread():
        res = minimize_multistart(prob.model, prob.y, S0, lo, hi, prob.loss, free=free, weights=w,
                                  max_iter=opts.max_iter, min_keep=survivors(opts, law) or len(S0), seed=opts.seed,
                                  explore_rows=opts.explore_rows, confirm=opts.confirm, n_jobs=opts.n_jobs,
                                  progress=progress)
    if not np.isfinite(res.fun):
        raise FitError(f"law '{law.name}': no start gave a finite objective on these runs")
    on_bound = prob.on_bound(res.x)
    status = {"converged": res.best_converged, "message": res.message, "n_starts": res.n_starts,
              "n_best": res.n_best, "n_stopped": res.n_stopped, "on_bound": on_bound, "n_iter": int(res.n_iter.max()),
              "n_distinct": int(len(np.unique(np.clip(S0, lo, hi), axis=0))), "solved": [law.param_names[j] for j in solved],
              "n_evals": res.n_evals}
    warnings = input_warnings(law, table) + parameter_warnings(prob, res.x, on_bound) + noise_warnings(
        prob, res.x, w)
    left = prob.not_positive
    if left:
        warnings.append({"code": "not_positive", "message": (
            f"{left} {'run has' if left == 1 else 'runs have'} a {law.target_name} <= 0, which has no logarithm: left out "
            f"of this log-space fit ({len(table)} runs fitted; --space linear keeps them)")})
    return FitResult(
        law=law.name, params=law.to_public(res.x), objective=res.fun, n_runs=len(table),
        loss=opts.loss_record(), fixed=dict(opts.fix), status=status,
        data={"source": table.attrs.get("source"), "where": opts.where, "exclude_top": opts.exclude_top,
              "columns": dict(table.attrs.get("columns") or {})},
        warnings=warnings, multistart=res)


def survivors(opts: FitOptions, law: Law) -> int:
    """Starts the fit runs to convergence: the option, else the law's own number, else the default
    (0: every start)."""
    if opts.converge is not None:
        return opts.converge
    return law.converge if law.converge is not None else defaults.CONVERGE


def _grid(starts) -> bool:
    """Whether the starts are the law's grid (random starts differ in every parameter: solving their amplitudes
    would merge none of them and cost a solve each; given starts are used as given)."""
    return starts is None or (isinstance(starts, str) and starts == "grid")


def _starts(law: Law, starts, seed: int) -> np.ndarray:
    if _grid(starts):
        return law.start_grid()
    if isinstance(starts, (int, np.integer)):
        grid = law.start_grid()
        lo, hi = grid.min(0), grid.max(0)
        rng = np.random.default_rng(seed)
        return lo + (hi - lo) * rng.random((int(starts), grid.shape[1]))
    arr = np.atleast_2d(np.asarray(starts, dtype=float))
    if arr.shape[1] != len(law.params):
        raise OptionError("starts", f"must have {len(law.params)} columns ({', '.join(law.param_names)})")
    return arr


def planner_method(fit: FitResult, kind: str, options: Mapping[str, Any]) -> Callable[[Mapping], dict]:
    """The planner ``kind`` of the fit's law with ``options`` read, checked and bound: a function of
    the parameters.  Options the planner does not take are refused, naming them."""
    law = fit.law_obj
    planner = law.planner(kind)
    values = planner.read(options)
    method = getattr(law, planner.method)
    return lambda params: method(params, **values)
