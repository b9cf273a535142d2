"""Capybara: the floating-point quantization training law of Sun et al. 2025.

Sun, Li, Xie, et al. 2025, "Scaling Laws for Floating-Point Quantization Training"
(ICML 2025, arXiv:2501.02423), Eq. (26) / Table 2::

    L(N, D, E, M, B) = n / N^alpha + d / D^beta + epsilon
                       + (D^beta / N^alpha) * log2(B) / (gamma (E + 0.5)^delta (M + 0.5)^nu)

for training with a floating-point format of E exponent bits and M mantissa bits
(``exp_bits``, ``man_bits``; total P = E + M + 1 with the sign bit) and B elements per
scaling factor (``group_size``, the block size).  The last term is the low-precision
penalty: it grows with data D (the "knowledge density" D^beta / N^alpha), shrinks with
more exponent and mantissa bits, and grows with the block size.

Parameters
----------
n, alpha : scale and exponent of the finite-model term n / N^alpha.
d, beta : scale and exponent of the finite-data term d / D^beta.
epsilon : irreducible loss (nats/token).
gamma : inverse scale of the precision penalty.
delta : weight of the exponent bits, (E + 0.5)^delta.
nu : weight of the mantissa bits, (M + 0.5)^nu.

Columns: ``N``, ``D``, ``loss``, ``exp_bits``, ``man_bits``, ``group_size`` on every row
(BF16 is E8M7; a run with one scale per channel or per tensor has B = the number of
elements sharing that scale).  B = 1 gives log2 B = 0: no penalty.

Preset ``sun2025`` (Table 2): n=69.2343, alpha=0.2368, d=68973.0621, beta=0.5162,
epsilon=1.9061, gamma=11334.5197, delta=3.1926, nu=2.9543.  It gives E2M1, E4M3 and
E8M7 as the best 4-, 8- and 16-bit formats, and critical data sizes of about 0.39T,
27.3T and 1730T tokens for those formats at N = 1e9 and B = 128.

Planners
--------
``fp-format --bits P [--N --D --group-size]``: the integer split E + M = P - 1 (E >= 1: a
floating-point format has at least one exponent bit) that maximises
``(E + 0.5)^delta (M + 0.5)^nu``, i.e. minimises the penalty; the ranking depends on
delta and nu only.  With N and D the table also gives each format's loss (at B =
``--group-size``, default 128).

``data --N --exp-bits --man-bits --group-size``: the critical data size where
dL/dD = 0, ``D_crit = (d gamma N^alpha (E+0.5)^delta (M+0.5)^nu / log2 B)^(1/(2 beta))``;
beyond it more tokens raise the loss.

``precision --flops C [--group-size B]``: compute-optimal training precision under the
cost model C = (6/16) P N D (the paper's k = 6/16, cost proportional to bits).  For each
total width P = 2..16 it takes the best E/M split, then the N (and D = 16 C / (6 P N))
that minimises the loss (the loss is convex in log N, so the optimum is unique), and
reports the P with the lowest loss.  B defaults to 128, the setting of the paper's
Figure 18.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.columns import Columns, as_columns
from scalinglaws.data.errors import OptionError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps

_DEFAULT_BLOCK = 128
_COST = 6.0 / 16.0


def format_factor(p, E, M, m=np):
    """``(E + 0.5)^delta (M + 0.5)^nu``: larger is a better (lower-penalty) format."""
    return (E + 0.5) ** p["delta"] * (M + 0.5) ** p["nu"]


def critical_data(params, N, E, M, B) -> float:
    """``D_crit = (d gamma N^alpha (E+0.5)^delta (M+0.5)^nu / log2 B)^(1/(2 beta))``."""
    lb = math.log2(B)
    if lb <= 0:
        return math.inf
    return float((params["d"] * params["gamma"] * N ** params["alpha"] * format_factor(params, E, M) / lb)
                 ** (1.0 / (2.0 * params["beta"])))


def best_split(params, bits: int) -> tuple[int, int]:
    """Best (E, M) with E + M + 1 = bits and E >= 1."""
    Es = np.arange(1, bits)
    f = format_factor(params, Es.astype(float), (bits - 1 - Es).astype(float))
    E = int(Es[int(np.argmax(f))])
    return E, bits - 1 - E


class Capybara(Law):
    name = "capybara"
    title = "Capybara: floating-point quantization training (exponent, mantissa, block size)"
    reference = ("Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training "
                 "(ICML 2025, arXiv:2501.02423), Eq. 26")
    formula_text = ("L = n/N^alpha + d/D^beta + epsilon + (D^beta/N^alpha) log2(B) / "
                    "(gamma (E+0.5)^delta (M+0.5)^nu), E = exp_bits, M = man_bits, B = group_size")
    params = (
        Param("n", "scale of the finite-model term", exps(-10, 40), exps(2, 5), log=True),
        Param("alpha", "exponent of model size", (0.0, 3.0), (0.2, 0.4)),
        Param("d", "scale of the finite-data term", exps(-10, 60), exps(5, 10, 15), log=True),
        Param("beta", "exponent of data size", (0.0, 3.0), (0.3, 0.6)),
        Param("epsilon", "irreducible loss (nats/token)", exps(-7, 5), exps(0.25, 0.75), log=True),
        Param("gamma", "inverse scale of the precision penalty", exps(-20, 60), exps(5, 10), log=True),
        Param("delta", "weight of the exponent bits, (E+0.5)^delta", (0.0, 10.0), (1.0, 3.0)),
        Param("nu", "weight of the mantissa bits, (M+0.5)^nu", (0.0, 10.0), (1.0, 3.0)),
    )
    columns = ("N", "D", "exp_bits", "man_bits", "group_size")
    presets = {
        "sun2025": Preset(
            {"n": 69.2343, "alpha": 0.2368, "d": 68973.0621, "beta": 0.5162, "epsilon": 1.9061,
             "gamma": 11334.5197, "delta": 3.1926, "nu": 2.9543},
            "Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training, Table 2 (Eq. 26)"),
    }
    planners = (
        Planner("fp-format", "best exponent/mantissa split for a total of --bits P = E + M + 1",
                "plan_fp_format", required=("bits",), optional=("N", "D", "group_size")),
        Planner("data", "critical data size: tokens beyond which more data raises the loss",
                "plan_data", required=("N", "exp_bits", "man_bits", "group_size")),
        Planner("precision", "compute-optimal training precision under C = (6/16) P N D",
                "plan_precision", required=("flops",), optional=("group_size",)),
    )
    penalty_axes = ("bits", "group_size", "tokens_per_byte")
    figure = (View("curves", x="bits", y="penalty", panels="group_size", curves="N", fixed={"D": "max"},
                   grid="integer", fitted_points=True,
                   title="loss added by the floating-point format (lines: the best format of each width)"),
              View("heatmap", x="exp_bits", y_axis="man_bits", xs=tuple(range(1, 9)), ys=tuple(range(0, 9)),
                   width=8, fixed={"N": "mid", "D": "max", "group_size": 128},
                   title="exponent x mantissa map of the penalty, relative to the best 8-bit format"))

    # ------------------------------------------------------------------ data
    def design(self, runs):
        cols = as_columns(runs)
        X = super().design(cols)
        for col, lo in (("exp_bits", 0.0), ("man_bits", 0.0), ("group_size", 1.0)):
            bad = np.flatnonzero(~(X[col] >= lo))
            if bad.size:
                raise cols.error(f"{col} must be >= {lo:g}, got {X[col][bad[0]]}", int(bad[0]), col)
        X["lb"] = np.log2(X.pop("group_size"))  # B = 1 (no shared scale): log2 B = 0, no penalty
        return X

    # --------------------------------------------------------------- formula
    def formula(self, p, x, m=np):
        return (p.n / x.N ** p.alpha + p.d / x.D ** p.beta + p.epsilon
                + x.D ** p.beta / x.N ** p.alpha * x.lb / (p.gamma * format_factor(p, x.exp_bits, x.man_bits, m)))

    def example(self):
        fmts = ((1, 2), (2, 1), (2, 3), (4, 3), (5, 2), (3, 4))
        rows = [(N, D, E, M, B) for N in (41e6, 154e6, 679e6) for D in (10e9, 30e9, 100e9) for E, M in fmts
                for B in (32, 128, 512)]
        return dict(self.presets["sun2025"].values), dict(zip(("N", "D", "exp_bits", "man_bits", "group_size"),
                                                              np.array(rows, float).T))

    def loss(self, params, N, D, E, M, B):
        """The Capybara loss of a model of N parameters trained on D tokens in EeMm with block B."""
        return self.at(params, N=N, D=D, exp_bits=E, man_bits=M, group_size=B)

    # ------------------------------------------------- what other layers ask
    def unquantized(self, cols):
        """The same runs without the precision penalty: block size 1 (log2 B = 0)."""
        cols = as_columns(cols)
        data = {c: cols[c] for c in cols.columns}
        data["group_size"] = np.ones(cols.n)
        return Columns(data, cols.source, cols.rows)

    def bits_of(self, cols):
        """Total bits of each run's format: exp_bits + man_bits + 1 (sign)."""
        cols = as_columns(cols)
        return cols["exp_bits"] + cols["man_bits"] + 1

    bits_label = "bits = exp_bits + man_bits + 1"

    def weight_bits_of(self, cols):
        return self.bits_of(cols)

    def with_bits(self, params, cols, bits):
        """The runs in the best format of ``bits`` total bits (the E/M split of :func:`best_split`)."""
        cols = as_columns(cols)
        data = {c: cols[c] for c in cols.columns}
        split = [best_split(params, int(round(b))) for b in np.broadcast_to(np.asarray(bits, float), (cols.n,))]
        data["exp_bits"] = np.array([e for e, _ in split], float)
        data["man_bits"] = np.array([m for _, m in split], float)
        return Columns(data, cols.source, cols.rows)

    # -------------------------------------------------------------- planners
    def plan_fp_format(self, params, bits, N=None, D=None, group_size=_DEFAULT_BLOCK):
        """Best E/M split for ``bits`` total bits (sign + E + M)."""
        P = int(bits)
        if (N is None) != (D is None):
            raise OptionError("N" if N is None else "D", "is needed too: give both N and D to see each "
                              "format's loss (or neither)")
        B = group_size
        E_best, M_best = best_split(params, P)
        f_best = float(format_factor(params, E_best, M_best))
        rows = []
        for E in range(1, P):
            M = P - 1 - E
            f = float(format_factor(params, E, M))
            row = {"format": f"E{E}M{M}", "exp_bits": E, "man_bits": M, "penalty_vs_best": f_best / f}
            if N is not None:
                row["loss"] = self.loss(params, N, D, E, M, B)
            rows.append(row)
        best = next(r for r in rows if r["exp_bits"] == E_best)
        res = {"bits": P, "exp_bits": E_best, "man_bits": M_best, "format": f"E{E_best}M{M_best}",
               "table": rows, "best": best}
        if N is not None:
            res.update(N=N, D=D, group_size=B, loss=best["loss"])
        res["summary"] = (f"best {P}-bit format: E{E_best}M{M_best} (E + M + 1 = {P}); the split depends only "
                          f"on delta = {params['delta']:.4g} and nu = {params['nu']:.4g}"
                          + (f"; loss {best['loss']:.4f} at N = {human(N)}, D = {human(D)}, B = {B:g}"
                             if N is not None else ""))
        return res

    def plan_data(self, params, N, exp_bits, man_bits, group_size):
        """Critical data size for a model of N parameters trained in format E/M with block B."""
        d = critical_data(params, N, exp_bits, man_bits, group_size)
        fmt = f"E{exp_bits:g}M{man_bits:g}"
        res = {"N": N, "exp_bits": exp_bits, "man_bits": man_bits, "group_size": group_size, "D_crit": d,
               "tokens_per_param": d / N}
        if math.isfinite(d):
            res["loss"] = self.loss(params, N, d, exp_bits, man_bits, group_size)
            res["summary"] = (f"{fmt}, block {group_size:g}: beyond D_crit = {human(d)} tokens "
                              f"({d / N:.3g} tokens/parameter) more data raises the loss of a "
                              f"{human(N)}-parameter model")
        else:
            res["summary"] = "block size 1 (log2 B = 0): no precision penalty, so no critical data size"
        return res

    def plan_precision(self, params, flops, group_size=_DEFAULT_BLOCK):
        """Compute-optimal total precision P under C = (6/16) P N D."""
        from scipy.optimize import minimize_scalar
        B = group_size
        rows = []
        for P in range(2, 17):
            E, M = best_split(params, P)
            K = flops / (_COST * P)  # N * D
            if K <= 1.0:
                raise OptionError("flops", f"{flops:g} is too small to train anything at {P} bits")

            def f(lnN, E=E, M=M, K=K):
                N = math.exp(lnN)
                return self.loss(params, N, K / N, E, M, B)

            r = minimize_scalar(f, bounds=(0.0, math.log(K)), method="bounded",
                                options={"xatol": 1e-9, "maxiter": 500})
            N = math.exp(r.x)
            rows.append({"bits": P, "format": f"E{E}M{M}", "exp_bits": E, "man_bits": M, "N": N,
                         "D": K / N, "loss": float(r.fun)})
        best = min(rows, key=lambda r: r["loss"])
        res = {"flops": flops, "group_size": B, "bits": best["bits"], "exp_bits": best["exp_bits"],
               "man_bits": best["man_bits"], "N_opt": best["N"], "D_opt": best["D"], "loss": best["loss"],
               "table": rows, "best": best}
        res["summary"] = (f"compute-optimal precision for C = {flops:.3g} FLOPs (C = (6/16) P N D, block "
                          f"{B:g}): {best['bits']} bits ({best['format']}), N = {human(best['N'])}, "
                          f"D = {human(best['D'])}, loss {best['loss']:.4f}")
        return res
