"""Dremov, Grangier, Katharopoulos, Hannun 2025, "Compute-Optimal Quantization-Aware Training"
(arXiv 2509.22935).

What the paper states that these rows rest on: the tokens-per-parameter-byte statistic
``S_total = D_total / (N B / 8)`` and the optimal-QAT-fraction law

    f_hat(D_total, N, B) = exp(log S_total - a / log S_total) / S_total,   a = 6.7297

(the paper's only fitted constant of that law; its loss law's constants are not available to
us, see ``scalinglaws/laws/dremov_qat.py``).  The log is the natural one: the equation pairs it
with ``exp``, so that ``exp(log S_total) / S_total = 1`` and ``f_hat = S_qat / S_total`` with
``log S_qat = log S_total - a / log S_total`` (the log-log line between S_total and the optimal
S_qat the paper fits).  The paper prints the formula and ``a``; apart from the first row, the
values below are that formula worked out by hand at round inputs (``math.exp`` and ``math.log``,
not the toolkit), so they check the toolkit's reading of the formula: natural log, bytes of
B-bit weights, and lower bit widths pushing the fraction up at fixed N and D.
"""

from papers import Row

P = "Dremov et al. 2025"
WHERE_F = "optimal-QAT-fraction equation f_hat = exp(log S - a/log S)/S with a = 6.7297"
FORMULA = ("Hand-derived from the paper's f_hat and a = 6.7297 (the paper prints the formula and a, "
           "not this value): ")

ROWS = [
    Row(P, "fitted constant a of the optimal-QAT-fraction law", 6.7297, WHERE_F,
        "optimal qat-fraction dremov2025 --N 1B --D 100B --w-bits 4", "params.a", tol=0.0,
        note="The preset carries the paper's constant unchanged (also quoted by independent summaries of "
             "the paper)."),
    Row(P, "tokens per parameter byte S_total at N = 1B, D = 100B, 4-bit weights", 200.0,
        "definition of tokens-per-parameter-byte, S = D / (N B / 8)",
        "optimal qat-fraction dremov2025 --N 1B --D 100B --w-bits 4", "S_total", tol=1e-9,
        published=False, note="100e9 / (1e9 x 4 / 8) = 200: the denominator is the bytes of the quantized weights."),
    Row(P, "optimal QAT fraction at N = 1B, D = 100B, 4-bit weights (S_total = 200)", 0.280787,
        WHERE_F, "optimal qat-fraction dremov2025 --N 1B --D 100B --w-bits 4", "qat_fraction", tol=1e-5,
        published=False, note=FORMULA + "exp(-6.7297 / ln 200) = 0.280787."),
    Row(P, "optimal QAT fraction at N = 1B, D = 100B, 2-bit weights (S_total = 400)", 0.325233,
        WHERE_F, "optimal qat-fraction dremov2025 --N 1B --D 100B --w-bits 2", "qat_fraction", tol=1e-5,
        published=False, note=FORMULA + "exp(-6.7297 / ln 400) = 0.325233; fewer bits, more bytes-normalised tokens, a larger "
                       "QAT share, as the paper finds."),
    Row(P, "optimal QAT fraction at N = 1B, D = 100B, 1-bit weights (S_total = 800)", 0.365406,
        WHERE_F, "optimal qat-fraction dremov2025 --N 1B --D 100B --w-bits 1", "qat_fraction", tol=1e-5,
        published=False, note=FORMULA + "exp(-6.7297 / ln 800) = 0.365406."),
    Row(P, "QAT fraction of the 10% rule the paper revisits, at S_total = e^(a / ln 10) = 18.59 "
           "(N = 1B, 4 bits, D = 9.2954B)", 0.1,
        WHERE_F + " (the 10% QAT share of Liu et al. 2025 that the paper revisits)",
        "optimal qat-fraction dremov2025 --N 1B --D 9.2954B --w-bits 4", "qat_fraction", tol=1e-4,
        published=False, note=FORMULA + "f_hat = 0.1 exactly where ln S_total = a / ln 10, i.e. S_total = 18.59 tokens per "
                       "parameter byte; the law gives a larger fraction for every longer run, which is the "
                       "paper's point against a fixed 10%."),
    Row(P, "QAT fraction at S_total = e^a = 836.9 tokens per parameter byte (N = 1B, 4 bits, D = 418.45B)",
        0.367879, WHERE_F, "optimal qat-fraction dremov2025 --N 1B --D 418.45B --w-bits 4", "qat_fraction",
        tol=1e-4, published=False, note=FORMULA + "at ln S_total = a the fraction is exp(-1) = 0.367879 (a natural-log check: "
                                 "with log10 it would be exp(-a / log10 836.9) = 0.1)."),
]
