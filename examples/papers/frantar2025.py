"""Frantar et al. 2025, "Compression Scaling Laws: Unifying Sparsity and Quantization" (arXiv 2502.16440).

The paper's effective parameter multipliers (EPMs, eff(C) of the ``frantar-eff`` law) for
its compression formats.  None of them is reproduced, and every row says so
(``expect="differs"``): the paper's own tables could not be read where this table was
written (the stored copies of the paper reach only its abstract and the opening of its
introduction), so the multipliers below are the paper's numbers *as two summaries of it
quote them*, not checked against a table row of the paper, and the law has no preset
(which would also need the paper's fitted a, b, c, d, e, not known here).

Each row asks ``scalinglaws laws`` for a preset of ``frantar-eff`` holding that format's
efficiency; there is none, so the value is NaN and the row reads "differs (known)".  When
a preset with the paper's verified multipliers is added, the rows whose number it matches
turn to "now agrees" (a failure of the check), which says their notes are stale.

Sources of the quoted numbers:

* [S] sciencestack.ai, paper page of arXiv 2502.16440, TL;DR: "weight-only quantization can
  yield near-lossless performance at 4 bits (EPM ≈ 0.923) while full quantization
  experiences diminishing returns below 4 bits (e.g., EPM values drop to 0.747 at 4 bits
  and 0.067 at 1 bit), with sparsity ... (e.g., 50% sparsity ≈ 0.871, close to 8-bit
  quantization)".
* [A] thesciencearchive.org, article of 28 March 2025 on the paper: "at 50% sparsity, the
  effective parameter multiplier (EPM) of 0.871 nearly matches 8-bit quantization's EPM of
  0.857".
"""

import math

from papers import Row

P = "Frantar et al. 2025"
NOT_READ = ("The paper's table could not be read here: the number is the paper's as {src} quotes it "
            "(table and row not verified), and frantar-eff has no preset to reproduce it from.")


def preset_eff(key):
    """eff[KEY] of a frantar-eff preset in ``scalinglaws laws --json`` (NaN: no such preset)."""
    def read(laws):
        law = next(x for x in laws if x["name"] == "frantar-eff")
        values = [p["values"][f"eff[{key}]"] for p in law.get("presets", {}).values()
                  if f"eff[{key}]" in p.get("values", {})]
        return values[0] if values else math.nan
    return read


def row(quantity, value, key, src, extra="", tol=0.001):
    """tol: half a unit in the quoted number's last digit (0.0005 of about 0.9: 0.1%)."""
    return Row(P, quantity, value, f"results (quoted by {src}; table not read)", "laws", preset_eff(key),
               tol=tol, expect="differs", note=NOT_READ.format(src=src) + extra)


ROWS = [
    row("EPM of weight-only 4-bit quantization (W4A16)", 0.923, "W4A16", "[S]"),
    row("EPM of 4-bit weights and activations (W4A4)", 0.747, "W4A4", "[S]"),
    row("EPM of 1-bit weights and activations (W1A1)", 0.067, "W1A1", "[S]", tol=0.008),
    row("EPM of 50% weight sparsity, 16-bit (W16A16S50)", 0.871, "W16A16S50", "[S] and [A]",
        " Both summaries give 0.871 and compare it with 8-bit quantization."),
    row("EPM of 8-bit quantization (taken as W8A8)", 0.857, "W8A8", "[A]",
        " [A] does not say whether the 8-bit format quantizes activations too; W8A8 is this table's "
        "reading (0.857 lies below the 0.923 quoted for 4-bit weight-only quantization, so it cannot be "
        "weight-only 8-bit if both numbers are right)."),
]
