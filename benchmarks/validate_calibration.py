"""Is the validate verdict calibrated?  Its PASS and FAIL rates on synthetic tables with known truth.

Two sets of seeded Chinchilla tables (7 sizes 30M-3B x 5 token counts 1B-100B, 0.5%
log-normal noise), each checked with ``validate --holdout "N>=1e9"`` (the two largest
sizes held out):

* the law holds: every run follows the same parameters -> the verdict should PASS;
* the slope changes at large N: above N0 = 6e8 (the largest fitted size) the loss bends up
  by ``(N / N0)^0.03`` (+1.5% at 1e9, +4.9% at 3e9) -> the verdict should FAIL.

Prints both rates and the other outcomes.  Targets: PASS >= 90% where the law holds,
FAIL >= 90% where it bends.  ``tests/test_validate_calibration.py`` runs a small version.

Usage: ``python benchmarks/validate_calibration.py [--tables 40]``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

import scalinglaws as sl
from scalinglaws.fitting.synthetic import grid, simulate
from scalinglaws.trust.validate import holdout

TRUTH = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.35, "beta": 0.37}
SIZES = np.geomspace(3e7, 3e9, 7)
TOKENS = np.geomspace(1e9, 1e11, 5)
NOISE = 0.005
N0, BEND = 6e8, 0.03
SPLIT = "N >= 1e9"


def table(seed: int, bent: bool):
    runs = simulate("chinchilla", TRUTH, grid(SIZES, TOKENS), noise=NOISE, seed=seed)
    if bent:
        big = runs["N"] > N0
        runs.loc[big, "loss"] *= (runs.loc[big, "N"] / N0) ** BEND
    return sl.load_runs(runs)


def outcomes(n_tables: int, bent: bool, seed0: int = 0, starts: int | None = 128) -> collections.Counter:
    """Verdicts of ``n_tables`` seeded tables (seeds ``seed0 ...``)."""
    out = collections.Counter()
    for k in range(n_tables):
        v = holdout(table(seed0 + k, bent), "chinchilla", SPLIT, starts=starts, seed=k)
        out[v.outcome] += 1
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=40)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    holds = outcomes(args.tables, bent=False)
    bends = outcomes(args.tables, bent=True, seed0=1000)
    n = args.tables
    p, f = holds["PASS"] / n, bends["FAIL"] / n
    print(f"validate --holdout '{SPLIT}' on {n} tables each ({len(SIZES) * len(TOKENS)} runs, {NOISE:.1%} noise), "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"  law holds:          PASS {p:6.1%}  ({dict(holds)})   target >= 90%: {'met' if p >= 0.9 else 'NOT met'}")
    print(f"  slope bends at 6e8: FAIL {f:6.1%}  ({dict(bends)})   target >= 90%: {'met' if f >= 0.9 else 'NOT met'}")
    return 0 if p >= 0.9 and f >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
