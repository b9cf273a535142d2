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
        return lse(t[:, _A, None] - t[:, _ALPHA, None] * X["lnN"],
                   t[:, _B, None] - t[:, _BETA, None] * X["lnD"],
                   t[:, _E, None] + 0.0 * X["lnN"])

    # analytic derivatives --------------------------------------------------------
    # With u = (a - alpha lnN, b - beta lnD, e) and p = softmax(u):
    #   d logL / d theta = sum_k p_k m_k,  Hessian = sum_k p_k m_k m_k^T - J J^T,
    # where m_k = d u_k / d theta is fixed by the data.
    def _softmax(self, theta, X):
        t = np.asarray(theta, dtype=float)
        u = np.stack([t[:, _A, None] - t[:, _ALPHA, None] * X["lnN"],
                      t[:, _B, None] - t[:, _BETA, None] * X["lnD"],
                      np.broadcast_to(t[:, _E, None], (t.shape[0], X["lnN"].size))])
        m = u.max(axis=0)
        ex = np.exp(u - m)
        s = ex.sum(axis=0)
        return m + np.log(s), ex / s

    @staticmethod
    def _m(X):
        n = X["lnN"].size
        m = np.zeros((3, n, 5))
        m[0, :, _A], m[0, :, _ALPHA] = 1.0, -X["lnN"]
        m[1, :, _B], m[1, :, _BETA] = 1.0, -X["lnD"]
        m[2, :, _E] = 1.0
        return m

    def log_predict_jac(self, theta, X):
        f, p = self._softmax(theta, X)
        m = self._m(X)
        J = np.einsum("ksn,knp->snp", p, m)
        return f, J

    def curvature(self, theta, X, w):
        _, p = self._softmax(theta, X)
        m = self._m(X)
        S, P = p.shape[1], 5
        out = np.zeros((S, P * P))
        for k in range(3):
            outer_kk = (m[k][:, :, None] * m[k][:, None, :]).reshape(-1, P * P)
            out += (w * p[k]) @ outer_kk
            for l in range(3):
                outer_kl = (m[k][:, :, None] * m[l][:, None, :]).reshape(-1, P * P)
                out -= (w * p[k] * p[l]) @ outer_kl
        return out.reshape(S, P, P)

    # planners --------------------------------------------------------------------
    def plan_compute(self, params, flops: float | None = None):
        """Compute-optimal allocation for ``flops`` (C = 6ND)."""
        require(flops=flops)
        res = compute_optimal(params["E"], params["A"], params["B"], params["alpha"], params["beta"], flops)
        res["summary"] = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                          f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f}")
        return res
