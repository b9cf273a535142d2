"""Chinchilla: L(N, D) = E + A / N^alpha + B / D^beta.

Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", Approach 3.

Fitted in log-sum-exp form, ``log L = LSE(a - alpha log N, b - beta log D, e)`` with
``a = log A``, ``b = log B``, ``e = log E``, from Hoffmann's grid of 4,500 starts:
alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.

Parameters
----------
E : irreducible loss (nats/token), the loss of an infinite model on infinite data.
A, alpha : scale and exponent of the finite-model term A / N^alpha.
B, beta : scale and exponent of the finite-data term B / D^beta.

Planner ``compute``: for a budget C = 6 N D FLOPs,
``G = (alpha A / (beta B))^(1/(alpha+beta))``, ``N_opt = G (C/6)^(beta/(alpha+beta))``,
``D_opt = (C/6) / N_opt``.
"""

from __future__ import annotations

import numpy as np

from ..units import human
from .base import Law, Param, Planner, Preset, check_positive, lse, require

_E, _A, _B, _ALPHA, _BETA = range(5)


def compute_optimal(E: float, A: float, B: float, alpha: float, beta: float, flops: float) -> dict:
    """Compute-optimal N and D for ``flops = 6 N D`` under the Chinchilla law (closed form)."""
    check_positive(flops=flops)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n_opt = G * (flops / 6.0) ** (beta / (alpha + beta))
    d_opt = (flops / 6.0) / n_opt
    loss = E + A / n_opt**alpha + B / d_opt**beta
    return {"flops": flops, "N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt, "loss": loss}


class Chinchilla(Law):
    name = "chinchilla"
    title = "Chinchilla: loss from parameters and tokens"
    reference = "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (Approach 3)"
    formula = "L = E + A/N^alpha + B/D^beta"
    params = (
        Param("E", "irreducible loss (nats/token)", (-5.0, 5.0), (-1.0, -0.5, 0.0, 0.5, 1.0), log=True),
        Param("A", "scale of the finite-model term", (-10.0, 60.0), (0.0, 5.0, 10.0, 15.0, 20.0, 25.0), log=True),
        Param("B", "scale of the finite-data term", (-10.0, 60.0), (0.0, 5.0, 10.0, 15.0, 20.0, 25.0), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.0, 0.5, 1.0, 1.5, 2.0)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.0, 0.5, 1.0, 1.5, 2.0)),
    )
    columns = ("N", "D")
    presets = {
        "hoffmann2022": Preset(
            {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
            "Hoffmann et al. 2022, Approach 3 (Section 3.3, Eq. 10)"),
        "besiroglu2024": Preset(
            {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
            "Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt (Eq. 4)"),
    }
    planners = (Planner("compute", "compute-optimal N and D for a FLOP budget C = 6ND", "plan_compute",
                        ("flops",)),)
    has_curvature = True

    def design(self, runs):
        X = super().design(runs)
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        return X

    def log_predict(self, theta, X):
        t = np.asarray(theta)
        if np.iscomplexobj(t):  # complex-step callers: the stable log-sum-exp form
            return lse(t[:, _A, None] - t[:, _ALPHA, None] * X["lnN"],
                       t[:, _B, None] - t[:, _BETA, None] * X["lnD"],
                       t[:, _E, None] + 0.0 * X["lnN"])
        return np.log(self._terms(t, X)[3])

    # analytic derivatives --------------------------------------------------------
    # With u = (a - alpha lnN, b - beta lnD, e) and p = softmax(u):
    #   d logL / d theta = sum_k p_k m_k,  Hessian = sum_k p_k m_k m_k^T - J J^T,
    # where m_k = d u_k / d theta is fixed by the data.  The bounds on a, b, e keep
    # exp(u) finite, so the terms are summed directly (faster than log-sum-exp).
    @staticmethod
    def _terms(t, X):
        with np.errstate(over="ignore", under="ignore"):
            t1 = np.exp(t[:, _A, None] - t[:, _ALPHA, None] * X["lnN"])
            t2 = np.exp(t[:, _B, None] - t[:, _BETA, None] * X["lnD"])
            t3 = np.exp(t[:, _E, None])
        return t1, t2, t3, t1 + t2 + t3

    def log_predict_jac(self, theta, X):
        t = np.asarray(theta, dtype=float)
        t1, t2, t3, L = self._terms(t, X)
        p1, p2 = t1 / L, t2 / L
        J = np.empty(p1.shape + (5,))
        J[:, :, _E] = t3 / L
        J[:, :, _A] = p1
        J[:, :, _B] = p2
        J[:, :, _ALPHA] = -p1 * X["lnN"]
        J[:, :, _BETA] = -p2 * X["lnD"]
        return np.log(L), J

    def curvature(self, theta, X, w):
        t = np.asarray(theta, dtype=float)
        t1, t2, t3, L = self._terms(t, X)
        p = (t1 / L, t2 / L, t3 / L)
        lnN, lnD, one = X["lnN"], X["lnD"], np.ones_like(X["lnN"])
        # m_k as sparse (index, coefficient) lists: m_1 = e_a - lnN e_alpha, ...
        m = (((_A, one), (_ALPHA, -lnN)), ((_B, one), (_BETA, -lnD)), ((_E, one),))
        S = t.shape[0]
        H = np.zeros((S, 5, 5))
        for k in range(3):
            wk = w * p[k]
            for (i, ci) in m[k]:
                for (j, cj) in m[k]:
                    H[:, i, j] += wk @ (ci * cj)
            for l in range(3):
                wkl = wk * p[l]
                for (i, ci) in m[k]:
                    for (j, cj) in m[l]:
                        H[:, i, j] -= wkl @ (ci * cj)
        return H

    # planners --------------------------------------------------------------------
    def plan_compute(self, params, flops: float | None = None):
        """Compute-optimal allocation for ``flops`` (C = 6ND)."""
        require(flops=flops)
        res = compute_optimal(params["E"], params["A"], params["B"], params["alpha"], params["beta"], flops)
        res["summary"] = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                          f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f}")
        return res
