"""A law and its runs seen as the fitter's problem: model, targets, bounds, held parameters.

:func:`scalinglaws.fit` builds a :class:`Problem` (:meth:`Problem.build`) and hands it to
the fitter, which knows no law: it sees a :class:`LawModel` with values, derivatives
and (optionally) curvature.  The trust tools (bootstrap, diagnose, validate) rebuild the
same problem around a finished fit (:meth:`Problem.from_fit`) and use its objective,
gradient, Hessian and Jacobian at the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.runs import canonical_table
from scalinglaws.fitting.fitter import RobustLoss
from scalinglaws.fitting.options import FitOptions
from scalinglaws.laws import Law, get_law


def in_space(law: Law, table: pd.DataFrame, space: str) -> pd.DataFrame:
    """The rows of a prepared ``table`` whose observed target the fitted ``space`` can take.

    In log space a target <= 0 has no logarithm (a degradation ``loss - loss_fp`` that noise put
    at or below 0): such rows are left out (:attr:`Problem.not_positive` counts them), and a table
    with none left is refused; in linear space every row is kept (leaving the small measured
    values out would bias the fit up there)."""
    if space != "log":
        return table
    obs = np.asarray(law.observed(table), float)
    keep = ~(obs <= 0)
    if keep.all():
        return table
    if not keep.any():
        raise InputError(f"law '{law.name}' is fitted in log space, where a {law.target_name} <= 0 has no "
                         f"logarithm, and each of the {len(table)} runs has one (from {obs.min():.4g} to "
                         f"{obs.max():.4g}): fit it in linear space (--space linear)", file=table.attrs.get("source"))
    out = table[keep]
    out.attrs.update(table.attrs)
    return out


class LawModel:
    """A law and its design arrays seen as a plain model ``f(theta)`` for the fitter.

    ``space="log"`` fits ``log L`` (the default); ``space="linear"`` fits ``L`` itself.
    ``newton``: whether the model's curvature is added when the fitter asks for it (default:
    the law's ``newton_steps``; the exact Hessian of :meth:`Problem.hessian` always has it).
    """

    def __init__(self, law: Law, X: Mapping[str, np.ndarray], space: str = "log", dtype=np.float64,
                 newton: bool | None = None):
        if space not in ("log", "linear"):
            raise OptionError("space", f"must be 'log' or 'linear', got {space!r}")
        self.dtype = np.dtype(dtype)
        self.law, self.space = law, space
        self.newton = law.newton_steps if newton is None else bool(newton)
        self.X = {k: np.asarray(v, dtype=self.dtype) for k, v in X.items()}

    def take(self, rows) -> "LawModel":
        """The same model on some of its runs (the fitter explores on a subset of a large table)."""
        n = max(np.size(v) for v in self.X.values())
        X = {k: (v[rows] if np.ndim(v) == 1 and v.shape[0] == n else v) for k, v in self.X.items()}
        return LawModel(self.law, X, self.space, self.dtype, self.newton)

    def astype(self, dtype) -> "LawModel":
        """The same model computing in ``dtype`` (the fitter explores in single precision)."""
        return self if np.dtype(dtype) == self.dtype else LawModel(self.law, self.X, self.space, dtype, self.newton)

    def value(self, theta):
        g = self.law.fit_log_predict(np.asarray(theta, dtype=self.dtype), self.X)
        return g if self.space == "log" else np.exp(g)

    def evaluate(self, theta, jac=False):
        g, cache = self.law.evaluate(np.asarray(theta, dtype=self.dtype), self.X, jac)
        if self.space == "log":
            return g, cache
        e = np.exp(g)
        return e, (cache, e)

    def grad_hess(self, theta, cache, psi, hw, cw):
        if not self.newton:
            cw = None
        if self.space == "log":
            return self.law.grad_hess(np.asarray(theta, dtype=self.dtype), self.X, cache, psi, hw, cw)
        # f = exp(g): J_f = f J_g and Hessian(f) = f (J_g J_g^T + Hessian(g)), so the
        # weights carry over to log space as psi f, hw f^2 + cw f and cw f
        cache, e = cache
        cwe = None if cw is None else cw * e
        hwe = hw * e * e + (0.0 if cw is None else cwe)
        return self.law.grad_hess(np.asarray(theta, dtype=self.dtype), self.X, cache, psi * e, hwe, cwe)


@dataclass
class Problem:
    """Everything the fitter sees for one fit.

    Attributes
    ----------
    law : the (specialised) law
    table : the rows the law is fitted on (after ``law.prepare``; in log space without the rows whose
        target is <= 0, :func:`in_space`)
    model : the law on those rows as the fitter's model (:class:`LawModel`)
    obs : observed target per run (``loss``, or what the law predicts)
    y : the target in the fitted space (``log obs`` in log space)
    options : the :class:`~scalinglaws.fitting.options.FitOptions`
    loss : the robust loss
    lower, upper : bounds in the fitted space (widened to hold fixed values)
    free : which parameters are fitted (False: held by ``fix``)
    held : fitted-space values of the held parameters (nan where free)
    x : the optimum in the fitted space (set by :meth:`from_fit`; None before a fit)
    """

    law: Law
    table: pd.DataFrame
    model: LawModel
    obs: np.ndarray
    y: np.ndarray
    options: FitOptions
    loss: RobustLoss
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray
    held: np.ndarray
    x: np.ndarray | None = None
    not_positive: int = 0   # rows left out because their target is <= 0 (log space: :func:`in_space`)

    @classmethod
    def build(cls, runs, law: str | Law, options: FitOptions | None = None, *, mapping=None) -> "Problem":
        law = get_law(law)
        opts = options if options is not None else FitOptions()
        table = law.prepare(load_table(runs, law, mapping=mapping, where=opts.where, exclude_top=opts.exclude_top))
        if len(table) == 0:
            raise InputError(f"no runs left for law '{law.name}'", file=table.attrs.get("source"))
        n_prepared = len(table)
        table = in_space(law, table, opts.space)
        law = law.specialize(table)  # laws whose parameter list depends on the data
        obs = law.observed(table)
        model = LawModel(law, law.design(table), opts.space)
        lo, hi = law.bounds()
        free = np.ones(len(law.params), bool)
        held = np.full(len(law.params), np.nan)
        for name, value in opts.fix.items():
            if name not in law.param_names:
                raise OptionError("fix", f"{name}: law '{law.name}' has no parameter {name!r}; "
                                         f"its parameters are {', '.join(law.param_names)}")
            j = law.param_names.index(name)
            prm = law.params[j]
            if not prm.contains(value):
                raise OptionError("fix", f"{name}={value:g} is outside the bounds of {name}, "
                                         f"[{prm.bounds[0]:.4g}, {prm.bounds[1]:.4g}]")
            free[j], held[j] = False, prm.to_internal(value, "fix")
        return cls(law=law, table=table, model=model, obs=obs, y=np.log(obs) if opts.space == "log" else obs,
                   options=opts, loss=opts.robust_loss(), lower=lo, upper=hi, free=free, held=held,
                   not_positive=n_prepared - len(table))

    @classmethod
    def from_fit(cls, result, runs, mapping=None) -> "Problem":
        """The problem ``result`` was fitted on: pass the same ``runs`` that were given to the fit
        (its ``where`` and ``exclude_top`` are applied again, and the run count must match)."""
        prob = cls.build(runs, result.law, result.options, mapping=mapping)
        if list(prob.law.param_names) != list(result.params):
            raise InputError(f"the fit's parameters ({', '.join(result.params)}) do not match law "
                             f"'{prob.law.name}' on these runs ({', '.join(prob.law.param_names)}): "
                             f"are these the runs of the fit?", file=prob.table.attrs.get("source"))
        if len(prob.table) != result.n_runs:
            raise InputError(f"the fit was made on {result.n_runs} runs but these give {len(prob.table)}: "
                             f"are these the runs of the fit?", file=prob.table.attrs.get("source"))
        prob.x = prob.law.to_internal(result.params)
        return prob

    @property
    def fixed(self) -> dict:
        return dict(self.options.fix)

    @property
    def space(self) -> str:
        return self.options.space

    @property
    def X(self) -> Mapping[str, np.ndarray]:
        return self.model.X

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def n_free(self) -> int:
        return int(self.free.sum())

    def on_bound(self, theta: np.ndarray | None = None) -> list[str]:
        """Free parameters within 1e-6 of their range (at least 1e-6) of a bound of the fitted space at ``theta``."""
        th = self._theta(theta)
        tol = 1e-6 * np.maximum(1, self.upper - self.lower)
        return [p.name for j, p in enumerate(self.law.params)
                if self.free[j] and (abs(th[j] - self.lower[j]) <= tol[j] or abs(th[j] - self.upper[j]) <= tol[j])]

    def hold(self, starts: np.ndarray) -> np.ndarray:
        """``starts`` with the held parameters set to their values."""
        starts = np.array(starts, dtype=float)
        j = ~self.free
        starts[:, j] = self.held[j]
        return starts

    # ------------------------------------------------- the objective around a point
    def _theta(self, theta):
        if theta is None:
            if self.x is None:
                raise ValueError("no point given and the problem has no fitted optimum")
            return self.x
        return np.asarray(theta, dtype=float)

    def value_jac(self, theta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fitted values (n,) in the fitted space and their Jacobian (n, P) at ``theta``."""
        th = self._theta(theta)
        with np.errstate(all="ignore"):
            g, J = self.law.log_predict_jac(th[None, :], self.X)
        g, J = np.asarray(g[0], float), np.asarray(J[0], float)
        if self.space == "log":
            return g, J
        e = np.exp(g)
        return e, J * e[:, None]

    def residuals(self, theta: np.ndarray | None = None) -> np.ndarray:
        """Observed minus fitted, in the fitted space (``log(obs/fit)`` in log space)."""
        th = self._theta(theta)
        with np.errstate(all="ignore"):
            g = self.law.log_predict(th[None, :], self.X)[0]
        return self.y - (g if self.space == "log" else np.exp(g))

    def objective(self, theta: np.ndarray | None = None) -> float:
        return float(np.sum(self.loss.rho(-self.residuals(theta))))

    def gradient(self, theta: np.ndarray | None = None) -> np.ndarray:
        """Gradient of the summed robust loss at ``theta`` (P,)."""
        f, J = self.value_jac(theta)
        return J.T @ self.loss.psi(f - self.y)

    def hessian(self, theta: np.ndarray | None = None) -> np.ndarray:
        """Hessian of the summed robust loss at ``theta`` (P, P), in the fitted space.

        ``J^T diag(rho'') J + sum_i rho'(r_i) Hessian(f_i)``: exact when the law gives its
        curvature, otherwise with the model's curvature from central differences of its
        (smooth) Jacobian -- not of the gradient, whose Huber ``psi`` has kinks.  Kept for the
        last ``theta`` asked (diagnose and its profile both want it at the optimum).
        """
        th = self._theta(theta)
        key = th.tobytes()
        memo = getattr(self, "_hessian_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1].copy()
        H = self._hessian(th)
        self._hessian_memo = (key, H)
        return H.copy()

    def _hessian(self, th: np.ndarray) -> np.ndarray:
        model = LawModel(self.law, self.X, self.space, newton=True)
        with np.errstate(all="ignore"):
            f, cache = model.evaluate(th[None, :])
        r = f[0] - self.y
        psi = self.loss.psi(r)
        curved = self.law.has_curvature
        _, H = model.grad_hess(th[None, :], cache, psi[None, :], self.loss.dpsi(r)[None, :],
                                    psi[None, :] if curved else None)
        H = H[0]
        if not curved:  # sum_i psi_i Hessian(f_i) from central differences of the (smooth) Jacobian
            P = th.size
            for j in range(P):
                h = 1e-5 * max(1.0, abs(th[j]))
                e = np.zeros(P)
                e[j] = h
                dJ = (self.value_jac(th + e)[1] - self.value_jac(th - e)[1]) / (2 * h)
                H[:, j] += dJ.T @ psi
        return 0.5 * (H + H.T)

    def jacobian(self, theta: np.ndarray | None = None) -> np.ndarray:
        """Jacobian of the fitted values (n, P) at ``theta``."""
        return self.value_jac(theta)[1]


def load_table(runs, law: str | Law | None = None, *, mapping=None, where: str | None = None,
               exclude_top: int = 0, required: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A canonical run table for ``law`` (its required columns and target checked), filtered as a fit filters it."""
    if required is None:
        required = () if law is None else tuple(get_law(law).required_columns()) + (get_law(law).target,)
    return canonical_table(runs, required, mapping=mapping, where=where, exclude_top=exclude_top)


def filtered_table(runs, law: str | Law | None, options: FitOptions, *, mapping=None,
                   required: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, FitOptions]:
    """The table filtered by the options' ``where`` and ``exclude_top``, and the options for the fits
    made on it (those filters already applied, so that no fit inside a check applies them twice)."""
    table = load_table(runs, law, mapping=mapping, where=options.where, exclude_top=options.exclude_top,
                       required=required)
    return table, options.replace(where=None, exclude_top=0)
