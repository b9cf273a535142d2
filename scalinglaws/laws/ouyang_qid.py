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
``ptq_bits < 16`` (quantized), ``loss_fp`` present and ``loss > loss_fp`` (a positive
degradation, so that its logarithm exists), and refuses the table with the reasons
when none does; :meth:`OuyangQiD.observed` returns ``loss - loss_fp``.  Rows of an
unquantized model or with a negative measured degradation (noise) carry no
information for this form and are left out.  ``predict`` returns dL.

With ``k`` fitted as its logarithm, ``log dL = log k + beta lnD - alpha lnN - gamma lnP``
is linear in the fitted parameters (the fitter's IRLS steps suit the Huber loss here).

Parameters
----------
k : scale of the degradation (nats).
alpha : how fast the degradation shrinks with parameters N.
beta : how fast it grows with training tokens D.
gamma : how fast it shrinks with bit-width P.

Preset ``ouyang2024``: Ouyang et al. 2024, the fitted constants of the unified QiD
scaling law (fitted on Pythia checkpoints quantized with GPTQ): k = 0.017,
alpha = 0.2261, beta = 0.5251, gamma = 5.4967.  N counts parameters, D tokens.

Planner ``data`` (``--N``, ``--ptq-bits``, ``--threshold``): the training tokens at
which the degradation reaches the threshold,
``D = (threshold N^alpha P^gamma / k)^(1/beta)``; a model trained on more tokens
loses more than ``threshold`` nats when quantized to P bits.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.columns import as_columns
from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps


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
    columns = ("N", "D", "ptq_bits")
    presets = {
        "ouyang2024": Preset(
            {"k": 0.017, "alpha": 0.2261, "beta": 0.5251, "gamma": 5.4967},
            "Ouyang et al. 2024, Low-Bit Quantization Favors Undertrained LLMs: constants of the "
            "unified QiD scaling law (Pythia checkpoints, GPTQ)"),
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
        """Rows with ``ptq_bits < 16``, a ``loss_fp`` and ``loss > loss_fp``; refuse when none qualifies."""
        cols = as_columns(runs)
        src = cols.source
        if "loss_fp" not in cols:
            raise InputError(f"law '{self.name}' needs column 'loss_fp' (the loss of the same checkpoint "
                             f"before quantization): it is fitted on the degradation loss - loss_fp", file=src)
        cols.require(("ptq_bits", "loss"), f"law '{self.name}'")
        bits, loss, fp = cols["ptq_bits"], cols["loss"], cols["loss_fp"]
        quant, has_fp = bits < 16, np.isfinite(fp)
        keep = quant & has_fp & (loss > np.where(has_fp, fp, np.inf))
        if not keep.any():
            raise InputError(
                f"law '{self.name}' is fitted on post-training-quantized rows (ptq_bits < 16) that carry "
                f"loss_fp with loss > loss_fp; none of the {len(runs)} rows qualifies "
                f"({int((~quant).sum())} have ptq_bits >= 16, {int((quant & ~has_fp).sum())} quantized rows "
                f"lack loss_fp, {int((quant & has_fp & ~keep).sum())} have loss <= loss_fp)", file=src)
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
        return res
