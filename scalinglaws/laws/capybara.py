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
from scipy.optimize import minimize_scalar

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, check_positive, require

_N, _ALPHA, _D, _BETA, _EPS, _GAMMA, _DELTA, _NU = range(8)
_DEFAULT_BLOCK = 128
_COST = 6.0 / 16.0


def _as_int_bits(name: str, v, minimum: int) -> int:
    if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and float(v).is_integer()):
        raise InputError(f"--{name.replace('_', '-')} must be a whole number of bits, got {v}")
    if v < minimum:
        raise InputError(f"--{name.replace('_', '-')} must be >= {minimum}, got {v:g}")
    return int(v)


def format_factor(params, E, M):
    """``(E + 0.5)^delta (M + 0.5)^nu``: larger is a better (lower-penalty) format."""
    return (np.asarray(E, float) + 0.5) ** params["delta"] * (np.asarray(M, float) + 0.5) ** params["nu"]


def loss(params, N, D, E, M, B):
    """The Capybara loss (arrays broadcast)."""
    N, D, B = (np.asarray(x, dtype=float) for x in (N, D, B))
    out = (params["n"] / N ** params["alpha"] + params["d"] / D ** params["beta"] + params["epsilon"]
           + D ** params["beta"] / N ** params["alpha"] * np.log2(B)
           / (params["gamma"] * format_factor(params, E, M)))
    return float(out) if out.ndim == 0 else out


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
    f = format_factor(params, Es, bits - 1 - Es)
    E = int(Es[int(np.argmax(f))])
    return E, bits - 1 - E


class Capybara(Law):
    name = "capybara"
    title = "Capybara: floating-point quantization training (exponent, mantissa, block size)"
    reference = ("Sun et al. 2025, Scaling Laws for Floating-Point Quantization Training "
                 "(ICML 2025, arXiv:2501.02423), Eq. 26")
    formula = ("L = n/N^alpha + d/D^beta + epsilon + (D^beta/N^alpha) log2(B) / "
               "(gamma (E+0.5)^delta (M+0.5)^nu), E = exp_bits, M = man_bits, B = group_size")
    params = (
        Param("n", "scale of the finite-model term", (-10.0, 40.0), (2.0, 5.0), log=True),
        Param("alpha", "exponent of model size", (0.0, 3.0), (0.2, 0.4)),
        Param("d", "scale of the finite-data term", (-10.0, 60.0), (5.0, 10.0, 15.0), log=True),
        Param("beta", "exponent of data size", (0.0, 3.0), (0.3, 0.6)),
        Param("epsilon", "irreducible loss (nats/token)", (-5.0, 5.0), (0.25, 0.75), log=True),
        Param("gamma", "inverse scale of the precision penalty", (-20.0, 60.0), (5.0, 10.0), log=True),
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
                "plan_fp_format", ("bits", "N", "D", "group_size")),
        Planner("data", "critical data size: tokens beyond which more data raises the loss",
                "plan_data", ("N", "exp_bits", "man_bits", "group_size")),
        Planner("precision", "compute-optimal training precision under C = (6/16) P N D",
                "plan_precision", ("flops", "group_size")),
    )

    # ------------------------------------------------------------------ data
    def design(self, runs):
        X = super().design(runs)
        src = runs.attrs.get("source", "the table")
        for col, lo in (("exp_bits", 0.0), ("man_bits", 0.0), ("group_size", 1.0)):
            bad = np.flatnonzero(~(X[col] >= lo))
            if bad.size:
                idx = runs.index[int(bad[0])]
                raise InputError(f"{col} must be >= {lo:g}, got {X[col][bad[0]]}", file=src,
                                 row=int(idx) if isinstance(idx, (int, np.integer)) else None, column=col)
        on = X["group_size"] > 1
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        X["llB"] = np.where(on, np.log(np.log2(np.where(on, X["group_size"], 2.0))), 0.0)
        X["q"] = on.astype(float)
        X["lnE"], X["lnM"] = np.log(X["exp_bits"] + 0.5), np.log(X["man_bits"] + 0.5)
        return X

    # --------------------------------------------------------------- formula
    def _terms(self, t, X):
        lnN, lnD = X["lnN"], X["lnD"]
        with np.errstate(over="ignore", under="ignore"):
            t1 = np.exp(t[:, _N, None] - t[:, _ALPHA, None] * lnN)
            t2 = np.exp(t[:, _D, None] - t[:, _BETA, None] * lnD)
            t3 = np.exp(t[:, _EPS, None] + 0.0 * lnN)
            t4 = X["q"] * np.exp(t[:, _BETA, None] * lnD - t[:, _ALPHA, None] * lnN + X["llB"]
                                 - t[:, _GAMMA, None] - t[:, _DELTA, None] * X["lnE"]
                                 - t[:, _NU, None] * X["lnM"])
        return t1, t2, t3, t4

    def log_predict(self, theta, X):
        t1, t2, t3, t4 = self._terms(np.asarray(theta), X)
        return np.log(t1 + t2 + t3 + t4)

    def log_predict_jac(self, theta, X):
        t1, t2, t3, t4 = self._terms(np.asarray(theta, dtype=float), X)
        L = t1 + t2 + t3 + t4
        p1, p2, p3, p4 = t1 / L, t2 / L, t3 / L, t4 / L
        lnN, lnD = X["lnN"], X["lnD"]
        J = np.empty(L.shape + (8,))
        J[..., _N] = p1
        J[..., _ALPHA] = -(p1 + p4) * lnN
        J[..., _D] = p2
        J[..., _BETA] = (p4 - p2) * lnD
        J[..., _EPS] = p3
        J[..., _GAMMA] = -p4
        J[..., _DELTA] = -p4 * X["lnE"]
        J[..., _NU] = -p4 * X["lnM"]
        return np.log(L), J

    # -------------------------------------------------------------- planners
    def plan_fp_format(self, params, bits=None, N=None, D=None, group_size=None):
        """Best E/M split for ``bits`` total bits (sign + E + M)."""
        require(bits=bits)
        P = _as_int_bits("bits", bits, 2)
        check_positive(N=N, D=D, group_size=group_size)
        if (N is None) != (D is None):
            raise InputError("give both --N and --D to see each format's loss (or neither)")
        B = _DEFAULT_BLOCK if group_size is None else group_size
        if B < 1:
            raise InputError(f"--group-size must be >= 1, got {B:g}")
        E_best, M_best = best_split(params, P)
        f_best = float(format_factor(params, E_best, M_best))
        rows = []
        for E in range(1, P):
            M = P - 1 - E
            f = float(format_factor(params, E, M))
            row = {"format": f"E{E}M{M}", "exp_bits": E, "man_bits": M, "penalty_vs_best": f_best / f}
            if N is not None:
                row["loss"] = loss(params, N, D, E, M, B)
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

    def plan_data(self, params, N=None, exp_bits=None, man_bits=None, group_size=None):
        """Critical data size for a model of N parameters trained in format E/M with block B."""
        require(N=N, exp_bits=exp_bits, man_bits=man_bits, group_size=group_size)
        check_positive(N=N, group_size=group_size)
        for name, v in (("exp_bits", exp_bits), ("man_bits", man_bits)):
            if not (isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(v) and v >= 0):
                raise InputError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
        if group_size < 1:
            raise InputError(f"--group-size must be >= 1, got {group_size:g}")
        d = critical_data(params, N, exp_bits, man_bits, group_size)
        fmt = f"E{exp_bits:g}M{man_bits:g}"
        res = {"N": N, "exp_bits": exp_bits, "man_bits": man_bits, "group_size": group_size, "D_crit": d,
               "tokens_per_param": d / N}
        if math.isfinite(d):
            res["loss"] = loss(params, N, d, exp_bits, man_bits, group_size)
            res["summary"] = (f"{fmt}, block {group_size:g}: beyond D_crit = {human(d)} tokens "
                              f"({d / N:.3g} tokens/parameter) more data raises the loss of a "
                              f"{human(N)}-parameter model")
        else:
            res["summary"] = "block size 1 (log2 B = 0): no precision penalty, so no critical data size"
        return res

    def plan_precision(self, params, flops=None, group_size=None):
        """Compute-optimal total precision P under C = (6/16) P N D."""
        require(flops=flops)
        check_positive(flops=flops, group_size=group_size)
        B = _DEFAULT_BLOCK if group_size is None else group_size
        if B < 1:
            raise InputError(f"--group-size must be >= 1, got {B:g}")
        rows = []
        for P in range(2, 17):
            E, M = best_split(params, P)
            K = flops / (_COST * P)  # N * D
            if K <= 1.0:
                raise InputError(f"--flops {flops:g} is too small to train anything at {P} bits")

            def f(lnN, E=E, M=M, K=K):
                N = math.exp(lnN)
                return loss(params, N, K / N, E, M, B)

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
