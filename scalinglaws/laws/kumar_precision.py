"""Kumar precision: training in low precision shrinks the effective parameter count.

Kumar et al. 2024, "Scaling Laws for Precision", Eq. 3-4 (quantized training), with
the offsets n_x of Appendix K::

    L = A N_eff^-alpha + B D^-beta + E
    N_eff = N * (1 - exp(-P_w/gamma_w + n_w)) * (1 - exp(-P_a/gamma_a + n_a))
              * (1 - exp(-P_kv/gamma_kv + n_kv))

with P_w, P_a, P_kv the training precision (bits) of weights, activations and the
key/value cache: the columns ``w_bits``, ``a_bits``, ``kv_bits`` (16 where a cell is
empty or a column absent).  ``fix={"n_w": 0, "n_a": 0, "n_kv": 0}``
(``--fix n_w=0 ...``) gives the plain form of the main text.  The formula is applied
as published to every row, 16-bit ones included (at 16 bits each factor is close to,
but not exactly, 1).

Where the offsets go: Appendix K says "a fit of the form e^{x/gamma_x} in the main text is
really computed with offset e^{x/gamma_x + n}", x = -P here.  The sign is the one that gives
the paper's compute-optimal 7-8 bits (Sec. 4.3.2) with Table 2's constants: with
exp(-P/gamma_x + n_x) the optimum is 7.0 bits, without the offsets it is 3.5 bits, and with
-n_x it falls to the lowest precision searched.

Domain (:meth:`in_domain`): each factor must be positive, ``P_x > gamma_x n_x``; below that
the law says nothing, even where two negative factors give N_eff > 0 (with the ``kumar2024`` constants: a_bits > 3.11, kv_bits > 2.32,
w_bits > 0.81; the paper, Appendix L, finds runs with P_a <= 3 or P_kv <= 3 unstable).

The scale parameters A, B, E are fitted as their logarithms.

Parameters
----------
E : irreducible loss (nats/token).
A, alpha : scale and exponent of the finite-model term, in effective parameters.
B, beta : scale and exponent of the finite-data term.
gamma_w, gamma_a, gamma_kv : bit scale of each precision's effect (larger: more sensitive).
n_w, n_a, n_kv : offsets of each precision's effect (0 in the main text's plain form).

Presets
-------
``kumar2024``: Appendix K, Table 2 (integer-type training; Table 2's gamma_i, n_i are the
activations' gamma_a, n_a).
``kumar2024-fp``: Appendix N (Fig. 16), floating-point *weight* training: "gamma_w = 2.8111
and an exponent bias of b = 0.1240", fitted "with the constants A, B, E, alpha = beta listed
in the table" (Table 2).  The bias is this law's n_w (the same offset convention as
Appendix K).  Appendix N fits weights only (its form is Eq. 3); gamma_a, gamma_kv, n_a, n_kv
are not fitted there, so the preset keeps Table 2's integer-type values for them: use it
for rows with 16-bit activations and KV cache, where those factors are 0.9971 and 1.0000.

Planners
--------
``precision`` (``--flops C``): compute-optimal training precision under the cost model
C = (6/16) N D P with P the training precision of weights, activations and KV cache
alike.  For each integer P (and a continuous optimum) N is optimised in closed form:
with D = 16 C / (6 N P) the law is Chinchilla with A' = A f(P)^-alpha
(f = N_eff / N) and budget 16 C / P, so the Chinchilla allocation applies.  When
alpha = beta the best loss is E + 2 sqrt(A B) (P / (f(P) C'))^(alpha/2), minimised by
the P that minimises P / f(P) whatever the budget: the paper's finding that the
compute-optimal precision does not depend on compute (7-8 bits with ``kumar2024``).
With ``--N`` the model size is fixed (Sec. 4.3.3, Appendix E.2.2): only P and
D = 16 C / (6 N P) are chosen, over 1-64 bits.  Then P* grows with compute; Eq. 23 gives
P* ~ beta gamma ln C at large C.  With three factors the slowest-decaying one (the largest
gamma_x) sets that gamma, so ``asymptotic_bits_per_e_fold`` = beta max(gamma_x); the
planner also reports the local growth dP*/d ln C at the budget asked.
``compute`` (``--flops``, optional ``--w-bits``, ``--a-bits``, ``--kv-bits``, 16 by
default): compute-optimal N and D at that training precision for C = 6ND (FLOPs
counted as in 16-bit; for a precision-aware cost see ``precision``).
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import UNQUANTIZED_BITS
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps
from scalinglaws.laws.chinchilla import compute_optimal

_KINDS = ("w", "a", "kv")

#: Appendix K, Table 2 (integer-type fits)
TABLE2 = {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
          "gamma_w": 2.6745, "gamma_a": 2.2102, "gamma_kv": 0.9578,
          "n_w": 0.3037, "n_a": 1.4072, "n_kv": 2.4185}


def precision_factor(p, w_bits, a_bits, kv_bits, m=np):
    """N_eff / N: the product over w, a, kv of (1 - exp(-P_x/gamma_x + n_x)); <= 0 outside the domain."""
    f = 1.0
    for x, P in zip(_KINDS, (w_bits, a_bits, kv_bits)):
        f = f * (1.0 - m.exp(-P / p[f"gamma_{x}"] + p[f"n_{x}"]))
    return f


def min_bits(params) -> float:
    """The smallest precision P (all of w, a, kv alike) with N_eff > 0: max_x gamma_x n_x (or 0)."""
    return max(0.0, *(params[f"gamma_{x}"] * params[f"n_{x}"] for x in _KINDS))


def best_bits(loss, lo: float, hi: float, n: int = 1501) -> float:
    """The continuous minimiser of ``loss`` (a function of an array of bits) on [lo, hi]: a grid of
    ``n`` points, then a bounded refinement around its best point."""
    from scipy.optimize import minimize_scalar
    grid = np.linspace(lo, hi, n)
    vals = np.asarray(loss(grid), dtype=float)
    k = int(np.nanargmin(vals))
    left, right = grid[max(k - 1, 0)], grid[min(k + 1, n - 1)]
    opt = minimize_scalar(lambda P: float(loss(np.array([P]))[0]), bounds=(left, right), method="bounded",
                          options={"xatol": 1e-9})
    return float(opt.x) if opt.fun <= vals[k] else float(grid[k])


class KumarPrecision(Law):
    name = "kumar-precision"
    title = "Kumar precision: low-precision training shrinks the effective parameter count"
    reference = "Kumar et al. 2024, Scaling Laws for Precision (Eq. 3-4, Appendix K)"
    formula_text = ("L = A N_eff^-alpha + B D^-beta + E, "
                    "N_eff = N prod_{x=w,a,kv} (1 - exp(-P_x/gamma_x + n_x))")
    params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0, 1), log=True),
        Param("A", "scale of the finite-model term (effective parameters)", exps(-10, 60), exps(4, 10), log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(4, 10), log=True),
        Param("alpha", "exponent of effective model size", (0.0, 5.0), (0.3, 0.6)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.3, 0.6)),
        Param("gamma_w", "bit scale of weight precision", (0.05, 50.0), (1.0, 3.0)),
        Param("gamma_a", "bit scale of activation precision", (0.05, 50.0), (1.0, 3.0)),
        Param("gamma_kv", "bit scale of key/value precision", (0.05, 50.0), (1.0, 3.0)),
        Param("n_w", "offset of weight precision", (-20.0, 20.0), (0.0,)),
        Param("n_a", "offset of activation precision", (-20.0, 20.0), (0.0,)),
        Param("n_kv", "offset of key/value precision", (-20.0, 20.0), (0.0,)),
    )
    # (E, A and B enter the formula affinely, but solved per start (scalinglaws.fitting.amplitudes) they ended
    # 1.1e-3 above the whole grid's optimum on data/trainer_runs.csv: the grid is searched, docs/fitter-speed.md)
    columns = ("N", "D", "w_bits", "a_bits", "kv_bits")
    presets = {
        "kumar2024": Preset(dict(TABLE2),
                            "Kumar et al. 2024, Scaling Laws for Precision, Appendix K, Table 2 (with offsets n_x)"),
        "kumar2024-fp": Preset(
            {**TABLE2, "gamma_w": 2.8111, "n_w": 0.1240},
            "Kumar et al. 2024, Scaling Laws for Precision, Appendix N (Fig. 16): floating-point weight training, "
            "gamma_w = 2.8111 and exponent bias b = 0.1240 (n_w), with Table 2's A, B, E, alpha = beta",
            "weights only: gamma_a, n_a, gamma_kv, n_kv are Table 2's integer-type values (not fitted in "
            "Appendix N); use with 16-bit activations and KV cache"),
    }
    planners = (
        Planner("precision", "compute-optimal training precision for C = (6/16) N D P (with --N: at that model "
                             "size)", "plan_precision", required=("flops",), optional=("N",)),
        Planner("compute", "compute-optimal N and D for C = 6ND at a training precision", "plan_compute",
                required=("flops",), optional=("w_bits", "a_bits", "kv_bits")),
    )
    penalty_axes = ("bits", "tokens_per_byte")
    figure = (View("curves", x="bits", y="penalty", panels="quantized", curves="N", fixed={"tokens_per_param": "max"},
                   title="loss added by training in low precision, one panel per quantized part"),)

    def formula(self, p, x, m=np):
        n_eff = x.N * precision_factor(p, x.w_bits, x.a_bits, x.kv_bits, m)
        return p.A / n_eff ** p.alpha + p.B / x.D ** p.beta + p.E

    def in_domain(self, params, runs):
        """Runs with every factor positive, P_x > gamma_x n_x (N_eff > 0 with no factor negative)."""
        X = Law.design(self, runs)
        return np.all([X[f"{x}_bits"] > params[f"gamma_{x}"] * params[f"n_{x}"] for x in _KINDS], axis=0)

    def example(self):
        combos = ([(16, 16, 16)] + [(w, 16, 16) for w in (3, 4, 6)] + [(16, a, 16) for a in (4, 5, 8)]
                  + [(16, 16, k) for k in (3, 4, 6)] + [(6, 6, 6)])
        rows = [(N, N * t, *c) for N in (1e8, 1e9, 1e10) for t in (10, 40, 160) for c in combos]
        cols = dict(zip(("N", "D", "w_bits", "a_bits", "kv_bits"), np.array(rows, float).T))
        return dict(self.presets["kumar2024"].values), cols

    # planners --------------------------------------------------------------------
    @staticmethod
    def _at_precision(p, flops, P):
        f = float(precision_factor(p, P, P, P))
        res = compute_optimal(p["E"], p["A"] * f ** -p["alpha"], p["B"], p["alpha"], p["beta"], flops * 16.0 / P)
        return {"bits": P, "N_opt": res["N_opt"], "D_opt": res["D_opt"], "N_eff": res["N_opt"] * f,
                "N_eff_over_N": f, "tokens_per_param": res["tokens_per_param"], "loss": res["loss"]}

    def plan_precision(self, params, flops, N=None):
        """Compute-optimal training precision P (w, a, kv alike) for C = (6/16) N D P; at model size ``N``
        if given (only P and D chosen)."""
        p = params
        lo = min_bits(p)  # N_eff <= 0 at or below this precision
        if N is not None:
            return self._precision_at_size(p, flops, N, lo)
        rows = [self._at_precision(p, flops, float(P)) for P in range(1, 17) if P > lo]
        if not rows:
            raise InputError(f"these parameters leave no precision of 1-16 bits inside the law's domain "
                             f"(N_eff > 0 needs P > {lo:.3g} bits)")
        for r in rows:
            r["bits"] = int(r["bits"])
        best = min(rows, key=lambda r: r["loss"])
        p_cont = best_bits(lambda Ps: [self._at_precision(p, flops, P)["loss"] for P in Ps], max(lo + 1e-6, 1.0), 16.0)
        cont = self._at_precision(p, flops, p_cont)
        out = {"flops": float(flops), "bits_opt": best["bits"], "N_opt": best["N_opt"], "D_opt": best["D_opt"],
               "loss": best["loss"], "bits_opt_continuous": p_cont, "loss_continuous": cont["loss"],
               "N_opt_continuous": cont["N_opt"], "D_opt_continuous": cont["D_opt"],
               "min_bits_domain": lo, "table": rows, "best": best}
        edge = " (at the 16-bit edge of the range searched)" if best["bits"] == 16 else ""
        out["summary"] = (f"train in {best['bits']} bits{edge}: N = {human(best['N_opt'])} parameters, "
                          f"D = {human(best['D_opt'])} tokens, loss {best['loss']:.4f} for C = {flops:.3g} FLOPs "
                          f"(C = (6/16) N D P); continuous optimum {p_cont:.2f} bits")
        if lo >= 1:
            out["summary"] += f"; precisions <= {lo:.3g} bits are outside the law's domain (N_eff <= 0)"
        return out

    def _precision_at_size(self, p, flops, N, lo, top=64):
        """Appendix E.2.2: N fixed, P and D = 16 C / (6 N P) chosen for C = (6/16) N D P."""
        if lo >= top:
            raise InputError(f"these parameters leave no precision of 1-{top} bits inside the law's domain "
                             f"(N_eff > 0 needs P > {lo:.3g} bits)")

        def loss(Ps, C=flops):
            Ps = np.asarray(Ps, dtype=float)
            return self.at(p, N=np.full(Ps.shape, float(N)), D=16.0 * C / (6.0 * N * Ps), w_bits=Ps, a_bits=Ps,
                           kv_bits=Ps)

        ints = np.array([P for P in range(1, top + 1) if P > lo], dtype=float)
        losses = loss(ints)
        rows = [{"bits": int(P), "D": 16.0 * flops / (6.0 * N * P), "tokens_per_param": 16.0 * flops / (6.0 * N * N * P),
                 "N_eff_over_N": float(precision_factor(p, P, P, P)), "loss": float(L)} for P, L in zip(ints, losses)]
        best = rows[int(np.nanargmin(losses))]
        a = max(lo + 1e-6, 1.0)
        p_cont = best_bits(loss, a, float(top))
        h = 0.1  # dP*/d ln C by a central difference of the continuous optimum
        up, down = (best_bits(lambda Ps, C=flops * math.exp(s): loss(Ps, C), a, float(top)) for s in (h, -h))
        slope = (up - down) / (2 * h) if a < min(up, down) and max(up, down) < top else float("nan")
        asym = p["beta"] * max(p[f"gamma_{x}"] for x in _KINDS)
        out = {"flops": float(flops), "N": float(N), "bits_opt": best["bits"], "D_opt": best["D"],
               "tokens_per_param": best["tokens_per_param"], "loss": best["loss"],
               "bits_opt_continuous": p_cont, "loss_continuous": float(loss([p_cont])[0]),
               "D_opt_continuous": 16.0 * flops / (6.0 * N * p_cont), "bits_per_e_fold": slope,
               "asymptotic_bits_per_e_fold": asym, "min_bits_domain": lo, "table": rows, "best": best}
        edge = f" (at the {top}-bit edge of the range searched)" if best["bits"] == top else ""
        out["summary"] = (f"at N = {human(N)} parameters train in {best['bits']} bits{edge}: D = {human(best['D'])} "
                          f"tokens, loss {best['loss']:.4f} for C = {flops:.3g} FLOPs (C = (6/16) N D P); continuous "
                          f"optimum {p_cont:.2f} bits, growing {slope:.3g} bits per e-fold of compute here "
                          f"(beta max(gamma_x) = {asym:.3g} as C grows, Eq. 23)")
        return out

    def plan_compute(self, params, flops, w_bits=UNQUANTIZED_BITS, a_bits=UNQUANTIZED_BITS, kv_bits=UNQUANTIZED_BITS):
        """Compute-optimal N and D for C = 6ND, training at (w_bits, a_bits, kv_bits) (16 by default)."""
        bits = {"w": w_bits, "a": a_bits, "kv": kv_bits}
        p = params
        for x, P in bits.items():
            if not P > p[f"gamma_{x}"] * p[f"n_{x}"]:
                raise OptionError(f"{x}_bits", f"{P:g} is outside the law's domain: N_eff > 0 needs "
                                  f"{x}_bits > gamma_{x} n_{x} = {p[f'gamma_{x}'] * p[f'n_{x}']:.3g}")
        f = float(precision_factor(p, bits["w"], bits["a"], bits["kv"]))
        res = compute_optimal(p["E"], p["A"] * f ** -p["alpha"], p["B"], p["alpha"], p["beta"], flops)
        res.update(w_bits=bits["w"], a_bits=bits["a"], kv_bits=bits["kv"], N_eff_over_N=f,
                   N_eff=res["N_opt"] * f)
        res["summary"] = (f"at W{bits['w']:g}A{bits['a']:g}KV{bits['kv']:g}: N_opt = {human(res['N_opt'])} "
                          f"parameters, D_opt = {human(res['D_opt'])} tokens "
                          f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f}")
        return res
