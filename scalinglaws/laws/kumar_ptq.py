"""Kumar PTQ: Chinchilla plus the loss that post-training quantization adds.

Kumar et al. 2024, "Scaling Laws for Precision", Eq. 2 (post-train quantization), with the
offset b of Appendix K::

    L = E + A / N^alpha + B / D^beta + delta_PTQ
    delta_PTQ = C_T * D^gamma_D / N^gamma_N * exp(-ptq_bits / gamma_post + b)

``delta_PTQ`` is the degradation from quantizing the weights of a trained model to
``ptq_bits`` bits.  It *grows* with the tokens seen in pre-training (gamma_D > 0) and
shrinks with model size, so past a critical data size more pre-training data makes
the quantized model worse.

One fit takes unquantized and quantized rows together: rows with ``ptq_bits >= 16``
(an empty cell or an absent column means 16) have no PTQ term at all.  That is decided
by the design variable ``q`` (1 on PTQ rows, 0 elsewhere), not by the exponential
(which would give a small, non-zero term at 16 bits).  Scale parameters are fitted
as their logarithms.

The offset b.  Table 2 lists ``b = 1.1277`` after gamma_post and names neither its place
nor its role.  Appendix K says the exponential fits carry offsets ("a fit of the form
e^{x/gamma_x} in the main text is really computed with offset e^{x/gamma_x + n}"); the
offsets of N_eff have their own rows (n_w, n_i, n_kv), which leaves b for the one other
exponential of Table 2, exp(-P_post/gamma_post), and Appendix N calls the same kind of
constant "an exponent bias b".  The sign is the convention that reproduces the paper's
7-8 bits with the n_x (see ``kumar-precision``).  This placement is our reading of the
table, not a sentence of the paper.  It multiplies delta_PTQ by e^b = 3.09 and the
critical data size by e^(-b / (gamma_D + beta)) = 0.325.  Since exp(b) C_T is one
constant, a fit cannot tell b from C_T: fits leave b out (the fitted C_T is C_T e^b), and
a parameter set that names b (the preset, or a fit.json that carries it) gets it.

Parameters
----------
E : irreducible loss (nats/token).
A, alpha : scale and exponent of the finite-model term A / N^alpha.
B, beta : scale and exponent of the finite-data term B / D^beta.
C_T : scale of the PTQ degradation.
gamma_D : how fast the PTQ degradation grows with training tokens D.
gamma_N : how fast the PTQ degradation shrinks with parameters N.
gamma_post : bit scale of the PTQ degradation: each extra bit divides it by exp(1/gamma_post).
b : offset of the PTQ exponential (only where a parameter set names it; 0 otherwise).

Preset ``kumar2024-ptq``: Kumar et al. 2024, Appendix K, Table 2, with b (the same
table's training-precision constants are the ``kumar2024`` preset of ``kumar-precision``;
preset names are unique across the registry, hence the suffix).

Planners
--------
``data`` (``--N``, ``--ptq-bits``): the critical data size, where dL/dD = 0 (Appendix E.1,
Eq. 13), ``D_crit = (beta B N^gamma_N exp(ptq_bits/gamma_post - b) / (gamma_D C_T))^(1/(gamma_D+beta))``;
training on more tokens than D_crit makes the ``ptq_bits`` model worse.
``compute`` (``--flops``, optional ``--ptq-bits``): the Chinchilla allocation of the
unquantized part for C = 6ND, and the loss after PTQ at that allocation.
``bits`` (``--memory``, optional ``--D``): Appendix E.3's inference-cost model, inference
cost C = N P_post (the weights' bits, 8 x memory): for each P_post, N = 8 memory / P_post;
without ``--D`` the tokens are free and D = D_crit(N, P_post) (Eq. 13 again), so only
P_post < 16 is searched (with no PTQ the law has no degradation and the best D would be
unbounded); with ``--D`` the tokens are fixed and 16 bits (no PTQ) competes too.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.units import human
from scalinglaws.laws.base import Law, Param, Planner, Preset, View, exps
from scalinglaws.laws.chinchilla import compute_optimal
from scalinglaws.laws.kumar_precision import best_bits

OFFSET = Param("b", "offset of the PTQ exponential, exp(-ptq_bits/gamma_post + b) (Table 2; e^b multiplies C_T)",
               (-20.0, 20.0), (0.0,))


def log_critical_data(p, N, ptq_bits):
    """log D_crit (Eq. 13) for parameters ``p``; InputError when the parameters have none."""
    if not (p["gamma_D"] > 0 and p["C_T"] > 0 and p["beta"] > 0 and p["B"] > 0):
        raise InputError("these parameters have no critical data size: it needs C_T, gamma_D, B and "
                         f"beta > 0 (got C_T={p['C_T']:g}, gamma_D={p['gamma_D']:g}, B={p['B']:g}, "
                         f"beta={p['beta']:g})")
    return (math.log(p["beta"] * p["B"]) + p["gamma_N"] * np.log(N) + ptq_bits / p["gamma_post"] - p.get("b", 0.0)
            - math.log(p["gamma_D"] * p["C_T"])) / (p["gamma_D"] + p["beta"])


class KumarPTQ(Law):
    name = "kumar-ptq"
    title = "Kumar PTQ: Chinchilla plus post-training-quantization degradation"
    reference = "Kumar et al. 2024, Scaling Laws for Precision (Eq. 2, Appendix K)"
    formula_text = ("L = E + A/N^alpha + B/D^beta + delta_PTQ, delta_PTQ = C_T D^gamma_D / N^gamma_N "
                    "exp(-ptq_bits/gamma_post + b) (0 when ptq_bits >= 16; b = 0 unless named)")
    params = (
        Param("E", "irreducible loss (nats/token)", exps(-7, 5), exps(0, 1), log=True),
        Param("A", "scale of the finite-model term", exps(-10, 60), exps(4, 10), log=True),
        Param("B", "scale of the finite-data term", exps(-10, 60), exps(4, 10), log=True),
        Param("alpha", "exponent of model size", (0.0, 5.0), (0.3, 0.6)),
        Param("beta", "exponent of data size", (0.0, 5.0), (0.3, 0.6)),
        Param("C_T", "scale of the PTQ degradation", exps(-40, 40), exps(-3, 0), log=True),
        Param("gamma_D", "growth of the PTQ degradation with tokens D", (0.0, 5.0), (0.5,)),
        Param("gamma_N", "decay of the PTQ degradation with parameters N", (0.0, 5.0), (0.5,)),
        Param("gamma_post", "bit scale of the PTQ degradation (exp(-ptq_bits/gamma_post))",
              (0.02, 20.0), (0.5, 1.5)),
    )
    amplitudes = ("E", "A", "B", "C_T")  # the formula is affine in them: solved per start, not searched
    columns = ("N", "D", "ptq_bits")
    presets = {
        "kumar2024-ptq": Preset(
            {"E": 2.7648, "A": 4.299e3, "B": 1.806e4, "alpha": 0.4965, "beta": 0.4965,
             "C_T": 0.0598, "gamma_D": 0.5068, "gamma_N": 0.3439, "gamma_post": 0.5907, "b": 1.1277},
            "Kumar et al. 2024, Scaling Laws for Precision, Appendix K, Table 2 (Eq. 2 constants, offset b)"),
    }
    planners = (
        Planner("data", "critical data size: tokens beyond which more pre-training makes the "
                        "PTQ model worse", "plan_data", required=("N", "ptq_bits")),
        Planner("compute", "compute-optimal N and D for C = 6ND (unquantized part), and the loss "
                           "after PTQ there", "plan_compute", required=("flops",), optional=("ptq_bits",)),
        Planner("bits", "post-training bits, N and D of lowest loss for a weight memory N P_post / 8 "
                        "(inference-cost model of Appendix E.3)", "plan_bits", required=("memory",),
                optional=("D",)),
    )
    penalty_axes = ("bits", "tokens_per_byte")
    figure = (View("curves", x="D", y="penalty", panels="ptq_bits", curves="N",
                   title="loss added by post-training quantization against pre-training tokens, one panel per "
                         "bit width"),)

    def __init__(self, offset: bool = False):
        if offset:
            self.params = type(self).params + (OFFSET,)

    def from_param_names(self, names):
        offset = "b" in names
        return self if offset == any(p.name == "b" for p in self.params) else type(self)(offset)

    def design(self, cols):
        X = super().design(cols)
        X["q"] = (X["ptq_bits"] < 16.0).astype(float)  # explicit: >= 16 bits means no PTQ
        return X

    @staticmethod
    def delta_ptq(p, x, m=np):
        """delta_PTQ of Kumar et al. (Eq. 2, offset b where ``p`` has it), before the PTQ-row mask."""
        return p.C_T * x.D ** p.gamma_D / x.N ** p.gamma_N * m.exp(-x.ptq_bits / p.gamma_post + getattr(p, "b", 0.0))

    def formula(self, p, x, m=np):
        return p.E + p.A / x.N ** p.alpha + p.B / x.D ** p.beta + x.q * self.delta_ptq(p, x, m)

    def example(self):
        N, D, P = np.meshgrid(np.geomspace(1e8, 1e10, 4), np.geomspace(1e10, 1e12, 4), (16.0, 8.0, 4.0, 3.0))
        truth = {k: v for k, v in self.presets["kumar2024-ptq"].values.items() if k != "b"}  # b: see the docstring
        return truth, {"N": N.ravel(), "D": D.ravel(), "ptq_bits": P.ravel()}

    # planners --------------------------------------------------------------------
    def plan_data(self, params, N, ptq_bits):
        """Critical data size D_crit for a model of ``N`` parameters quantized to ``ptq_bits``."""
        if ptq_bits >= 16:
            raise OptionError("ptq_bits", f"{ptq_bits} means no post-training quantization (>= 16 bits); "
                              "without it more data always lowers the loss, so there is no critical data size")
        p = params
        d_crit = math.exp(log_critical_data(p, N, ptq_bits))
        base = self.at(p, N=N, D=d_crit)                       # no PTQ (16 bits)
        loss = self.at(p, N=N, D=d_crit, ptq_bits=ptq_bits)
        res = {"N": float(N), "ptq_bits": ptq_bits, "D_crit": d_crit, "tokens_per_param": d_crit / N,
               "loss_fp_at_D_crit": base, "delta_ptq_at_D_crit": loss - base, "loss_at_D_crit": loss}
        res["summary"] = (f"a {human(N)}-parameter model quantized to {ptq_bits:g} bits after training is best "
                          f"at D_crit = {human(d_crit)} tokens ({d_crit / N:.3g} tokens/parameter, loss "
                          f"{loss:.4f}); more pre-training data makes it worse")
        return res

    def plan_compute(self, params, flops, ptq_bits=None):
        """Chinchilla allocation of the unquantized part for ``flops``; loss after PTQ there."""
        p = params
        res = compute_optimal(p["E"], p["A"], p["B"], p["alpha"], p["beta"], flops)
        summary = (f"N_opt = {human(res['N_opt'])} parameters, D_opt = {human(res['D_opt'])} tokens "
                   f"({res['tokens_per_param']:.1f} tokens/parameter), loss {res['loss']:.4f} unquantized")
        if ptq_bits is not None:
            loss = self.at(p, N=res["N_opt"], D=res["D_opt"], ptq_bits=ptq_bits)
            res.update(ptq_bits=ptq_bits, delta_ptq=loss - res["loss"], loss_ptq=loss)
            summary += f", {res['loss_ptq']:.4f} after PTQ to {ptq_bits:g} bits"
        res["summary"] = summary
        return res

    def plan_bits(self, params, memory, D=None):
        """Appendix E.3: the post-training bits P (N = 8 memory / P) of lowest loss; D = D_crit unless given."""
        p, budget = params, 8.0 * memory  # weight bits, N P

        def at(Ps):
            Ps = np.asarray(Ps, dtype=float)
            Ns = budget / Ps
            Ds = np.exp(log_critical_data(p, Ns, Ps)) if D is None else np.full(Ps.shape, float(D))
            return Ns, Ds, self.at(p, N=Ns, D=Ds, ptq_bits=Ps)

        top = 15 if D is None else 16
        ints = np.arange(1.0, top + 1.0)
        Ns, Ds, losses = at(ints)
        rows = [{"bits": int(P), "N": float(n), "D": float(d), "tokens_per_param": float(d / n), "loss": float(L)}
                for P, n, d, L in zip(ints, Ns, Ds, losses)]
        best = rows[int(np.argmin(losses))]
        p_cont = best_bits(lambda Ps: at(Ps)[2], 1.0, 15.999 if D is None else 16.0)
        n_c, d_c, l_c = (float(v[0]) for v in at([p_cont]))
        tokens = "D = D_crit(N, P)" if D is None else f"D = {human(D)} tokens"
        out = {"memory_bytes": float(memory), "bits_opt": best["bits"], "N_opt": best["N"], "D_opt": best["D"],
               "tokens_per_param": best["tokens_per_param"], "loss": best["loss"], "bits_opt_continuous": p_cont,
               "N_opt_continuous": n_c, "D_opt_continuous": d_c, "loss_continuous": l_c, "table": rows,
               "best": best}
        what = (f"keep {best['bits']} bits (no post-training quantization)" if best["bits"] >= 16 else
                f"quantize to {best['bits']} bits after training" + (" (the top of the range searched)"
                                                                     if best["bits"] == top else ""))
        out["summary"] = (f"for {memory:.3g} bytes of weights {what}: "
                          f"N = {human(best['N'])} parameters, D = {human(best['D'])} tokens, loss {best['loss']:.4f} "
                          f"({tokens}, inference cost N P_post); continuous optimum {p_cont:.2f} bits")
        return out
