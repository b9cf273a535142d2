"""Kaplan form of the 16-bit loss: L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D.

The loss of an unquantized (16-bit) model of N parameters trained on D tokens, in the form of
Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", their L(N, D); its equation number
there is not checked here).  It has no irreducible-loss term: the loss falls to zero as N and D
grow, and the exponent alpha_D acts on the sum of the two terms.

Why it is here: Ouyang et al. 2024 (law ``ouyang-qid``) predict the loss of a post-training-
quantized model as ``Loss_q = Loss_16-bit + dL`` (their Fig. 7), with the quantization-induced
degradation dL from their unified QiD law and the 16-bit loss from this form, which they call
"the conventional LLM's scaling law" (their Eq. (3)).  For the quantized loss, add this law's
prediction to the ``ouyang-qid`` prediction at the same N and D (both read N the same way).

Parameters
----------
N_c : parameter scale of the model-size term (parameters).
D_c : token scale of the data term (tokens).
alpha_N : exponent of model size (the model-size term is (N_c/N)^(alpha_N/alpha_D) inside the bracket).
alpha_D : exponent of the bracket, and of data size.

Preset ``ouyang2024-16bit``: Ouyang et al. 2024, Fig. 7 caption, the fit of this form to the
16-bit Pythia checkpoints (loss on RefinedWeb, their test set): ``Loss_16-bit = [(4.74e19/N)^(0.045/0.399)
+ 7.63e10/D]^0.399``, so N_c = 4.74e19, alpha_N = 0.045, D_c = 7.63e10, alpha_D = 0.399 (the caption
writes the constants as "4.74e^19" and "7.63e^10", read here as 4.74 x 10^19 and 7.63 x 10^10: with
them N = 12B and 160M parameters at 300B tokens (Pythia's sizes and token count) predict about
2.7 and 3.3 nats, the range of a language-model loss; with e^19 and e^10 the losses would be far below any measured one).
The caption does not say whether N counts embedding parameters; the paper's QiD law counts
non-embedding parameters (its Fig. 4 caption), and so does the toolkit's ``N`` by convention.
Source of the text: the arXiv HTML captions as copied in a public summary of the paper (the
arXiv page itself could not be read here); the constants are as printed there.
"""

from __future__ import annotations

import numpy as np

from scalinglaws.laws.base import Law, Param, Preset, View, exps


class Kaplan(Law):
    name = "kaplan"
    title = "Kaplan form: 16-bit loss from parameters and tokens"
    reference = "Kaplan et al. 2020, Scaling Laws for Neural Language Models (form); constants: Ouyang et al. 2024"
    formula_text = "L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    params = (
        Param("N_c", "parameter scale of the model-size term", exps(-10, 120), exps(20, 35, 50), log=True),
        Param("D_c", "token scale of the data term", exps(-10, 90), exps(15, 25, 35), log=True),
        Param("alpha_N", "exponent of model size", (0.0, 5.0), (0.03, 0.08)),
        Param("alpha_D", "exponent of the bracket (and of data size)", (1e-3, 5.0), (0.1, 0.4)),
    )
    columns = ("N", "D")
    presets = {
        "ouyang2024-16bit": Preset(
            {"N_c": 4.74e19, "D_c": 7.63e10, "alpha_N": 0.045, "alpha_D": 0.399},
            "Ouyang et al. 2024, Low-Bit Quantization Favors Undertrained LLMs, Fig. 7 caption: the 16-bit "
            "loss of the Pythia checkpoints, Loss_16-bit = [(4.74e19/N)^(0.045/0.399) + 7.63e10/D]^0.399, "
            "the Eq. (3) form; Loss_q = Loss_16-bit + dL with dL from law ouyang-qid"),
    }
    planners = ()
    penalty_axes = ()
    figure = (View("curves", x="D", curves="N", title="16-bit loss against tokens, one curve per model size"),)

    def formula(self, p, x, m=np):
        return ((p.N_c / x.N) ** (p.alpha_N / p.alpha_D) + p.D_c / x.D) ** p.alpha_D

    def example(self):
        N, D = np.meshgrid(np.geomspace(7e7, 1.2e10, 5), np.geomspace(1e9, 3e11, 5))
        return dict(self.presets["ouyang2024-16bit"].values), {"N": N.ravel(), "D": D.ravel()}
