"""Kumar unified: low-precision training and post-training quantization in one law.

Kumar et al. 2024, "Scaling Laws for Precision", Section 5, Eq. 9 and 11 (Finding 4)::

    L = A N_eff^-alpha + B D^-beta + E + delta_PTQ
    N_eff = N prod_{x=w,a,kv} (1 - exp(-P_x/gamma_x + n_x))                (Eq. 4, offsets of App. K)
    delta_PTQ = C_T exp(-P_post/gamma_post) D^gamma_D / N_eff^gamma_N
                * prod_{x=w,a,kv} (1 - exp(-C_x (P_x - P_post)))           (Eq. 9)

P_w, P_a, P_kv are the training precisions (``w_bits``, ``a_bits``, ``kv_bits``) and
P_post the post-training weight precision (``ptq_bits``); an empty cell or an absent
column means 16.  The last product is the "robustification effect" (a model trained in
low precision degrades less when quantized afterwards), N_eff in delta_PTQ the competing
"overtraining effect".  Rows with ``ptq_bits >= 16`` have no PTQ term (the design variable
``q``), so there the law is ``kumar-precision``; trained in 16 bits it is Eq. 2 of
``kumar-ptq`` with N_eff (0.994 N with Table 2's constants) and robustification factors
close to 1.

Domain (Sec. 5): "We assume training precision is strictly greater than inference precision,
and define degradation as identically zero if they are equal."  Equal precisions give a
zero factor, so delta_PTQ = 0, as the paper defines; a PTQ row trained in fewer bits than
``ptq_bits`` in any part is outside the law: a fit refuses it, naming the row, and a
prediction for it is NaN.  N_eff must be positive, as in ``kumar-precision``.

No preset: the paper publishes no values of C_w, C_a, C_kv (Table 2 lists the other
constants; Eq. 10 takes C_w = 1 "for illustrative purposes").  ``example()`` uses Table 2
with C_x = 1.  Table 2's offset b of the PTQ exponential (see ``kumar-ptq``) is not a
parameter here: e^b multiplies C_T, so give C_T e^b to use Table 2's pair.

Parameters
----------
E, A, alpha, B, beta : as in Chinchilla, with N_eff for N.
gamma_w, gamma_a, gamma_kv, n_w, n_a, n_kv : N_eff's bit scales and offsets (``kumar-precision``).
C_T, gamma_D, gamma_N, gamma_post : the PTQ degradation's scale and exponents (``kumar-ptq``).
C_w, C_a, C_kv : how fast training in more bits than P_post stops protecting against PTQ.

Planner
-------
``data`` (``--N``, ``--ptq-bits``, optional ``--w-bits``, ``--a-bits``, ``--kv-bits``): the
critical data size of Appendix E.1 with training precision, where dL/dD = 0:
``D_crit = (beta B N_eff^gamma_N exp(P_post/gamma_post) / (gamma_D C_T R))^(1/(gamma_D+beta))``,
R the robustification product; beyond it more pre-training makes the quantized model worse.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import UNQUANTIZED_BITS
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, View, exps, row_error
from scalinglaws.laws.kumar_precision import TABLE2, KumarPrecision, precision_factor
from scalinglaws.laws.kumar_ptq import log_critical_data

_KINDS = ("w", "a", "kv")


def robustification(p, gaps, m=np):
    """prod_x (1 - exp(-C_x (P_x - P_post))) over w, a, kv (Eq. 9)."""
    r = 1.0
    for x, g in zip(_KINDS, gaps):
        r = r * (1.0 - m.exp(-p[f"C_{x}"] * g))
    return r


class KumarUnified(Law):
    name = "kumar-unified"
    title = "Kumar unified: low-precision training and post-training quantization together"
    reference = "Kumar et al. 2024, Scaling Laws for Precision (Eq. 9, 11; Finding 4)"
    formula_text = ("L = A N_eff^-alpha + B D^-beta + E + delta_PTQ, delta_PTQ = C_T exp(-P_post/gamma_post) "
                    "D^gamma_D / N_eff^gamma_N prod_x (1 - exp(-C_x (P_x - P_post))) (0 when ptq_bits >= 16), "
                    "N_eff = N prod_x (1 - exp(-P_x/gamma_x + n_x)), x = w, a, kv")
    params = KumarPrecision.params + (
        Param("C_T", "scale of the PTQ degradation", exps(-40, 40), exps(-3, 0), log=True),
        Param("gamma_D", "growth of the PTQ degradation with tokens D", (0.0, 5.0), (0.5,)),
        Param("gamma_N", "decay of the PTQ degradation with effective parameters N_eff", (0.0, 5.0), (0.5,)),
        Param("gamma_post", "bit scale of the PTQ degradation (exp(-ptq_bits/gamma_post))", (0.02, 20.0),
              (0.5, 1.5)),
        Param("C_w", "robustification rate of weight training precision above ptq_bits", exps(-7, 5), (1.0,),
              log=True),
        Param("C_a", "robustification rate of activation training precision above ptq_bits", exps(-7, 5), (1.0,),
              log=True),
        Param("C_kv", "robustification rate of key/value training precision above ptq_bits", exps(-7, 5), (1.0,),
              log=True),
    )
    # (E, A, B and C_T enter the formula affinely; solved per start (scalinglaws.fitting.amplitudes) they reach
    # the optimum on the example design, but kumar-precision's part of this law missed it on real runs that way,
    # and none of this law's are at hand: the grid is searched, docs/fitter-speed.md)
    columns = ("N", "D", "w_bits", "a_bits", "kv_bits", "ptq_bits")
    presets = {}
    planners = (
        Planner("data", "critical data size at a training precision: tokens beyond which more pre-training makes "
                        "the PTQ model worse", "plan_data", required=("N", "ptq_bits"),
                optional=("w_bits", "a_bits", "kv_bits")),
    )
    penalty_axes = ("bits", "tokens_per_byte")
    # 18 parameters and a rugged landscape: on seven tables of the example design (0.2% and 0.5%
    # noise) the default 32 survivors of the halving missed the best optimum on three (at up to 3x
    # its objective, parameters on bounds); 128 found it on all seven, by 10 to 67 starts each
    converge = 128
    figure = (View("curves", x="D", y="penalty", panels="w_bits", curves="ptq_bits",
                   fixed={"N": "max", "a_bits": 16.0, "kv_bits": 16.0},
                   title="loss added by low-precision training and post-training quantization against tokens, one "
                         "panel per trained weight width, one curve per post-training width"),)

    @staticmethod
    def _outside(X):
        """PTQ rows trained in fewer bits than ptq_bits in some part (outside Eq. 9)."""
        q = X["ptq_bits"] < UNQUANTIZED_BITS
        return q & (np.minimum(np.minimum(X["w_bits"], X["a_bits"]), X["kv_bits"]) < X["ptq_bits"])

    def in_domain(self, params, runs):
        """Runs inside both domains: every N_eff factor positive, and no part trained below ptq_bits."""
        X = Law.design(self, runs)
        return KumarPrecision.in_domain(self, params, runs) & ~self._outside(X)

    def prepare(self, runs):
        cols = as_columns(runs)
        X = Law.design(self, cols)
        for c in ("w_bits", "a_bits", "kv_bits"):
            row_error(cols, f"{c} is below ptq_bits: Eq. 9 assumes the training precision is at least the "
                            f"post-training one (Sec. 5)", self._outside(X) & (X[c] < X["ptq_bits"]), c)
        return runs

    def design(self, cols):
        X = super().design(cols)
        q = X["ptq_bits"] < UNQUANTIZED_BITS
        X["q"] = q.astype(float)
        out = self._outside(X)
        for x in _KINDS:  # P_x - P_post on PTQ rows (NaN outside the law), any number elsewhere (q = 0)
            X[f"gap_{x}"] = np.where(out, np.nan, np.where(q, X[f"{x}_bits"] - X["ptq_bits"], 1.0))
        return X

    def formula(self, p, x, m=np):
        n_eff = x.N * precision_factor(p, x.w_bits, x.a_bits, x.kv_bits, m)
        delta = (p.C_T * m.exp(-x.ptq_bits / p.gamma_post) * x.D ** p.gamma_D / n_eff ** p.gamma_N
                 * robustification(p, (x.gap_w, x.gap_a, x.gap_kv), m))
        return p.A / n_eff ** p.alpha + p.B / x.D ** p.beta + p.E + x.q * delta

    def example(self):
        # 258 runs.  Post-training widths down to 2 bits and trained widths down to 3 put the PTQ term
        # and each N_eff factor well above 0.5% noise, and every profile interval closes: with PTQ at
        # 3 bits and more and training at 4 bits and more, C_w's ran to its upper bound and 134 of
        # 1000 bootstrap refits did not converge (docs/trust.md)
        train = ([(16, 16, 16), (8, 8, 8), (6, 6, 6)] + [(w, 16, 16) for w in (3, 4, 6)]
                 + [(16, a, 16) for a in (4, 5, 6)] + [(16, 16, k) for k in (3, 4, 5)])
        rows = [(N, N * t, *c, P) for N in (1e8, 1e9, 1e10) for t in (10, 160) for c in train
                for P in (16, 2, 3, 4, 6) if P >= 16 or P < min(c)]
        cols = dict(zip(self.columns, np.array(rows, float).T))
        return {**TABLE2, "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907,
                "C_w": 1.0, "C_a": 1.0, "C_kv": 1.0}, cols

    # planner ---------------------------------------------------------------------
    def plan_data(self, params, N, ptq_bits, w_bits=UNQUANTIZED_BITS, a_bits=UNQUANTIZED_BITS,
                  kv_bits=UNQUANTIZED_BITS):
        """Critical data size for a model of ``N`` parameters trained at (w, a, kv) bits, quantized to ``ptq_bits``."""
        p, bits = params, {"w": w_bits, "a": a_bits, "kv": kv_bits}
        if ptq_bits >= UNQUANTIZED_BITS:
            raise OptionError("ptq_bits", f"{ptq_bits} means no post-training quantization (>= 16 bits); "
                              "without it more data always lowers the loss, so there is no critical data size")
        for x, P in bits.items():
            if P < ptq_bits:
                raise OptionError(f"{x}_bits", f"{P:g} is below ptq_bits = {ptq_bits:g}: Eq. 9 assumes the training "
                                  f"precision is at least the post-training one (Sec. 5)")
            if P == ptq_bits:
                raise OptionError(f"{x}_bits", f"{P:g} equals ptq_bits: the paper defines the degradation as zero "
                                  "then (Sec. 5), so more data always lowers the loss")
            if not P > p[f"gamma_{x}"] * p[f"n_{x}"]:
                raise OptionError(f"{x}_bits", f"{P:g} is outside the law's domain: N_eff > 0 needs "
                                  f"{x}_bits > gamma_{x} n_{x} = {p[f'gamma_{x}'] * p[f'n_{x}']:.3g}")
        n_eff = N * float(precision_factor(p, w_bits, a_bits, kv_bits))
        R = float(robustification(p, [bits[x] - ptq_bits for x in _KINDS]))
        if not R > 0:
            raise InputError(f"these parameters have no critical data size: the robustification factor is {R:.3g} "
                             "(it needs C_w, C_a, C_kv > 0)")
        # Eq. 13 of kumar-ptq with N_eff for N and C_T R for C_T (Appendix E.1 with training precision)
        d_crit = math.exp(log_critical_data(p, n_eff, ptq_bits) - math.log(R) / (p["gamma_D"] + p["beta"]))
        at = dict(N=N, D=d_crit, w_bits=w_bits, a_bits=a_bits, kv_bits=kv_bits)
        base, loss = self.at(p, **at), self.at(p, **at, ptq_bits=ptq_bits)
        res = {"N": float(N), "w_bits": w_bits, "a_bits": a_bits, "kv_bits": kv_bits, "ptq_bits": ptq_bits,
               "N_eff": n_eff, "robustification": R, "D_crit": d_crit, "tokens_per_param": d_crit / N,
               "loss_before_ptq_at_D_crit": base, "delta_ptq_at_D_crit": loss - base, "loss_at_D_crit": loss}
        res["summary"] = (f"a {human(N)}-parameter model trained at W{w_bits:g}A{a_bits:g}KV{kv_bits:g} and quantized "
                          f"to {ptq_bits:g} bits is best at D_crit = {human(d_crit)} tokens ({d_crit / N:.3g} "
                          f"tokens/parameter, loss {loss:.4f}); more pre-training data makes it worse")
        return res
