"""Kumar et al. 2024, "Scaling Laws for Precision" (arXiv 2411.04330).

The paper states few numbers a fitted law produces: the compute-optimal 7-8 bits and its
independence of compute (Sec. 4.3.2, Finding 3) are stated outright.  The other rows apply
an equation of the paper to its own Table 2 constants (typed in below from Appendix K, not
read from the toolkit) and say so in their note: the critical data size (Eq. 13), the
degradation there (Eq. 12), and the growth of the optimal precision at a fixed model size
(Eq. 23, P* ~ beta gamma ln C).
"""

import math

from papers import Row

P = "Kumar et al. 2024"

#: Appendix K, Table 2 ("Fitted constants and their values"); gamma_i is the activations' gamma
T2 = {"A": 4.299e3, "alpha": 0.4965, "B": 1.806e4, "E": 2.7648, "gamma_w": 2.6745, "n_w": 0.3037,
      "gamma_a": 2.2102, "n_a": 1.4072, "gamma_kv": 0.9578, "n_kv": 2.4185, "C_T": 0.0598, "gamma_D": 0.5068,
      "gamma_N": 0.3439, "gamma_post": 0.5907, "b": 1.1277}
BETA = T2["alpha"]  # Appendix K: "we tie alpha = beta"


def d_crit(N, P_post):
    """Eq. 13, with Table 2's offset b in the PTQ exponential (exp(P/gamma_post - b); see kumar-ptq)."""
    return (BETA * T2["B"] * N ** T2["gamma_N"] * math.exp(P_post / T2["gamma_post"] - T2["b"])
            / (T2["gamma_D"] * T2["C_T"])) ** (1 / (T2["gamma_D"] + BETA))


GAMMA_BAR = (T2["gamma_w"] + T2["gamma_a"] + T2["gamma_kv"]) / 3  # Finding 2: "the average of the three"

ROWS = [
    Row(P, "compute-optimal training precision at C = 1e23 FLOPs (bits)", 7.0, "Sec. 4.3.2 text / Finding 3",
        "optimal precision kumar2024 --flops 1e23", "bits_opt", tol=0.0,
        note="The paper finds 7-8 bits compute-optimal when N, D and P are chosen jointly; the planner "
             "picks the integer precision of lowest loss at C = (6/16) N D P."),
    Row(P, "continuous compute-optimal training precision at C = 1e23 FLOPs, paper: 7-8 bits (bits)", 7.5,
        "Sec. 4.3.2 text ('around 7-8 bits')", "optimal precision kumar2024 --flops 1e23", "bits_opt_continuous",
        tol=0.5 / 7.5,
        note="The paper's range 7-8 bits written as 7.5 +- 0.5; the toolkit's continuous optimum is 7.00 bits, at "
             "the low end of it."),
    Row(P, "compute-optimal training precision at C = 1e19 FLOPs (bits)", 7.0,
        "Finding 3 ('compute-optimal pretraining precision is independent of compute')",
        "optimal precision kumar2024 --flops 1e19", "bits_opt", tol=0.0,
        note="Four decades below the first row, the same 7 bits: with alpha = beta the optimum minimises "
             "P / (N_eff/N), whatever the budget."),
    Row(P, "compute-optimal training precision at C = 1e27 FLOPs (bits)", 7.0,
        "Finding 3 ('compute-optimal pretraining precision is independent of compute')",
        "optimal precision kumar2024 --flops 1e27", "bits_opt", tol=0.0,
        note="Four decades above the first row, the same 7 bits."),
    Row(P, "growth of the optimal precision with N fixed, N = 8B, C = 1e30 FLOPs (bits per e-fold of compute)",
        BETA * T2["gamma_w"], "Appendix E.2.2, Eq. 23 (P* ~ beta gamma ln C) with Table 2",
        "optimal precision kumar2024 --flops 1e30 --N 8B", "bits_per_e_fold", published=False, tol=0.03,
        note="Value = beta gamma_w = 0.4965 x 2.6745 from Table 2: with the factorized N_eff the slowest-decaying "
             "factor (the largest gamma, the weights') sets Eq. 23's gamma.  The toolkit's number is the local "
             "slope dP*/d ln C of the fixed-N planner (P* = 32 bits here); Eq. 23 is the leading order, and the "
             "slope is within 3% of it from C = 1e27 (P* = 23) on at N = 8B, the Llama-3 8B of Fig. 6."),
    Row(P, "the same growth with Sec. 4.2's average gamma (bits per e-fold of compute)", BETA * GAMMA_BAR,
        "Appendix E.2.2, Eq. 23 with gamma-bar of Finding 2", "optimal precision kumar2024 --flops 1e30 --N 8B",
        "bits_per_e_fold", published=False, tol=0.03, expect="differs",
        note="beta gamma-bar = 0.4965 x 1.9475 = 0.967: Eq. 23 is derived for the tied form "
             "N_eff ~ N (1 - e^(-P/gamma-bar))^3, where every factor decays alike.  With Table 2's factorized form "
             "and offsets the growth follows the largest gamma (previous row), 37% faster."),
    Row(P, "critical data size of a 30M model post-train quantized to 4 bits (tokens)", d_crit(30e6, 4),
        "Appendix E.1, Eq. 13 with Table 2", "optimal data kumar2024-ptq --N 30M --ptq-bits 4", "D_crit", published=False, tol=1e-9,
        note="Value computed from Eq. 13 and Table 2 (the paper gives the formula, not this number), with b as the "
             "offset of exp(-P_post/gamma_post) (our reading of Table 2; without b it would be 3.08x larger). "
             "28.8B tokens: just past the 26B largest budget of the paper's 30M runs (Fig. 1 left, Fig. 2)."),
    Row(P, "PTQ degradation of that model at its critical data size (nats/token)",
        BETA / T2["gamma_D"] * T2["B"] * d_crit(30e6, 4) ** -BETA,
        "Appendix E.1, Eq. 12 with Table 2", "optimal data kumar2024-ptq --N 30M --ptq-bits 4",
        "delta_ptq_at_D_crit", published=False, tol=1e-9,
        note="At D_crit Eq. 12 balances the two derivatives, so delta_PTQ = (beta / gamma_D) B D_crit^-beta; value "
             "computed from Table 2, not stated in the paper."),
    Row(P, "lowest activation precision the fitted law admits (bits)", 3.0,
        "Appendix L ('runs with P_a <= 3 or P_kv <= 3 are not numerically stable')",
        "optimal precision kumar2024 --flops 1e23", "min_bits_domain", tol=0.05, published=False,
        note="Consistency, not a claim of the paper: Table 2's offsets put the edge of N_eff > 0 at "
             "P_a = gamma_a n_a = 2.2102 x 1.4072 = 3.11 bits, just above the 3-bit activation runs the paper "
             "finds unstable and leaves out of its fits."),
]
