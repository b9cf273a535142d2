"""Chen et al. 2025: a scaling law for quantization-aware training (QAT).

Chen, Zhang, Liu, et al. 2025, "Scaling Law for Quantization-Aware Training"
(arXiv:2505.14302), Eq. (4)-(5) and Table 1::

    L(N, D, G) = E + A / N^alpha + B / D^beta + delta(N, D, G)
    delta      = k * D^gamma_D * (log2 G)^gamma_G / N^gamma_N

The first three terms are the Chinchilla loss of the unquantized (BF16) model; ``delta``
is the loss added by QAT at one precision setting (W4A4 in the paper's main fit).

Parameters
----------
E : irreducible loss (nats/token).
A, alpha : scale and exponent of the finite-model term A / N^alpha.
B, beta : scale and exponent of the finite-data term B / D^beta.
k : scale of the QAT penalty.
gamma_D : how fast the penalty grows with training tokens D (> 0: more data, more error).
gamma_G : how fast it grows with log2 of the group size G (coarser groups, more error).
gamma_N : how fast it shrinks with model size N.

Columns
-------
``N``, ``D``, ``loss``; ``w_bits`` and ``a_bits`` (empty or absent = 16) tell quantized
rows from unquantized ones: a row with ``w_bits >= 16`` and ``a_bits >= 16`` is the BF16
baseline and gets ``delta = 0``; every other row gets the penalty.  ``group_size`` (G)
is needed on every quantized row.  One fit takes baseline and quantized rows together
(the baseline rows pin the Chinchilla part), but only **one** quantized setting at a
time: ``delta`` of W4A16 and of W4A4 are different terms.  A table mixing settings is
refused; select one with ``--where`` or use :func:`decompose`.

Group size of per-channel / per-token quantization
--------------------------------------------------
G is the number of elements that share one scale.  Per-channel weight quantization
shares a scale along a weight row (``d_in`` elements) and per-token activation
quantization along a token's hidden vector (``d_model`` elements), so the honest G is
the hidden size, which a run table does not otherwise record.  The law therefore needs
a number: write the hidden size in ``group_size`` for such rows (the paper's
"per-token/channel" points are at G = the hidden size of each model); if the table has
a ``hidden_size`` (or ``d_model``) column, empty ``group_size`` cells of quantized rows
are filled from it.  Otherwise an empty cell on a quantized row is an error naming the
row.  G = 1 means no sharing (no quantization error): ``delta = 0`` there, as the paper
intends (log2 1 = 0).

Presets (Table 1; the Chinchilla constants are shared by every row of the table)
--------------------------------------------------------------------------------
``chen2025``           W4A4:               k=0.1582 gamma_N=0.2186 gamma_D=0.0745 gamma_G=0.7779
``chen2025-w4a16``     weight-only W4A16:  k=0.2522 gamma_N=0.3589 gamma_D=0.1610 gamma_G=0.3533
``chen2025-w16a4``     act-only W16A4:     k=0.1004 gamma_N=0.1816 gamma_D=0.0331 gamma_G=0.9812
``chen2025-fc2int8``   W4A4, FC2 input 8-bit:  k=0.3519 gamma_N=0.2637 gamma_D=0.0964 gamma_G=0.3407
``chen2025-w16a4-fc2int8``  W16A4, FC2 input 8-bit: k=0.1273 gamma_N=0.2347 gamma_D=0.0827 gamma_G=0.4491

with E=1.9279, A=237.7042, B=596.2490, alpha=beta=0.3022.  Caveat on the two FC2 rows:
the copy of Table 1 we could read lost the table's last row (the two gamma_G cells of
the "FC2 input 8-bit" blocks) to the page layout; the two stray numbers 0.3407 and
0.4491 printed beside it are assigned here by the text, which says gamma_G of W16A4
drops "from 0.9812 to 0.4471" with an 8-bit FC2 input (so 0.4491, the table's value,
belongs to W16A4 and 0.3407 to W4A4; the text's 0.4471 is one digit off the table).
The text also quotes gamma_G = 0.9821 once for W16A4 where the table says 0.9812; the
table is used.

Decomposition (Section 4.3)
---------------------------
:func:`decompose` fits the weight-only (W4A16) and activation-only (W16A4) penalties
on their own rows and reports how well ``delta_W4A4 ~ delta_W4A16 + delta_W16A4``
holds on the user's W4A4 rows (mean relative error, and the least-squares coefficient
c of ``delta_W4A4 = c (delta_W4A16 + delta_W16A4)``; the paper finds c = 0.906).

Effective parameters (Eq. 2-3)
-------------------------------
:func:`effective_parameters`: the same penalty seen as a shrunken model,
``A / (N eff)^alpha = A / N^alpha + delta``, so
``eff = (A / (A + delta N^alpha))^(1/alpha)``.

Planner ``data``: since delta grows with D, there is a critical data size beyond which
more tokens make the QAT model worse: ``dL/dD = 0`` at
``D_crit = (beta B N^gamma_N / (gamma_D k (log2 G)^gamma_G))^(1/(beta + gamma_D))``.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, check_positive, require

_E, _A, _B, _ALPHA, _BETA, _K, _GD, _GG, _GN = range(9)

_CHINCHILLA = {"E": 1.9279, "A": 237.7042, "B": 596.2490, "alpha": 0.3022, "beta": 0.3022}
_TABLE1 = "Chen et al. 2025, Scaling Law for Quantization-Aware Training, Table 1"

#: non-canonical columns that may supply G for per-channel/per-token rows
HIDDEN_SIZE_COLUMNS = ("hidden_size", "d_model")


def _bits(runs: pd.DataFrame, col: str) -> np.ndarray:
    if col not in runs.columns:
        return np.full(len(runs), 16.0)
    v = pd.to_numeric(runs[col], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(v), 16.0, v)


def _row_label(runs: pd.DataFrame, i: int):
    idx = runs.index[i]
    return int(idx) if isinstance(idx, (int, np.integer)) else None


def quantized_mask(runs: pd.DataFrame) -> np.ndarray:
    """True for rows trained with quantization (``w_bits < 16`` or ``a_bits < 16``)."""
    return (_bits(runs, "w_bits") < 16) | (_bits(runs, "a_bits") < 16)


def group_sizes(runs: pd.DataFrame, need: np.ndarray, law: str = "chen-qat") -> np.ndarray:
    """G of each row (NaN where not needed); rows in ``need`` must have one.

    Empty cells are filled from a ``hidden_size``/``d_model`` column when there is one
    (per-channel / per-token quantization shares a scale over the hidden size).
    """
    n = len(runs)
    G = np.full(n, np.nan)
    if "group_size" in runs.columns:
        G = pd.to_numeric(runs["group_size"], errors="coerce").to_numpy(dtype=float).copy()
    for col in HIDDEN_SIZE_COLUMNS:
        if col in runs.columns:
            h = pd.to_numeric(runs[col], errors="coerce").to_numpy(dtype=float)
            G = np.where(np.isnan(G), h, G)
    if not np.any(need):
        return G
    src = runs.attrs.get("source", "the table")
    if "group_size" not in runs.columns and not any(c in runs.columns for c in HIDDEN_SIZE_COLUMNS):
        raise InputError(f"law '{law}' needs column 'group_size' (elements sharing one quantization "
                         f"scale) on quantized rows; for per-channel/per-token quantization use the "
                         f"hidden size", file=src)
    bad = np.flatnonzero(need & ~(G >= 1))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"a quantized row needs a group size >= 1 (for per-channel/per-token "
                         f"quantization write the hidden size, or add a 'hidden_size' column)",
                         file=src, row=_row_label(runs, i), column="group_size")
    return G


def penalty(params: Mapping[str, float], N, D, group_size):
    """``delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N`` (array or float)."""
    N, D, G = (np.asarray(x, dtype=float) for x in (N, D, group_size))
    out = (params["k"] * D ** params["gamma_D"] * np.log2(G) ** params["gamma_G"]
           / N ** params["gamma_N"])
    return float(out) if out.ndim == 0 else out


def bf16_loss(params: Mapping[str, float], N, D):
    """Chinchilla part ``E + A/N^alpha + B/D^beta`` (the unquantized loss)."""
    N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
    out = params["E"] + params["A"] / N ** params["alpha"] + params["B"] / D ** params["beta"]
    return float(out) if out.ndim == 0 else out


def effective_parameters(params: Mapping[str, float], N, D, group_size):
    """The paper's effective-parameter view of the QAT penalty (Eq. 2-3).

    Returns ``eff = (A / (A + delta N^alpha))^(1/alpha)`` in (0, 1]: the QAT model at N
    loses as much as an unquantized model of ``N * eff`` parameters on the same data.
    """
    N = np.asarray(N, dtype=float)
    d = np.asarray(penalty(params, N, D, group_size))
    A, alpha = params["A"], params["alpha"]
    out = (A / (A + d * N ** alpha)) ** (1.0 / alpha)
    return float(out) if out.ndim == 0 else out


def critical_data(params: Mapping[str, float], N: float, group_size: float) -> float:
    """Tokens beyond which more data raises the QAT loss (inf when gamma_D <= 0 or G = 1)."""
    lg = math.log2(group_size)
    if params["gamma_D"] <= 0 or lg <= 0 or params["k"] <= 0:
        return math.inf
    num = params["beta"] * params["B"] * N ** params["gamma_N"]
    den = params["gamma_D"] * params["k"] * lg ** params["gamma_G"]
    return (num / den) ** (1.0 / (params["beta"] + params["gamma_D"]))


def _preset(k, gN, gD, gG, what, note=""):
    return Preset({**_CHINCHILLA, "k": k, "gamma_D": gD, "gamma_G": gG, "gamma_N": gN},
                  f"{_TABLE1} (Chinchilla constants and the {what} block)", note)


_FC2_NOTE = ("the gamma_G cell of this block was lost in the copy of Table 1 we read; 0.3407 and 0.4491 "
             "were assigned to W4A4 and W16A4 (FC2 input 8-bit) using the text (W16A4: 'from 0.9812 to "
             "0.4471')")


class ChenQAT(Law):
    name = "chen-qat"
    title = "Chen QAT: Chinchilla plus a QAT penalty in N, D and group size"
    reference = "Chen et al. 2025, Scaling Law for Quantization-Aware Training (arXiv:2505.14302), Eq. 4-5"
    formula = ("L = E + A/N^alpha + B/D^beta + delta, delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N "
               "(delta = 0 on unquantized rows)")
    params = (
        Param("E", "irreducible loss (nats/token)", (-5.0, 5.0), (0.25, 0.75), log=True),
        Param("A", "scale of the finite-model term", (-10.0, 60.0), (2.0, 6.0, 10.0), log=True),
        Param("B", "scale of the finite-data term", (-10.0, 60.0), (2.0, 6.0, 10.0), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.25, 0.5)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.25, 0.5)),
        Param("k", "scale of the QAT penalty", (-25.0, 10.0), (-3.0, -1.0), log=True),
        Param("gamma_D", "penalty growth with training tokens", (0.0, 3.0), (0.1,)),
        Param("gamma_G", "penalty growth with log2(group size)", (0.0, 5.0), (0.7,)),
        Param("gamma_N", "penalty decay with model size", (0.0, 3.0), (0.2,)),
    )
    columns = ("N", "D")
    optional_columns = ("w_bits", "a_bits", "group_size")
    presets = {
        "chen2025": _preset(0.1582, 0.2186, 0.0745, 0.7779, "delta_W4A4"),
        "chen2025-w4a16": _preset(0.2522, 0.3589, 0.1610, 0.3533, "delta_W4A16 (weight-only)"),
        "chen2025-w16a4": _preset(0.1004, 0.1816, 0.0331, 0.9812, "delta_W16A4 (activation-only)"),
        "chen2025-fc2int8": _preset(0.3519, 0.2637, 0.0964, 0.3407, "delta_W4A4 (FC2 input 8-bit)",
                                    _FC2_NOTE),
        "chen2025-w16a4-fc2int8": _preset(0.1273, 0.2347, 0.0827, 0.4491, "delta_W16A4 (FC2 input 8-bit)",
                                          _FC2_NOTE),
    }
    planners = (Planner("data", "critical data size: tokens beyond which more data raises the QAT loss",
                        "plan_data", ("N", "group_size")),)

    # ------------------------------------------------------------------ data
    def prepare(self, runs):
        q = quantized_mask(runs)
        if not q.any():
            raise InputError("law 'chen-qat' needs quantized runs (w_bits or a_bits < 16); the table has "
                             "only unquantized ones (fit 'chinchilla' to those)",
                             file=runs.attrs.get("source"))
        w, a = _bits(runs, "w_bits")[q], _bits(runs, "a_bits")[q]
        settings = sorted({(int(x) if float(x).is_integer() else x, int(y) if float(y).is_integer() else y)
                           for x, y in zip(w, a)})
        if len(settings) > 1:
            names = ", ".join(f"W{x}A{y}" for x, y in settings)
            raise InputError(f"law 'chen-qat' fits one quantized setting at a time (its delta differs "
                             f"between them); the table has {names}. Keep one with --where, e.g. "
                             f"--where \"(w_bits == {settings[0][0]} and a_bits == {settings[0][1]}) or "
                             f"(w_bits >= 16 and a_bits >= 16)\", or compare them with "
                             f"scalinglaws.laws.chen_qat.decompose", file=runs.attrs.get("source"))
        return runs

    def design(self, runs):
        X = super().design(runs)
        q = quantized_mask(runs)
        G = group_sizes(runs, q, self.name)
        on = q & (G > 1)  # G = 1: no shared scale, log2 G = 0, no penalty
        X["lnN"], X["lnD"] = np.log(X["N"]), np.log(X["D"])
        X["llG"] = np.where(on, np.log(np.log2(np.where(on, G, 2.0))), 0.0)
        X["q"] = on.astype(float)
        return X

    # --------------------------------------------------------------- formula
    def log_predict(self, theta, X):
        t = np.asarray(theta)
        lnN, lnD = X["lnN"], X["lnD"]
        with np.errstate(over="ignore", under="ignore"):
            L = (np.exp(t[:, _E, None] + 0.0 * lnN)
                 + np.exp(t[:, _A, None] - t[:, _ALPHA, None] * lnN)
                 + np.exp(t[:, _B, None] - t[:, _BETA, None] * lnD)
                 + X["q"] * np.exp(t[:, _K, None] + t[:, _GD, None] * lnD + t[:, _GG, None] * X["llG"]
                                   - t[:, _GN, None] * lnN))
        return np.log(L)

    def log_predict_jac(self, theta, X):
        t = np.asarray(theta, dtype=float)
        lnN, lnD, llG = X["lnN"], X["lnD"], X["llG"]
        with np.errstate(over="ignore", under="ignore"):
            t1 = np.broadcast_to(np.exp(t[:, _E, None]), (t.shape[0], lnN.size))
            t2 = np.exp(t[:, _A, None] - t[:, _ALPHA, None] * lnN)
            t3 = np.exp(t[:, _B, None] - t[:, _BETA, None] * lnD)
            t4 = X["q"] * np.exp(t[:, _K, None] + t[:, _GD, None] * lnD + t[:, _GG, None] * llG
                                 - t[:, _GN, None] * lnN)
        L = t1 + t2 + t3 + t4
        p1, p2, p3, p4 = t1 / L, t2 / L, t3 / L, t4 / L
        J = np.empty(L.shape + (9,))
        J[..., _E], J[..., _A], J[..., _B], J[..., _K] = p1, p2, p3, p4
        J[..., _ALPHA] = -p2 * lnN
        J[..., _BETA] = -p3 * lnD
        J[..., _GD] = p4 * lnD
        J[..., _GG] = p4 * llG
        J[..., _GN] = -p4 * lnN
        return np.log(L), J

    # -------------------------------------------------------------- planners
    def plan_data(self, params, N: float | None = None, group_size: float | None = None):
        """Critical data size at N and group size G (where dL/dD = 0)."""
        require(N=N, group_size=group_size)
        check_positive(N=N, group_size=group_size)
        if group_size < 1:
            raise InputError(f"--group-size must be >= 1 (elements sharing one scale), got {group_size}")
        d = critical_data(params, N, group_size)
        res = {"N": N, "group_size": group_size, "D_crit": d,
               "tokens_per_param": d / N if math.isfinite(d) else math.inf}
        if math.isfinite(d):
            res["loss"] = bf16_loss(params, N, d) + penalty(params, N, d, group_size)
            res["penalty"] = penalty(params, N, d, group_size)
            res["summary"] = (f"beyond D_crit = {human(d)} tokens ({d / N:.3g} tokens/parameter) more data "
                              f"raises the QAT loss of a {human(N)}-parameter model at G = {group_size:g}")
        else:
            res["summary"] = ("no critical data size: the penalty does not grow with D "
                              "(gamma_D <= 0) or G = 1 (no penalty)")
        return res


# ------------------------------------------------------------------ decomposition
class _Penalty(Law):
    """The penalty alone, ``delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N``, fitted to
    observed loss differences (column ``delta``).  Used by :func:`decompose`; not registered."""

    name = "chen-qat-penalty"
    title = "Chen QAT penalty alone"
    formula = "delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N"
    params = (
        Param("k", "scale of the QAT penalty", (-25.0, 10.0), (-4.0, -2.0, 0.0), log=True),
        Param("gamma_D", "penalty growth with training tokens", (0.0, 3.0), (0.05, 0.2)),
        Param("gamma_G", "penalty growth with log2(group size)", (0.0, 5.0), (0.3, 1.0)),
        Param("gamma_N", "penalty decay with model size", (0.0, 3.0), (0.1, 0.4)),
    )
    columns = ("N", "D", "group_size")
    target = "delta"

    def design(self, runs):
        X = super().design(runs)
        X["lnN"], X["lnD"], X["llG"] = np.log(X["N"]), np.log(X["D"]), np.log(np.log2(X["group_size"]))
        return X

    def log_predict(self, theta, X):
        t = np.asarray(theta)
        return (t[:, 0, None] + t[:, 1, None] * X["lnD"] + t[:, 2, None] * X["llG"]
                - t[:, 3, None] * X["lnN"])


def _label(w, a) -> str:
    f = lambda v: str(int(v)) if float(v).is_integer() else f"{v:g}"  # noqa: E731
    return f"W{f(w)}A{f(a)}"


def decompose(runs, *, chinchilla: Mapping[str, float] | None = None, loss: str = "huber",
              delta: float = 1e-3, starts=None, fix: Mapping[str, float] | None = None,
              where: str | None = None, mapping=None) -> dict:
    """Chen et al.'s weight/activation decomposition of the W4A4 QAT penalty (Sec. 4.3).

    The table holds unquantized (BF16) runs and three quantized settings: weight-only
    (``w_bits < 16``, ``a_bits >= 16``, e.g. W4A16), activation-only (W16A4) and both
    (W4A4), each with ``group_size``.  Steps:

    1. The observed penalty of each quantized run is its loss minus the BF16 loss at the
       same N and D: the measured BF16 run when the table has one (the paper's ground
       truth), otherwise the Chinchilla law fitted to the BF16 runs (or given as
       ``chinchilla``, e.g. ``ChenQAT.presets['chen2025'].values``).
    2. ``delta_W`` (weight-only) and ``delta_A`` (activation-only) are fitted separately,
       each ``k D^gamma_D (log2 G)^gamma_G / N^gamma_N``, on their own rows' penalties
       (robust ``loss``/``delta`` on the differences themselves, which may be <= 0).
       The W4A4 rows get their own term too, for reference.
    3. On the W4A4 rows, the observed penalty is compared with ``delta_W + delta_A``.

    Parameters
    ----------
    runs : DataFrame or path
    chinchilla : dict, optional
        ``E A B alpha beta`` of the BF16 loss, used where no BF16 run matches (N, D).
        Default: fitted to the table's BF16 runs when some quantized run has no match.
    loss, delta : robust loss of the penalty fits (on loss differences, linear space).
    starts, fix : passed to each penalty fit (``fix`` by name: k, gamma_D, gamma_G, gamma_N).

    Returns
    -------
    dict with
        ``weight``, ``activation``, ``both`` : fitted terms (``label`` such as W4A16,
            ``params``, ``n_runs``, ``mean_relative_error`` of the term on its own rows);
        ``mean_relative_error`` : mean over W4A4 rows of
            ``|delta_obs - (delta_W + delta_A)| / |delta_obs|``;
        ``median_relative_error``, ``max_relative_error``;
        ``coefficient`` : least-squares c in ``delta_obs = c (delta_W + delta_A)``
            (the paper reports 0.906);
        ``measured`` : the same check without any law, on W4A4 rows whose W-only and
            A-only runs exist at the same (N, D, G): mean relative error and coefficient;
        ``rows`` : one dict per W4A4 run;  ``reference`` : where the BF16 losses came from;
        ``notes`` : warnings (e.g. one group size only: gamma_G not identified);
        ``summary`` : one sentence.
    """
    from scalinglaws.fitting.api import fit as _fit  # late import: api imports the registry
    from scalinglaws.data.runs import load_runs

    if isinstance(runs, pd.DataFrame) and "source" in runs.attrs and not (where or mapping):
        table = runs
        for c in ("N", "D", "loss"):
            if c not in table.columns:
                raise InputError(f"missing required column '{c}'", file=table.attrs.get("source"))
    else:
        table = load_runs(runs, required=("N", "D", "loss"), where=where, mapping=mapping)
    src = table.attrs.get("source", "the table")
    w, a = _bits(table, "w_bits"), _bits(table, "a_bits")
    base = (w >= 16) & (a >= 16)
    cats = {"weight": (w < 16) & (a >= 16), "activation": (w >= 16) & (a < 16), "both": (w < 16) & (a < 16)}
    missing = [k for k, m in cats.items() if not m.any()]
    if missing:
        what = {"weight": "weight-only (w_bits < 16, a_bits = 16, e.g. W4A16)",
                "activation": "activation-only (w_bits = 16, a_bits < 16, e.g. W16A4)",
                "both": "weight-and-activation (both < 16, e.g. W4A4)"}
        raise InputError("the decomposition needs " + "; ".join(what[k] for k in missing) + " runs",
                         file=src)
    labels = {}
    for k, m in cats.items():
        settings = sorted(set(zip(w[m], a[m])))
        if len(settings) > 1:
            raise InputError(f"{k} runs mix several settings ({', '.join(_label(*s) for s in settings)}); "
                             f"keep one with --where", file=src)
        labels[k] = _label(*settings[0])
    q = ~base
    G = group_sizes(table, q, "chen-qat decomposition")
    if np.any(q & (G < 2)):
        i = int(np.flatnonzero(q & (G < 2))[0])
        raise InputError("group size must be >= 2 here (log2 G = 0 gives no penalty to fit)",
                         file=src, row=_row_label(table, i), column="group_size")
    N, D, y = (table[c].to_numpy(dtype=float) for c in ("N", "D", "loss"))

    # BF16 reference loss of every quantized run
    ref = np.full(len(table), np.nan)
    bN, bD, by = N[base], D[base], y[base]
    for i in np.flatnonzero(q):
        hit = np.isclose(bN, N[i], rtol=1e-6) & np.isclose(bD, D[i], rtol=1e-6)
        if hit.any():
            ref[i] = by[hit].mean()
    n_matched = int(np.sum(q & ~np.isnan(ref)))
    need = q & np.isnan(ref)
    chin = None
    if need.any():
        if chinchilla is None:
            if base.sum() < 6 or len(set(bN)) < 2 or len(set(bD)) < 2:
                raise InputError(f"{int(need.sum())} quantized runs have no BF16 run at the same N and D, "
                                 f"and the {int(base.sum())} BF16 runs are too few to fit the Chinchilla loss "
                                 f"(need >= 6 at >= 2 sizes and token counts); pass chinchilla={{E, A, B, "
                                 f"alpha, beta}}", file=src)
            bt = table[base].copy()
            bt.attrs["source"] = src
            chin = dict(_fit(bt, law="chinchilla").params)
        else:
            miss = [p for p in ("E", "A", "B", "alpha", "beta") if p not in chinchilla]
            if miss:
                raise InputError(f"chinchilla= lacks {', '.join(miss)}")
            chin = {p: float(chinchilla[p]) for p in ("E", "A", "B", "alpha", "beta")}
        ref[need] = bf16_loss(chin, N[need], D[need])
    dobs = y - ref

    fitted = {}
    notes = []
    for k, m in cats.items():
        if m.sum() < 4:
            raise InputError(f"{labels[k]}: {int(m.sum())} runs are too few to fit the 4-parameter penalty",
                             file=src)
        df = pd.DataFrame({"N": N[m], "D": D[m], "group_size": G[m], "delta": dobs[m]})
        df.attrs["source"] = f"{src} ({labels[k]} runs)"
        if len(set(G[m])) < 2 and not (fix and "gamma_G" in fix):
            notes.append(f"{labels[k]}: one group size only, so k and gamma_G are not separately identified")
        if len(set(D[m])) < 2 and not (fix and "gamma_D" in fix):
            notes.append(f"{labels[k]}: one token count only, so gamma_D is not identified")
        if len(set(N[m])) < 2 and not (fix and "gamma_N" in fix):
            notes.append(f"{labels[k]}: one model size only, so gamma_N is not identified")
        res = _fit(df, law=_Penalty(), loss=loss, delta=delta, space="linear", starts=starts, fix=fix)
        pred = penalty(res.params, N[m], D[m], G[m])
        fitted[k] = {"label": labels[k], "params": dict(res.params), "n_runs": int(m.sum()),
                     "mean_relative_error": float(np.mean(np.abs(dobs[m] - pred) / np.abs(dobs[m]))),
                     "converged": res.converged}

    mb = cats["both"]
    dW = penalty(fitted["weight"]["params"], N[mb], D[mb], G[mb])
    dA = penalty(fitted["activation"]["params"], N[mb], D[mb], G[mb])
    s, o = dW + dA, dobs[mb]
    rel = np.abs(o - s) / np.abs(o)
    coef = float(np.dot(o, s) / np.dot(s, s))

    # the law-free check: measured W-only + A-only penalties at the same (N, D, G)
    def _match(cat, i):
        mm = cats[cat] & np.isclose(N, N[i], rtol=1e-6) & np.isclose(D, D[i], rtol=1e-6) \
            & np.isclose(G, G[i], rtol=1e-6)
        return float(dobs[mm].mean()) if mm.any() else math.nan

    rows = []
    for j, i in enumerate(np.flatnonzero(mb)):
        mw, ma = _match("weight", i), _match("activation", i)
        rows.append({"row": _row_label(table, i), "N": N[i], "D": D[i], "group_size": G[i],
                     "observed": float(o[j]), "weight": float(dW[j]), "activation": float(dA[j]),
                     "sum": float(s[j]), "relative_error": float(rel[j]),
                     "measured_weight": mw, "measured_activation": ma})
    ms = np.array([r["measured_weight"] + r["measured_activation"] for r in rows])
    ok = np.isfinite(ms)
    measured = {"n_runs": int(ok.sum())}
    if ok.any():
        measured["mean_relative_error"] = float(np.mean(np.abs(o[ok] - ms[ok]) / np.abs(o[ok])))
        measured["coefficient"] = float(np.dot(o[ok], ms[ok]) / np.dot(ms[ok], ms[ok]))
    out = {
        "weight": fitted["weight"], "activation": fitted["activation"], "both": fitted["both"],
        "mean_relative_error": float(rel.mean()), "median_relative_error": float(np.median(rel)),
        "max_relative_error": float(rel.max()), "coefficient": coef, "measured": measured,
        "rows": rows,
        "reference": {"matched_bf16_runs": n_matched, "from_chinchilla": int(need.sum()), "chinchilla": chin},
        "notes": notes,
    }
    out["summary"] = (f"{labels['both']} penalty vs {labels['weight']} + {labels['activation']} on "
                      f"{int(mb.sum())} runs: mean relative error {out['mean_relative_error']:.1%}, "
                      f"{labels['both']} = {coef:.3f} x (sum) (Chen et al. find 0.906)")
    return out
