"""Ouyang QiD: the loss that low-bit post-training quantization adds, by training level.

Ouyang et al. 2024, "Low-Bit Quantization Favors Undertrained LLMs: Scaling Laws for
Quantized LLMs with 100T Training Tokens"::

    dL = k * D^beta / (N^alpha * P^gamma)

the quantization-induced degradation (QiD) of a checkpoint of N parameters trained on
D tokens, quantized after training to P = ``ptq_bits`` bits.  It grows with training
tokens and shrinks with model size and bit-width: low-bit quantization favours
undertrained models.

What it is fitted on (and predicts)
-----------------------------------
This law's target is the *degradation* ``dL = loss - loss_fp``, not the loss: each
row must carry the quantized loss (``loss``) and the unquantized loss of the same
checkpoint (``loss_fp``).  :meth:`OuyangQiD.prepare` keeps the rows that qualify,
``ptq_bits < 16`` (quantized) and ``loss_fp`` present, and refuses the table with the
reasons when none does; :meth:`OuyangQiD.observed` returns ``loss - loss_fp``.  Rows of
an unquantized model carry no information for this form and are left out.  A row whose
measured degradation is at or below 0 (noise around a small one) is left out in log space,
the default, where it has no logarithm, and kept in linear space (``--space linear``), where
leaving it out would bias the small degradations up.  Which space suits the runs depends on
their noise: degradations that scatter in proportion to their size suit log space, noise of
a fixed size (the two losses' own, where the degradation is near 0) linear space; the fit
warns (``noise_varies``) where the scatter is far from one level in the space it was fitted
in.  ``predict`` returns dL.

With ``k`` fitted as its logarithm, ``log dL = log k + beta lnD - alpha lnN - gamma lnP``
is linear in the fitted parameters (the fitter's IRLS steps suit the Huber loss here).

Parameters
----------
k : scale of the degradation (nats).
alpha : how fast the degradation shrinks with parameters N.
beta : how fast it grows with training tokens D.
gamma : how fast it shrinks with bit-width P.

N counts **non-embedding** parameters: the paper's fits of QiD against model size use "the
number of non-embedding parameters" (Fig. 4 caption), as does the toolkit's ``N`` by convention.
D counts training tokens, dL is in nats per token.

Where the numbers come from
---------------------------
The paper's text was read from its arXiv HTML as copied in a public summary of the paper
(the figure captions with their LaTeX, and Table 1 cell by cell); the arXiv page itself could
not be read here.  Three checks tie that copy to the paper: the unified constants below are
those the caption prints, the 405B / 4-bit / QiD 0.2 cell (48.4861T) agrees with the 48.5T
this project's issue quotes, and every column of the copied Table 1 is an exact power law within its last digit
(below), which a corrupted cell would break.

Preset ``ouyang2024``: the unified QiD scaling law, Fig. 6 caption (the form of Eq. (8)),
fitted on GPTQ-quantized Pythia checkpoints of every bit width:
``dL(N, D, P) = 0.017 D^0.5251 / (N^0.2261 P^5.4967)``.  (The one-factor fits of Eq. (5)-(7),
beta = 0.5316 in Fig. 3, alpha = 0.2276 in Fig. 4, gamma = 5.4812 in Fig. 5, are separate fits,
not presets.)

Presets ``ouyang2024-2bit``, ``ouyang2024-3bit``, ``ouyang2024-4bit``: the laws behind Table 1
("Prediction of the number of training tokens (in trillion) needed to achieve a given training
level measured by dL for different model sizes and bit widths"; N = 1B, 7B, 70B, 405B, dL = 0.2,
0.3, 0.4, 0.5, P = 2, 3, 4).  The unified preset does not reproduce that table: it is within
2.1% of the 2-bit cells (5.6% and 3.3% at the two smallest, 0.0011T and 0.0026T, whose printed
digits alone carry 4.5% and 1.9%) but gives 0.42-1.61 times the 3- and 4-bit cells (405B /
4 bits / 0.2: 21.8T, the table 48.4861T), so Table 1 was computed from one fit per bit width.
The text we could read states no per-bit constants (the 4-bit-only GPTQ fit of Fig. 9 gives its
formula in the figure, not in the text), so these presets are **fitted here to the table's own numbers**: each column's 16 cells are exactly
``D = (dL N^alpha / k)^(1/beta)``, i.e. log D is linear in log dL and log N; the constants
minimise the largest miss in units of the last printed digit (0.0001 T) and reproduce every one
of the 48 cells within half that unit (the table's rounding), given to 8 significant digits
because a 4-decimal cell of 196 T pins D to 2.5e-7.  The fit is exact in the nominal sizes
1e9, 7e9, 70e9, 405e9: the table evaluates its laws at N as written (non-embedding counts of real
models of those sizes would not give an exact power law in the nominal sizes).  Each per-bit preset
holds at its own bit width only: its bit factor is inside k and gamma = 0, so it gives the same
degradation at any ``ptq_bits``; the ``data`` planner says so when asked about another width.

Planner ``data`` (``--N``, ``--ptq-bits``, ``--threshold``): the training tokens at which the
degradation reaches the threshold, ``D = (threshold N^alpha P^gamma / k)^(1/beta)``, the inverse
of the law.  This is how Table 1 is computed (the tokens at which QiD, the paper's measure of a
training level, reaches 0.2-0.5): with the per-bit presets the planner gives every cell of it,
e.g. ``scalinglaws optimal data ouyang2024-4bit --N 405B --ptq-bits 4 --threshold 0.2`` gives
48.4861T.  A model trained on more tokens loses more than ``threshold`` nats when quantized to
P bits.

The loss of the quantized model is ``Loss_q = Loss_16-bit + dL`` (Fig. 7); the paper's 16-bit
loss of the same Pythia checkpoints is law ``kaplan``, preset ``ouyang2024-16bit``.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps

#: the per-bit laws behind Table 1, fitted here to its cells (see the module docstring): bits -> constants
_TABLE1_FITS = {
    2: {"k": 3.8084716e-04, "alpha": 0.22505596, "beta": 0.52387592, "gamma": 0.0},
    3: {"k": 1.1701989e-05, "alpha": 0.35468416, "beta": 0.67273057, "gamma": 0.0},
    4: {"k": 6.1322678e-06, "alpha": 0.38350305, "beta": 0.65506020, "gamma": 0.0},
}


class OuyangQiD(Law):
    name = "ouyang-qid"
    predicts = "degradation"  # loss - loss_fp, in nats/token
    title = "Ouyang QiD: quantization-induced degradation vs. training level"
    reference = "Ouyang et al. 2024, Low-Bit Quantization Favors Undertrained LLMs"
    formula_text = "dL = loss - loss_fp = k D^beta / (N^alpha P^gamma), P = ptq_bits"
    params = (
        Param("k", "scale of the degradation (nats)", exps(-40, 40), exps(-4, 0), log=True),
        Param("alpha", "decay of the degradation with parameters N", (0.0, 5.0), (0.2, 0.5)),
        Param("beta", "growth of the degradation with tokens D", (0.0, 5.0), (0.5,)),
        Param("gamma", "decay of the degradation with bit-width P", (0.0, 30.0), (2.0, 5.0)),
    )
    amplitudes = ("k",)  # the formula is affine in them: solved per start, not searched
    columns = ("N", "D", "ptq_bits")
    presets = {
        "ouyang2024": Preset(
            {"k": 0.017, "alpha": 0.2261, "beta": 0.5251, "gamma": 5.4967},
            "Ouyang et al. 2024, Low-Bit Quantization Favors Undertrained LLMs, Fig. 6 caption (Eq. (8) form): "
            "the unified QiD scaling law fitted on GPTQ-quantized Pythia checkpoints of all bit widths; "
            "N non-embedding parameters"),
        **{f"ouyang2024-{bits}bit": Preset(
            values,
            f"Ouyang et al. 2024, Low-Bit Quantization Favors Undertrained LLMs, Table 1, {bits}-bit column, "
            f"fitted here to the table's own 16 cells (N = 1B, 7B, 70B, 405B; dL = 0.2-0.5) as "
            f"D = (dL N^alpha / k)^(1/beta), minimising the largest miss: every cell within its rounding "
            f"(0.00005T); the paper text we read gives no per-bit constants. Holds at {bits} bits only "
            f"(the bit factor is inside k, gamma = 0)")
           for bits, values in _TABLE1_FITS.items()},
    }
    planners = (
        Planner("data", "training tokens at which the PTQ degradation reaches --threshold nats",
                "plan_data", required=("N", "ptq_bits", "threshold")),
    )
    penalty_axes = ("bits", "tokens_per_byte")
    figure = (View("curves", x="D", panels="ptq_bits", curves="N", yscale="log",
                   title="quantization-induced degradation against training tokens, one panel per bit width"),)

    def formula(self, p, x, m=np):
        return p.k * x.D ** p.beta / (x.N ** p.alpha * x.ptq_bits ** p.gamma)

    def example(self):
        N, D, P = np.meshgrid((1.6e8, 1e9, 6.9e9), np.geomspace(1e9, 3e11, 4), (2.0, 3.0, 4.0, 8.0))
        N, D = N.ravel(), D.ravel()
        return dict(self.presets["ouyang2024"].values), {"N": N, "D": D, "ptq_bits": P.ravel(),
                                                         "loss_fp": 1.8 + 400 / N ** 0.34 + 400 / D ** 0.28}

    def simulate_target(self, params, runs):
        """The quantized loss: the checkpoint's ``loss_fp`` plus the predicted degradation."""
        return as_columns(runs)["loss_fp"] + self.predict(params, runs)

    # ------------------------------------------------------------------ data
    def prepare(self, runs):
        """Rows with ``ptq_bits < 16`` and a ``loss_fp``; refuse when none qualifies (a log-space fit also
        leaves out those with ``loss <= loss_fp``: :func:`scalinglaws.fitting.problem.in_space`)."""
        cols = as_columns(runs)
        src = cols.source
        if "loss_fp" not in cols:
            raise InputError(f"law '{self.name}' needs column 'loss_fp' (the loss of the same checkpoint "
                             f"before quantization): it is fitted on the degradation loss - loss_fp", file=src)
        cols.require(("ptq_bits", "loss"), f"law '{self.name}'")
        bits, loss, fp = cols["ptq_bits"], cols["loss"], cols["loss_fp"]
        quant, has_fp = bits < 16, np.isfinite(fp)
        keep = quant & has_fp & np.isfinite(loss)
        if not keep.any():
            raise InputError(
                f"law '{self.name}' is fitted on post-training-quantized rows (ptq_bits < 16) that carry "
                f"loss_fp; none of the {len(runs)} rows qualifies ({int((~quant).sum())} have ptq_bits >= 16, "
                f"{int((quant & ~has_fp).sum())} quantized rows lack loss_fp)", file=src)
        out = runs[keep]
        out.attrs.update(runs.attrs)
        return out

    def observed(self, runs):
        """The degradation ``loss - loss_fp`` of each run."""
        cols = as_columns(runs)
        return cols["loss"] - cols["loss_fp"]

    # --------------------------------------------------------------- planner
    def plan_data(self, params, N, ptq_bits, threshold):
        """Tokens at which a model of ``N`` parameters quantized to ``ptq_bits`` degrades by ``threshold``."""
        p = params
        if not (p["k"] > 0 and p["beta"] > 0):
            raise InputError(f"these parameters have no such data size: it needs k > 0 and beta > 0 "
                             f"(got k={p['k']:g}, beta={p['beta']:g})")
        log_d = (math.log(threshold) + p["alpha"] * math.log(N) + p["gamma"] * math.log(ptq_bits)
                 - math.log(p["k"])) / p["beta"]
        D = math.exp(log_d)
        res = {"N": float(N), "ptq_bits": ptq_bits, "threshold": float(threshold), "D": D,
               "tokens_per_param": D / N}
        res["summary"] = (f"a {human(N)}-parameter model quantized to {ptq_bits:g} bits loses {threshold:g} nats "
                          f"once trained on D = {human(D)} tokens ({D / N:.3g} tokens/parameter); "
                          f"more tokens, more loss")
        fixed = _fixed_bits(p)
        if fixed is not None and fixed != ptq_bits:
            res["summary"] += (f". Warning: these are the {fixed}-bit constants of Table 1 (preset "
                               f"ouyang2024-{fixed}bit), which hold at {fixed} bits only, not at {ptq_bits:g}")
        return res


def _fixed_bits(params) -> int | None:
    """The bit width whose Table 1 constants ``params`` are (a per-bit preset), else None."""
    for bits, values in _TABLE1_FITS.items():
        if all(params.get(k) == v for k, v in values.items()):
            return bits
    return None
