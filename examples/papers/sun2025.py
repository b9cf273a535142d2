"""Sun et al. 2025, "Scaling Laws for Floating-Point Quantization Training" (ICML 2025, arXiv 2501.02423).

Numbers from the arXiv v3 / ICML text, reproduced with the ``sun2025`` preset (Table 2) of law
``capybara``.  Where the paper states a band ("between 4 and 8 bits") the rows hold its two ends
at the ends of the range it states the band for.  The paper does not say which block size its
critical data sizes use; B = 128 (its setting of Figures 7 and 14) is the only power of two
that gives all three (B = 64 gives 2008T, 31.7T, 0.456T; B = 256 gives 1520T, 24.0T, 0.345T).
Figure 5's fp1 layout (E0M0, a sign bit alone) has no row: the fp-format planner takes widths
of 2 bits or more (a floating-point format with at least one exponent bit).
"""

from papers import Row

P = "Sun et al. 2025"

#: Figure 5 (legend "Optimal FP-layout"): the best exponent/mantissa split of each width
FIG5 = {2: (1, 0), 3: (1, 1), 5: (2, 2), 6: (3, 2), 7: (3, 3), 9: (4, 4), 10: (5, 4), 11: (5, 5),
        12: (6, 5), 13: (6, 6), 14: (7, 6), 15: (7, 7)}

ROWS = [
    Row(P, "exponent bits of the best 4-bit format (E2M1)", 2, "Sec. 4.2 text",
        "optimal fp-format sun2025 --bits 4", "exp_bits", tol=0.0,
        note="'The optimal float layouts of FP4, FP8, and FP16 are E2M1, E4M3, and E8M7 (BF16)'; the split "
             "maximises (E + 0.5)^delta (M + 0.5)^nu over E + M + 1 = P, so M = P - 1 - E."),
    Row(P, "exponent bits of the best 8-bit format (E4M3)", 4, "Sec. 4.2 text",
        "optimal fp-format sun2025 --bits 8", "exp_bits", tol=0.0),
    Row(P, "exponent bits of the best 16-bit format (E8M7, BF16)", 8, "Sec. 4.2 text",
        "optimal fp-format sun2025 --bits 16", "exp_bits", tol=0.0),
] + [
    Row(P, f"exponent bits of the best {bits}-bit format (E{E}M{M})", E, f"Fig. 5 legend, fp{bits} E{E}M{M}",
        f"optimal fp-format sun2025 --bits {bits}", "exp_bits", tol=0.0)
    for bits, (E, M) in FIG5.items()
] + [
    Row(P, "critical data size of a 1B model in BF16 (E8M7), tokens", 1730e12, "Sec. 4.3 text",
        "optimal data sun2025 --N 1B --exp-bits 8 --man-bits 7 --group-size 128", "D_crit", tol=5e-4,
        note="Eq. 21, D_crit = (d gamma N^alpha (E+0.5)^delta (M+0.5)^nu / log2 B)^(1/(2 beta)), at B = 128 "
             "(the paper does not state B; 128 is the one block size that gives its three values). "
             "Tolerance: the paper's four significant figures."),
    Row(P, "critical data size of a 1B model in FP8-E4M3, tokens", 27e12, "Sec. 4.3 text",
        "optimal data sun2025 --N 1B --exp-bits 4 --man-bits 3 --group-size 128", "D_crit", tol=0.02,
        note="Eq. 21 at B = 128 gives 27.3T; the paper writes '27T' (tolerance: rounding to whole T)."),
    Row(P, "critical data size of a 1B model in FP4-E2M1, tokens", 0.4e12, "Sec. 4.3 text",
        "optimal data sun2025 --N 1B --exp-bits 2 --man-bits 1 --group-size 128", "D_crit", tol=0.125,
        note="Eq. 21 at B = 128 gives 0.393T; the paper writes '0.4T' (tolerance: rounding to 0.1T)."),
    # The paper states a band ("within the range of 4 to 8 bits"), not its ends: the next four rows check
    # that the integer optimum sits at the band's ends at the range's ends (published=False).
    Row(P, "optimal precision at fixed D = 0.1T, B = 128: the low end of the 4-8-bit band (bits)", 4,
        "Fig. 14 caption", "optimal precision sun2025 --flops 1e24 --D 0.1T", "bits", tol=0.0, published=False,
        note="'across a substantially broad range of data sizes from 0.1T to 100T, the optimal precision value "
             "consistently falls within the range of 4 to 8 bits'. The row is the integer width of lowest loss "
             "at N = C / ((6/16) P D) (independent of C at fixed D); the paper's continuous closed form, Eq. 47 "
             "(Eq. 22), gives P_opt = 4.27 here."),
    Row(P, "optimal precision at fixed D = 100T, B = 128: the high end of the 4-8-bit band (bits)", 8,
        "Fig. 14 caption", "optimal precision sun2025 --flops 1e24 --D 100T", "bits", tol=0.0, published=False,
        note="As above; Eq. 47 gives P_opt = 7.62 at D = 100T."),
    Row(P, "compute-optimal precision at C = 1e21 FLOPs, B = 128: the low end of the 4-8-bit band (bits)", 4,
        "Sec. 4.4 text / Fig. 7", "optimal precision sun2025 --flops 1e21", "bits", tol=0.0, published=False,
        note="'when the total compute budget is in the range of (10^21, 10^31) FP operations, the optimal "
             "cost-performance ratio precision is found to lie between 4 and 8 bits' (B = 128, k = 6/16). The "
             "row is the integer width of lowest loss with N and D jointly optimal along C = (6/16) P N D; "
             "the continuous closed form, Eq. 54 (Eq. 25), gives P_opt = 4.19."),
    Row(P, "compute-optimal precision at C = 1e31 FLOPs, B = 128: the high end of the 4-8-bit band (bits)", 8,
        "Sec. 4.4 text / Fig. 7", "optimal precision sun2025 --flops 1e31", "bits", tol=0.0, published=False,
        note="As above; Eq. 54 gives P_opt = 7.58 at C = 1e31."),
]
