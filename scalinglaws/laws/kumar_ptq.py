"""Kumar PTQ: Chinchilla plus the loss that post-training quantization adds.

Kumar et al. 2024, "Scaling Laws for Precision", Eq. 2 (post-train quantization)::

    L = E + A / N^alpha + B / D^beta + delta_PTQ
    delta_PTQ = C_T * D^gamma_D / N^gamma_N * exp(-ptq_bits / gamma_post)

``delta_PTQ`` is the degradation from quantizing the weights of a trained model to
``ptq_bits`` bits.  It *grows* with the tokens seen in pre-training (gamma_D > 0) and
shrinks with model size, so past a critical data size more pre-training data makes
the quantized model worse.

One fit takes unquantized and quantized rows together: rows with ``ptq_bits >= 16``
(an empty ``ptq_bits`` cell loads as 16) have no PTQ term at all.  That is decided
by a mask computed in :meth:`KumarPTQ.design`, not by the formula (which would give
a small, non-zero term at 16 bits).

Fitted in log-sum-exp form, ``log L = LSE(a - alpha lnN, b - beta lnD, e,
c + gamma_D lnD - gamma_N lnN - ptq_bits / gamma_post)`` (the last term only on PTQ
rows), with ``a = log A``, ``b = log B``, ``e = log E``, ``c = log C_T``.

Parameters
----------
E : irreducible loss (nats/token).
A, alpha : scale and exponent of the finite-model term A / N^alpha.
B, beta : scale and exponent of the finite-data term B / D^beta.
C_T : scale of the PTQ degradation.
gamma_D : how fast the PTQ degradation grows with training tokens D.
gamma_N : how fast the PTQ degradation shrinks with parameters N.
gamma_post : bit scale of the PTQ degradation: each extra bit divides it by exp(1/gamma_post).

Preset ``kumar2024-ptq``: Kumar et al. 2024, Appendix K, Table 2 (the same table's
training-precision constants are the ``kumar2024`` preset of ``kumar-precision``;
preset names are unique across the registry, hence the suffix).

Planners
--------
``data`` (``--N``, ``--ptq-bits``): the critical data size, where dL/dD = 0,
``D_crit = (beta B N^gamma_N exp(ptq_bits/gamma_post) / (gamma_D C_T))^(1/(gamma_D+beta))``;
training on more tokens than D_crit makes the ``ptq_bits`` model worse.
``compute`` (``--flops``, optional ``--ptq-bits``): the Chinchilla allocation of the
unquantized part for C = 6ND, and the loss after PTQ at that allocation.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, check_positive, lse, require
from scalinglaws.laws.chinchilla import compute_optimal

_E, _A, _B, _ALPHA, _BETA, _C, _GD, _GN, _GP = range(9)
#: log of a term that is absent (rows without PTQ): exp of it is exactly 0.
_ABSENT = -1.0e4


def check_bits(**values) -> None:
    """Planner checks: every bit-width given must be a finite number >= 1."""
    for k, v in values.items():
        if v is None:
            continue
        if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v >= 1):
            raise InputError(f"--{k.replace('_', '-')} must be a number of bits >= 1 "
                             f"(a number format needs at least one bit), got {v}")


def ptq_delta(params, N, D, ptq_bits):
    """delta_PTQ of Kumar et al. (Eq. 2); 0 where ``ptq_bits >= 16`` (no PTQ)."""
    N, D, P = (np.asarray(v, dtype=float) for v in (N, D, ptq_bits))
    d = params["C_T"] * D ** params["gamma_D"] / N ** params["gamma_N"] * np.exp(-P / params["gamma_post"])
    return np.where(P < 16, d, 0.0)


class KumarPTQ(Law):
    name = "kumar-ptq"
    title = "Kumar PTQ: Chinchilla plus post-training-quantization degradation"
    reference = "Kumar et al. 2024, Scaling Laws for Precision (Eq. 2)"
    formula = ("L = E + A/N^alpha + B/D^beta + delta_PTQ, "
               "delta_PTQ = C_T D^gamma_D / N^gamma_N exp(-ptq_bits/gamma_post) (0 when ptq_bits >= 16)")
    params = (
        Param("E", "irreducible loss (nats/token)", (-5.0, 5.0), (0.0, 1.0), log=True),
        Param("A", "scale of the finite-model term", (-10.0, 60.0), (4.0, 10.0), log=True),
        Param("B", "scale of the finite-data term", (-10.0, 60.0), (4.0, 10.0), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.3, 0.6)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.3, 0.6)),
        Param("C_T", "scale of the PTQ degradation", (-40.0, 40.0), (-3.0, 0.0), log=True),
        Param("gamma_D", "growth of the PTQ degradation with tokens D", (0.0, 5.0), (0.5,)),
        Param("gamma_N", "decay of the PTQ degradation with parameters N", (0.0, 5.0), (0.5,)),
        Param("gamma_post", "bit scale of the PTQ degradation (exp(-ptq_bits/gamma_post))",
              (0.02, 20.0), (0.5, 1.5)),
    )
    columns = ("N", "D", "ptq_bits")
    presets = {
        "kumar2024-ptq": Preset(
            {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
             "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907},
            "Kumar et al. 2024, Scaling Laws for Precision, Appendix K, Table 2 (Eq. 2 constants)"),
    }
    planners = (
        Planner("data", "critical data size: tokens beyond which more pre-training makes the "
                        "PTQ model worse", "plan_data", ("N", "ptq_bits")),
        Planner("compute", "compute-optimal N and D for C = 6ND (unquantized part), and the loss "
                           "after PTQ there", "plan_compute", ("flops", "ptq_bits")),
    )

    def design(self, runs):
        X = super().design(runs)
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        X["ptq_mask"] = X["ptq_bits"] < 16.0  # explicit: >= 16 bits means no PTQ
        return X

    def log_predict(self, theta, X):
        t = np.asarray(theta)
        lnN, lnD, P = X["lnN"], X["lnD"], X["ptq_bits"]
        ptq = t[:, _C, None] + t[:, _GD, None] * lnD - t[:, _GN, None] * lnN - P / t[:, _GP, None]
        ptq = np.where(X["ptq_mask"][None, :], ptq, _ABSENT)
        return lse(t[:, _A, None] - t[:, _ALPHA, None] * lnN,
                   t[:, _B, None] - t[:, _BETA, None] * lnD,
                   t[:, _E, None] + 0.0 * lnN,
                   ptq)

    # analytic Jacobian: log L = log sum_k exp(u_k), d/dtheta = sum_k p_k du_k/dtheta
    def log_predict_jac(self, theta, X):
        t = np.asarray(theta, dtype=float)
        lnN, lnD, P, mask = X["lnN"], X["lnD"], X["ptq_bits"], X["ptq_mask"][None, :]
        gp = t[:, _GP, None]
        u = np.stack(np.broadcast_arrays(
            t[:, _A, None] - t[:, _ALPHA, None] * lnN,
            t[:, _B, None] - t[:, _BETA, None] * lnD,
            t[:, _E, None] + 0.0 * lnN,
            np.where(mask, t[:, _C, None] + t[:, _GD, None] * lnD - t[:, _GN, None] * lnN - P / gp, _ABSENT)))
        m = u.max(axis=0)
        ex = np.exp(u - m)
        s = ex.sum(axis=0)
        p = ex / s
        J = np.empty(p.shape[1:] + (9,))
        J[:, :, _A], J[:, :, _ALPHA] = p[0], -p[0] * lnN
        J[:, :, _B], J[:, :, _BETA] = p[1], -p[1] * lnD
        J[:, :, _E] = p[2]
        J[:, :, _C], J[:, :, _GD], J[:, :, _GN] = p[3], p[3] * lnD, -p[3] * lnN
        J[:, :, _GP] = p[3] * P / gp**2
        return m + np.log(s), J

    # planners --------------------------------------------------------------------
    def plan_data(self, params, N: float | None = None, ptq_bits: float | None = None):
        """Critical data size D_crit for a model of ``N`` parameters quantized to ``ptq_bits``."""
        require(N=N, ptq_bits=ptq_bits)
        check_positive(N=N)
        check_bits(ptq_bits=ptq_bits)
        if ptq_bits >= 16:
            raise InputError(f"--ptq-bits {ptq_bits} means no post-training quantization (>= 16 bits); "
                             "without it more data always lowers the loss, so there is no critical data size")
        p = params
        if not (p["gamma_D"] > 0 and p["C_T"] > 0 and p["beta"] > 0 and p["B"] > 0):
            raise InputError("these parameters have no critical data size: it needs C_T, gamma_D, B and "
                             f"beta > 0 (got C_T={p['C_T']:g}, gamma_D={p['gamma_D']:g}, B={p['B']:g}, "
                             f"beta={p['beta']:g})")
        log_d = (math.log(p["beta"] * p["B"]) + p["gamma_N"] * math.log(N) + ptq_bits / p["gamma_post"]
                 - math.log(p["gamma_D"] * p["C_T"])) / (p["gamma_D"] + p["beta"])
        d_crit = math.exp(log_d)
        base = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / d_crit ** p["beta"]
        delta = float(ptq_delta(p, N, d_crit, ptq_bits))
        res = {"N": float(N), "ptq_bits": ptq_bits, "D_crit": d_crit, "tokens_per_param": d_crit / N,
               "loss_fp_at_D_crit": base, "delta_ptq_at_D_crit": delta, "loss_at_D_crit": base + delta}
        res["summary"] = (f"a {human(N)}-parameter model quantized to {ptq_bits:g} bits after training is best "
                          f"at D_crit = {human(d_crit)} tokens ({d_crit / N:.3g} tokens/parameter, loss "
                          f"{base + delta:.4f}); more pre-training data makes it worse")
        return res

    def plan_compute(self, params, flops: float | None = None, ptq_bits: float | None = None):
        """Chinchilla allocation of the unquantized part for ``flops``; loss after PTQ there."""
        require(flops=flops)
        check_bits(ptq_bits=ptq_bits)
        p = params
        res = compute_optimal(p["E"], p["A"], p["B"], p["alpha"], p["beta"], flops)
        summary = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                   f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f} unquantized")
        if ptq_bits is not None:
            delta = float(ptq_delta(p, res["N_opt"], res["D_opt"], ptq_bits))
            res.update(ptq_bits=ptq_bits, delta_ptq=delta, loss_ptq=res["loss"] + delta)
            summary += f", {res['loss_ptq']:.4f} after PTQ to {ptq_bits:g} bits"
        res["summary"] = summary
        return res
