"""The baseline procedure of the published fits: one scipy L-BFGS-B call per start.

Objective: Huber loss (delta 1e-3) on residuals of log(loss), summed over runs, in
the log-sum-exp form of the Chinchilla law, with its analytic gradient (or finite
differences when ``analytic=False``).  Used by the benchmarks as the reference.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber


def make_objective(N, D, loss, delta=1e-3, weights=None):
    """Summed (or ``weights``-weighted) Huber loss of log residuals and its analytic gradient."""
    lnN, lnD, y = np.log(N), np.log(D), np.log(loss)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)

    def fun(x):
        e, a, b, alpha, beta = x
        u = np.stack([a - alpha * lnN, b - beta * lnD, np.full_like(lnN, e)])
        m = u.max(axis=0)
        ex = np.exp(u - m)
        s = ex.sum(axis=0)
        r = m + np.log(s) - y
        p = ex / s
        psi = w * np.clip(r, -delta, delta)
        g = np.array([psi @ p[2], psi @ p[0], psi @ p[1], -(psi * p[0]) @ lnN, -(psi * p[1]) @ lnD])
        return w @ huber(delta, r), g

    return fun


def baseline_fit(N, D, loss, starts, bounds, delta=1e-3, analytic=True):
    """Run L-BFGS-B from each start (rows of ``starts`` as (e, a, b, alpha, beta)).

    Returns (best_x, best_objective, all_objectives).
    """
    fun = make_objective(N, D, loss, delta)
    objs, xs = [], []
    for x0 in starts:
        if analytic:
            res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds)
        else:
            res = minimize(lambda x: fun(x)[0], x0, method="L-BFGS-B", bounds=bounds)
        objs.append(res.fun)
        xs.append(res.x)
    objs = np.array(objs)
    i = int(np.argmin(objs))
    return xs[i], objs[i], objs
