"""A fitted law and its data seen as the fitter's problem again (for bootstrap, diagnosis, checks).

:func:`scalinglaws.fit` builds the problem (design, targets, bounds, fixed parameters)
and hands it to the fitter.  The trust tools (bootstrap, diagnose, validate, compare)
need the same problem around a finished fit: :class:`FitProblem` rebuilds it from a
:class:`~scalinglaws.fitting.api.FitResult` and the run table the fit was made on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from scalinglaws.fitting.api import FitResult, LawModel, Problem, canonical_table
from scalinglaws.data.errors import InputError
from scalinglaws.fitting.fitter import RobustLoss
from scalinglaws.laws import Law, get_law


def load_table(runs, law: str | Law | None = None, *, mapping=None, where: str | None = None,
               exclude_top: int = 0, required: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A canonical run table (``runs`` a path or a DataFrame), filtered like :func:`scalinglaws.fit` does.

    A table that is already canonical (from :func:`scalinglaws.load_runs`) is returned as it is
    when no filter is asked for.
    """
    if required is None:
        required = () if law is None else tuple(get_law(law).required_columns()) + (get_law(law).target,)
    return canonical_table(runs, required, mapping=mapping, where=where, exclude_top=exclude_top)


def subset(table: pd.DataFrame, mask) -> pd.DataFrame:
    """Rows of ``table`` where ``mask`` holds, keeping the table's attributes (its source)."""
    out = table[np.asarray(mask, dtype=bool)]
    out.attrs.update(table.attrs)
    return out


def select(table: pd.DataFrame, expression: str, option: str = "--holdout") -> np.ndarray:
    """Boolean mask of the runs matching a pandas ``query`` expression (suffixes allowed)."""
    from scalinglaws.data.units import expand_suffixes
    try:
        mask = table.eval(expand_suffixes(expression))
        mask = np.asarray(mask, dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{option} {expression!r}: {msg}", file=table.attrs.get("source")) from None
    if mask.shape != (len(table),):
        raise InputError(f"{option} {expression!r} is not a condition on the runs (e.g. \"N>=1e9\")")
    return mask


@dataclass
class FitProblem:
    """Everything the fitter saw for one fit, rebuilt around its result.

    Attributes
    ----------
    law : the (specialised) law
    table : the rows the law is fitted on (after ``law.prepare``)
    model : the law on those rows as the fitter's model (:class:`~scalinglaws.fitting.api.LawModel`)
    X : the design arrays
    obs : observed target per run (``loss``, or what the law predicts)
    y : the target in the fitted space (``log obs`` in log space)
    loss : the robust loss (:class:`~scalinglaws.fitting.fitter.RobustLoss`)
    space : ``"log"`` or ``"linear"``
    lower, upper : bounds in the fitted space (widened to hold fixed values)
    free : which parameters are fitted (False: held by ``fix``)
    x : the optimum in the fitted space
    """

    law: Law
    table: pd.DataFrame
    model: LawModel
    X: Mapping[str, np.ndarray]
    obs: np.ndarray
    y: np.ndarray
    loss: RobustLoss
    space: str
    lower: np.ndarray
    upper: np.ndarray
    free: np.ndarray
    x: np.ndarray

    @classmethod
    def from_fit(cls, fit: FitResult, runs: pd.DataFrame) -> "FitProblem":
        """The problem of ``fit`` on ``runs`` (the runs given to the fit: its ``where`` and
        ``exclude_top`` are applied again, and the run count must match)."""
        space = fit.loss.get("space", "log")
        p = Problem.from_fit(fit, runs)  # the fit's own filters, checked against its run count
        return cls(law=p.law, table=p.table, model=p.model, X=p.model.X, obs=p.law.observed(p.table), y=p.y,
                   loss=p.loss, space=space, lower=p.lower, upper=p.upper, free=p.free,
                   x=p.law.to_internal(fit.params))

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def n_free(self) -> int:
        return int(self.free.sum())

    def _theta(self, theta):
        return self.x if theta is None else np.asarray(theta, dtype=float)

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
        (smooth) Jacobian -- not of the gradient, whose Huber ``psi`` has kinks.
        """
        th = self._theta(theta)
        with np.errstate(all="ignore"):
            f, cache = self.model.evaluate(th[None, :])
        r = f[0] - self.y
        psi = self.loss.psi(r)
        curved = self.law.has_curvature
        _, H = self.model.grad_hess(th[None, :], cache, psi[None, :], self.loss.dpsi(r)[None, :],
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
