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
from scalinglaws.laws.derive import ByIdentity

_E, _A, _B, _ALPHA, _BETA = range(5)

# The fitter's fast path below: every sum over runs in g and H is one weight vector (a row of ``W``
# in ``grad_hess``) times one of six features; for each entry of g, then of H (row-major), its
# (row, feature) and sign.
_G = ((8, 0, 1), (6, 0, 1), (7, 0, 1), (6, 1, -1), (7, 2, -1))  # E, A, B, alpha, beta
_H = {(_E, _E): (2, 0, 1),
      (_A, _A): (0, 0, 1), (_A, _ALPHA): (0, 1, -1), (_ALPHA, _ALPHA): (0, 3, 1),
      (_B, _B): (1, 0, 1), (_B, _BETA): (1, 2, -1), (_BETA, _BETA): (1, 4, 1),
      (_A, _E): (4, 0, 1), (_ALPHA, _E): (4, 1, -1), (_B, _E): (5, 0, 1), (_BETA, _E): (5, 2, -1),
      (_A, _B): (3, 0, 1), (_A, _BETA): (3, 2, -1), (_ALPHA, _B): (3, 1, -1), (_ALPHA, _BETA): (3, 5, 1)}
_H.update({(j, i): v for (i, j), v in list(_H.items())})
_ENTRIES = list(_G) + [_H[i, j] for i in range(5) for j in range(5)]
_PICK = np.array([r * 6 + k for r, k, _ in _ENTRIES])
_SIGN = np.array([float(sign) for *_, sign in _ENTRIES])


def compute_optimal(E: float, A: float, B: float, alpha: float, beta: float, flops: float) -> dict:
    """Compute-optimal N and D for ``flops = 6 N D`` under the Chinchilla law (closed form)."""
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    n_opt = G * (flops / 6.0) ** (beta / (alpha + beta))
    d_opt = (flops / 6.0) / n_opt
    loss = E + A / n_opt**alpha + B / d_opt**beta
    return {"flops": flops, "N_opt": n_opt, "D_opt": d_opt, "tokens_per_param": d_opt / n_opt, "loss": loss}


#: the six features (n, 6) of Chinchilla's Newton step (1, ln N, ln D and their products), kept for
#: the last few designs seen (the fitter asks for the same design every iteration)
_features = ByIdentity(lambda lnN, lnD: np.stack([np.ones_like(lnN), lnN, lnD, lnN * lnN, lnD * lnD, lnN * lnD],
                                                 axis=1), 8)


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
    amplitudes = ("E", "A", "B")  # the formula is affine in them: solved per start, not searched
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

    def evaluate(self, theta, X, jac=False):  # (the cache serves grad_hess either way)
        t1, t2, t3, L = self._terms(np.asarray(theta), X)
        inv = np.reciprocal(L)
        t1 *= inv
        t2 *= inv
        inv *= t3
        return np.log(L, out=L), (t1, t2, inv)

    def grad_hess(self, theta, X, cache, psi, hw, cw):
        p1, p2, p3 = cache
        phi = _features(X["lnN"], X["lnD"])
        S, n = psi.shape
        c = hw if cw is None else hw - cw     # weight of J J^T
        W = np.empty((S, 9 if cw is None else 12, n), dtype=psi.dtype)
        np.multiply(c, p1, out=W[:, 6])
        np.multiply(c, p2, out=W[:, 7])
        np.multiply(W[:, 6], p1, out=W[:, 0])
        np.multiply(W[:, 7], p2, out=W[:, 1])
        np.multiply(W[:, 6], p2, out=W[:, 3])
        np.multiply(W[:, 6], p3, out=W[:, 4])
        np.multiply(W[:, 7], p3, out=W[:, 5])
        np.multiply(c, p3, out=W[:, 8])
        np.multiply(W[:, 8], p3, out=W[:, 2])
        np.multiply(psi, p1, out=W[:, 6])     # the gradient's weights
        np.multiply(psi, p2, out=W[:, 7])
        np.multiply(psi, p3, out=W[:, 8])
        if cw is not None:                    # + sum_k cw p_k m_k m_k^T
            for k, p in enumerate((p1, p2, p3)):
                np.multiply(cw, p, out=W[:, 9 + k])
        s = (W.reshape(-1, n) @ phi).reshape(S, -1)
        if cw is not None:
            s[:, :18] += s[:, 54:72]
        out = s[:, _PICK] * _SIGN
        return out[:, :5], out[:, 5:].reshape(S, 5, 5)

    # planners --------------------------------------------------------------------
    def plan_compute(self, params, flops):
        """Compute-optimal allocation for ``flops`` (C = 6ND)."""
        res = compute_optimal(params["E"], params["A"], params["B"], params["alpha"], params["beta"], flops)
        res["summary"] = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                          f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f}")
        return res
