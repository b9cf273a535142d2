"""Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models" (arXiv 2203.15556), and its
replication, Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt" (arXiv 2404.10102)."""

import math

from papers import Row

H = "Hoffmann et al. 2022 (Chinchilla)"
R = "Besiroglu et al. 2024 (replication)"
DATA = "../shared/data/chinchilla_epoch.csv"
FIT = f"fit {DATA} --law chinchilla --exclude-top 5 -q"


def slope(key):
    """d log(key) / d log C between the two budgets of the commands (1e21 and 1e25 FLOPs)."""
    return lambda js: math.log(js[1][key] / js[0][key]) / math.log(1e25 / 1e21)


ROWS = [
    Row(H, "Approach 3: exponent a of N_opt ∝ C^a", 0.46, "Table 2 (Approach 3)",
        ("plan hoffmann2022 --flops 1e21", "plan hoffmann2022 --flops 1e25"), slope("N_opt"), tol=0.02,
        note="From the Eq. 10 constants, a = beta/(alpha+beta) = 0.28/0.62 = 0.452; the paper's 0.46 comes "
             "from its unrounded fit, so the rounded constants land 1.8% low."),
    Row(H, "Approach 3: exponent b of D_opt ∝ C^b", 0.54, "Table 2 (Approach 3)",
        ("plan hoffmann2022 --flops 1e21", "plan hoffmann2022 --flops 1e25"), slope("D_opt"), tol=0.02),
    Row(R, "E, refitted with Hoffmann's protocol on the 240 extracted runs", 1.817, "Eq. 4",
        FIT, "params.E", tol=0.005, needs=DATA,
        note="The replication's headline estimate is maximum likelihood; the toolkit fits Hoffmann's Huber "
             "objective (delta 1e-3 on log-loss residuals) from the 4,500-start grid on the same 240 runs."),
    Row(R, "A, same refit", 482.01, "Eq. 4", FIT, "params.A", tol=0.02, needs=DATA),
    Row(R, "B, same refit", 2085.43, "Eq. 4", FIT, "params.B", tol=0.04, needs=DATA),
    Row(R, "alpha, same refit", 0.3478, "Eq. 4", FIT, "params.alpha", tol=0.005, needs=DATA),
    Row(R, "beta, same refit", 0.3658, "Eq. 4", FIT, "params.beta", tol=0.01, needs=DATA),
]
