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
refused; select one with ``--where`` or use the decomposition below.

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

What the presets reproduce of the text
--------------------------------------
``examples/papers/chen2025.py`` holds the ratios the text and Fig. 8a quote, as the toolkit
gives them from these presets: the penalty drop from 74M to 594M parameters (W4A4, W4A16,
W16A4; within 4%), its rise from 10B to 100B tokens (W4A16, W4A4; within 3%), the cell ratios
of ``R = delta_W16A4 / delta_W4A16`` in Fig. 8a (within 4%), the saving of an 8-bit FC2 input
at G = 32 (within 3%) but not at G = 256 (10% off, see the FC2 caveat above), and the
decomposition coefficient (the three Table 1 penalties give c = 0.906 by least squares over
the paper's 4 x 4 x 4 grid, as Section 4.3 reports).  Those sentences of the paper were read by
an earlier session (they are recorded in ``tests/test_law_chen_qat.py``); the copy of the
paper reachable later gave only its abstract, so they were not re-read since.

Decomposition (Section 4.3)
---------------------------
The law declares its penalty as a law of its own (:class:`ChenPenalty`, fitted to loss
differences) and its unquantized part (Chinchilla); with those,
:func:`scalinglaws.trust.decompose.decompose` fits the weight-only (W4A16) and
activation-only (W16A4) penalties on their own rows and reports how well
``delta_W4A4 ~ delta_W4A16 + delta_W16A4`` holds on the user's W4A4 rows (mean relative
error, and the least-squares coefficient c of ``delta_W4A4 = c (delta_W4A16 +
delta_W16A4)``; the paper finds c = 0.906).

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
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from scalinglaws.data.columns import as_columns, group_sizes
from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.units import human
from scalinglaws.laws.plan import GROUP_SIZES, not_modelled
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps
from scalinglaws.laws.chinchilla import Chinchilla

_CHINCHILLA = {"E": 1.9279, "A": 237.7042, "B": 596.2490, "alpha": 0.3022, "beta": 0.3022}
_TABLE1 = "Chen et al. 2025, Scaling Law for Quantization-Aware Training, Table 1"

def quantized_mask(cols) -> np.ndarray:
    """True for rows trained with quantization (``w_bits < 16`` or ``a_bits < 16``)."""
    cols = as_columns(cols)
    return (cols["w_bits"] < 16) | (cols["a_bits"] < 16)


def penalty(p, x, m=np):
    """``delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N``, with ``x.lg = log2 G``."""
    return p.k * x.D ** p.gamma_D * x.lg ** p.gamma_G / x.N ** p.gamma_N


def _log2_group(G, on):
    """``log2 G`` where ``on``, 1 elsewhere (a neutral value where the penalty is masked off)."""
    return np.where(on, np.log2(np.where(on, G, 2.0)), 1.0)


def effective_parameters(params: Mapping[str, float], N, D, group_size):
    """The paper's effective-parameter view of the QAT penalty (Eq. 2-3).

    Returns ``eff = (A / (A + delta N^alpha))^(1/alpha)`` in (0, 1]: the QAT model at N
    loses as much as an unquantized model of ``N * eff`` parameters on the same data.
    """
    N = np.asarray(N, dtype=float)
    law = ChenPenalty()
    d = law.at({k: params[k] for k in law.param_names}, N=N, D=D, group_size=group_size)
    A, alpha = params["A"], params["alpha"]
    out = (A / (A + d * N ** alpha)) ** (1.0 / alpha)
    return float(out) if np.ndim(out) == 0 else out


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


class ChenPenalty(Law):
    """The penalty alone, ``delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N``, fitted to
    observed loss differences (column ``delta``).  The decomposition fits it; not registered."""

    name = "chen-qat-penalty"
    title = "Chen QAT penalty alone"
    formula_text = "delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N"
    params = (
        Param("k", "scale of the QAT penalty", exps(-25, 10), exps(-4, -2, 0), log=True),
        Param("gamma_D", "penalty growth with training tokens", (0.0, 3.0), (0.05, 0.2)),
        Param("gamma_G", "penalty growth with log2(group size)", (0.0, 5.0), (0.3, 1.0)),
        Param("gamma_N", "penalty decay with model size", (0.0, 3.0), (0.1, 0.4)),
    )
    columns = ("N", "D", "group_size")
    target = "delta"
    predicts = "penalty"

    def design(self, runs):
        X = super().design(runs)
        X["lg"] = np.log2(X["group_size"])
        return X

    def formula(self, p, x, m=np):
        return penalty(p, x, m)

    def example(self):
        N, D, G = np.meshgrid((74e6, 297e6, 1.2e9), (10e9, 50e9, 200e9), (32.0, 64.0, 128.0, 256.0))
        p = ChenQAT.presets["chen2025"].values
        return {k: p[k] for k in self.param_names}, {"N": N.ravel(), "D": D.ravel(), "group_size": G.ravel()}


@dataclass(frozen=True)
class Decomposition:
    """What :func:`scalinglaws.trust.decompose.decompose` needs from a law with a QAT penalty."""

    penalty: Law                   # the penalty alone, fitted to loss differences
    base: Law                      # the unquantized loss
    published_coefficient: float   # delta_WA = c (delta_W + delta_A): the paper's c
    reference: str


class ChenQAT(Law):
    name = "chen-qat"
    title = "Chen QAT: Chinchilla plus a QAT penalty in N, D and group size"
    reference = "Chen et al. 2025, Scaling Law for Quantization-Aware Training (arXiv:2505.14302), Eq. 4-5"
    formula_text = ("L = E + A/N^alpha + B/D^beta + delta, delta = k D^gamma_D (log2 G)^gamma_G / N^gamma_N "
                    "(delta = 0 on unquantized rows)")
    params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0.25, 0.75), log=True),
        Param("A", "scale of the finite-model term", exps(-10, 60), exps(2, 6, 10), log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(2, 6, 10), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.25, 0.5)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.25, 0.5)),
        Param("k", "scale of the QAT penalty", exps(-25, 10), exps(-3, -1), log=True),
        Param("gamma_D", "penalty growth with training tokens", (0.0, 3.0), (0.1,)),
        Param("gamma_G", "penalty growth with log2(group size)", (0.0, 5.0), (0.7,)),
        Param("gamma_N", "penalty decay with model size", (0.0, 3.0), (0.2,)),
    )
    # (E, A, B and k enter the formula affinely, but solved per start (scalinglaws.fitting.amplitudes) the 144
    # starts are 4, which ended 2.1e-5 above the whole grid's optimum at one bit width of data/ladder_runs.csv:
    # the grid is searched, docs/fitter-speed.md)
    columns = ("N", "D", "w_bits", "a_bits")
    optional_columns = ("group_size",)
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
                        "plan_data", required=("N", "group_size")),)
    penalty_axes = ("bits", "group_size", "tokens_per_byte")
    figure = (View("curves", x="group_size", y="penalty", curves="N", fixed={"D": "max"},
                   title="QAT penalty against group size"),
              View("curves", x="D", y="penalty", curves="N", fixed={"group_size": 128},
                   title="QAT penalty against training tokens"))
    decomposition = Decomposition(ChenPenalty(), Chinchilla(), 0.906, "Chen et al. 2025, Section 4.3")

    # ------------------------------------------------------------------ data
    def prepare(self, runs):
        cols = as_columns(runs)
        q = quantized_mask(cols)
        if not q.any():
            raise InputError(f"law '{self.name}' needs quantized runs (w_bits or a_bits < 16); the table has "
                             f"only unquantized ones (fit '{self.decomposition.base.name}' to those)",
                             file=cols.source)
        w, a = cols["w_bits"][q], cols["a_bits"][q]
        settings = sorted({(int(x) if float(x).is_integer() else x, int(y) if float(y).is_integer() else y)
                           for x, y in zip(w, a)})
        if len(settings) > 1:
            names = ", ".join(f"W{x}A{y}" for x, y in settings)
            raise InputError(f"law '{self.name}' fits one quantized setting at a time (its delta differs "
                             f"between them); the table has {names}. Keep one with a where filter, e.g. "
                             f"\"(w_bits == {settings[0][0]} and a_bits == {settings[0][1]}) or "
                             f"(w_bits >= 16 and a_bits >= 16)\", or compare them with the decomposition "
                             f"(scalinglaws.decompose)", file=cols.source)
        return runs

    def design(self, runs):
        cols = as_columns(runs)
        X = super().design(cols)
        q = quantized_mask(cols)
        G = group_sizes(cols, q, f"law '{self.name}'")
        on = q & (G > 1)  # G = 1: no shared scale, log2 G = 0, no penalty
        X["lg"] = _log2_group(G, on)
        X["q"] = on.astype(float)
        X.pop("group_size", None)
        return X

    # --------------------------------------------------------------- formula
    def formula(self, p, x, m=np):
        return p.E + p.A / x.N ** p.alpha + p.B / x.D ** p.beta + x.q * penalty(p, x, m)

    def example(self):
        rows = [(N, D, b, b, G) for N in (74e6, 145e6, 297e6, 595e6) for D in (10e9, 20e9, 50e9, 100e9)
                for b, G in ((16, np.nan), (4, 32), (4, 64), (4, 128), (4, 256))]
        cols = dict(zip(("N", "D", "w_bits", "a_bits", "group_size"), np.array(rows, float).T))
        return dict(self.presets["chen2025"].values), cols

    # -------------------------------------------------------------- planners
    def plan_space(self, params, w_bits=None, a_bits=None, group_sizes=None, bits=None, qat_fractions=None):
        """Unquantized, and the one quantized setting the penalty was fitted on, at each group size.

        The penalty has no term in the bit width: a fit (or preset) describes the one W/A setting
        of its quantized runs (W4A4 for ``chen2025``), which its parameters do not record, so the
        plan asks for it (``--w-bits 4 --a-bits 4``) rather than guess.
        """
        for name, given in (("bits", bits), ("qat_fractions", qat_fractions)):
            if given is not None:
                raise not_modelled(self.name, name, " (its penalty has no term in the bit width; give the fitted "
                                                    "setting with w_bits and a_bits)" if name == "bits" else "")
        if not (w_bits and a_bits and len(w_bits) == 1 and len(a_bits) == 1):
            raise OptionError("w_bits", f"and a_bits, one value each, are needed: law '{self.name}' has no term "
                                        "in the bit width, so its penalty describes only the setting it was fitted "
                                        "on; give that setting (4 and 4 for a W4A4 fit such as preset chen2025, "
                                        "4 and 16 for chen2025-w4a16)")
        w, a = float(w_bits[0]), float(a_bits[0])
        plain = {"w_bits": 16.0, "a_bits": 16.0}
        if w >= 16 and a >= 16:
            return [plain]
        return [plain] + [{"w_bits": w, "a_bits": a, "group_size": float(g)}
                          for g in (group_sizes or GROUP_SIZES)]

    def plan_data(self, params, N, group_size):
        """Critical data size at N and group size G (where dL/dD = 0)."""
        d = critical_data(params, N, group_size)
        res = {"N": N, "group_size": group_size, "D_crit": d,
               "tokens_per_param": d / N if math.isfinite(d) else math.inf}
        if math.isfinite(d):
            res["loss"] = self.at(params, N=N, D=d, w_bits=4.0, group_size=group_size)
            res["penalty"] = res["loss"] - self.at(params, N=N, D=d)
            res["summary"] = (f"beyond D_crit = {human(d)} tokens ({d / N:.3g} tokens/parameter) more data "
                              f"raises the QAT loss of a {human(N)}-parameter model at G = {group_size:g}")
        else:
            res["summary"] = ("no critical data size: the penalty does not grow with D "
                              "(gamma_D <= 0) or G = 1 (no penalty)")
        return res
