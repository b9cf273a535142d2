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

from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps

_E, _A, _B, _ALPHA, _BETA = range(5)


def compute_optimal(E: float, A: float, B: float, alpha: float, beta: float, flops: float) -> dict:
    """Compute-optimal N and D for ``flops = 6 N D`` under the Chinchilla law (closed form)."""
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n_opt = G * (flops / 6.0) ** (beta / (alpha + beta))
    d_opt = (flops / 6.0) / n_opt
    loss = E + A / n_opt**alpha + B / d_opt**beta
    return {"flops": flops, "N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt, "loss": loss}


class Chinchilla(Law):
    name = "chinchilla"
    title = "Chinchilla: loss from parameters and tokens"
    reference = "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models (Approach 3)"
    formula_text = "L = E + A/N^alpha + B/D^beta"
    params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(-1, -0.5, 0, 0.5, 1), log=True),
        Param("A", "scale of the finite-model term", exps(-10, 60), exps(0, 5, 10, 15, 20, 25), log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(0, 5, 10, 15, 20, 25), log=True),
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
                        required=("flops",)),)
    penalty_axes = ()
    figure = (View("curves", x="D", curves="N", title="loss against tokens, one curve per model size"),
              View("isoloss", title="iso-loss contours and the compute-optimal frontier"))
    newton_steps = True  # exact Newton near the optimum: its convex-in-practice landscape converges quadratically

    def formula(self, p, x, m=np):
        return p.E + p.A / x.N ** p.alpha + p.B / x.D ** p.beta

    def example(self):
        N, D = np.meshgrid(np.geomspace(1e7, 1e10, 5), np.geomspace(1e9, 1e12, 5))
        return dict(self.presets["besiroglu2024"].values), {"N": N.ravel(), "D": D.ravel()}

    # The fitter's fast path (benchmarks/law_speed.py measures it against the generic
    # derivatives of the formula; tests/test_laws_contract.py checks they agree).
    # With u = (a - alpha lnN, b - beta lnD, e) and p = softmax(u):
    #   J = d logL / d theta = sum_k p_k m_k,  Hessian(logL) = sum_k p_k m_k m_k^T - J J^T,
    # where m_k = d u_k / d theta is fixed by the data (m_1 = e_a - lnN e_alpha,
    # m_2 = e_b - lnD e_beta, m_3 = e_e).  The bounds on a, b, e keep exp(u) finite, so
    # the terms are summed directly (faster than log-sum-exp).  Every sum over runs that
    # the fitter needs is a weighted sum of the six features 1, lnN, lnD, lnN^2, lnD^2,
    # lnN lnD: one matrix product per weight, for all parameter vectors at once.
    def design(self, cols):
        X = super().design(cols)
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        return X

    @staticmethod
    def _terms(t, X):
        # in place, to keep the (S, n) temporaries few (this is the fitter's inner loop)
        with np.errstate(over="ignore", under="ignore"):
            t1 = np.multiply.outer(-t[:, _ALPHA], X["lnN"])
            t1 += t[:, _A, None]
            np.exp(t1, out=t1)
            t2 = np.multiply.outer(-t[:, _BETA], X["lnD"])
            t2 += t[:, _B, None]
            np.exp(t2, out=t2)
            t3 = np.exp(t[:, _E, None])
            L = t1 + t2
            L += t3
        return t1, t2, t3, L

    def log_predict(self, theta, X):
        return np.log(self._terms(np.asarray(theta), X)[3])

    def evaluate(self, theta, X):
        t1, t2, t3, L = self._terms(np.asarray(theta), X)
        inv = np.reciprocal(L)
        t1 *= inv
        t2 *= inv
        inv *= t3
        return np.log(L, out=L), (t1, t2, inv)

    def grad_hess(self, theta, X, cache, psi, hw, cw):
        p1, p2, p3 = cache
        lnN, lnD = X["lnN"], X["lnD"]
        phi = np.stack([np.ones_like(lnN), lnN, lnD, lnN * lnN, lnD * lnD, lnN * lnD], axis=1)
        g = np.empty(psi.shape[:1] + (5,))
        u1, u2 = psi * p1, psi * p2
        g[:, _E] = (psi * p3).sum(1)
        g[:, _A], g[:, _ALPHA] = u1.sum(1), -(u1 @ lnN)
        g[:, _B], g[:, _BETA] = u2.sum(1), -(u2 @ lnD)
        c = hw if cw is None else hw - cw     # weight of J J^T
        c1, c2 = c * p1, c * p2
        s11, s22, s33 = (c1 * p1) @ phi, (c2 * p2) @ phi, (c * p3 * p3) @ phi
        s12, s13, s23 = (c1 * p2) @ phi, (c1 * p3) @ phi, (c2 * p3) @ phi
        if cw is not None:                    # + sum_k cw p_k m_k m_k^T
            s11 = s11 + (cw * p1) @ phi
            s22 = s22 + (cw * p2) @ phi
            s33 = s33 + (cw * p3) @ phi
        H = np.empty(psi.shape[:1] + (5, 5))
        pairs = {(_E, _E): s33[:, 0],
                 (_A, _A): s11[:, 0], (_A, _ALPHA): -s11[:, 1], (_ALPHA, _ALPHA): s11[:, 3],
                 (_B, _B): s22[:, 0], (_B, _BETA): -s22[:, 2], (_BETA, _BETA): s22[:, 4],
                 (_A, _E): s13[:, 0], (_ALPHA, _E): -s13[:, 1],
                 (_B, _E): s23[:, 0], (_BETA, _E): -s23[:, 2],
                 (_A, _B): s12[:, 0], (_A, _BETA): -s12[:, 2], (_ALPHA, _B): -s12[:, 1],
                 (_ALPHA, _BETA): s12[:, 5]}
        for (i, j), v in pairs.items():
            H[:, i, j] = H[:, j, i] = v
        return g, H

    # planners --------------------------------------------------------------------
    def plan_compute(self, params, flops):
        """Compute-optimal allocation for ``flops`` (C = 6ND)."""
        res = compute_optimal(params["E"], params["A"], params["B"], params["alpha"], params["beta"], flops)
        res["summary"] = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                          f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f}")
        return res
