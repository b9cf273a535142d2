"""Coverage of the profile intervals on synthetic Chinchilla tables with known parameters.

Each table is a 6 x 6 grid of N (50M-5B) and D (1B-200B) drawn from the Besiroglu et al. 2024
estimate with multiplicative log-normal noise; the law is fitted with the default protocol
(Huber delta 1e-3 on log residuals, the 4,500-start grid) and the 95% profile intervals
(scalinglaws.trust.profile) are checked against the truth.  Prints the share of intervals
that hold the true value, per parameter and in all, for each noise level::

    python benchmarks/profile_coverage.py                 # 40 tables per noise level
    python benchmarks/profile_coverage.py --tables 100 --noise 0.002 0.005 0.02
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import scalinglaws as sl
from scalinglaws.trust.profile import profile

TRUTH = dict(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)


def table(seed: int, noise: float) -> pd.DataFrame:
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(5e7, 5e9, 6), np.geomspace(1e9, 2e11, 6)))
    L = TRUTH["E"] + TRUTH["A"] / N ** TRUTH["alpha"] + TRUTH["B"] / D ** TRUTH["beta"]
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"N": N, "D": D, "loss": L * np.exp(rng.normal(0, noise, N.size))})


def coverage(n_tables: int, noise: float, level: float = 0.95) -> dict[str, float]:
    hits = {k: [] for k in TRUTH}
    for seed in range(n_tables):
        t = table(seed, noise)
        pr = profile(sl.fit(t, law="chinchilla"), t, level=level)["params"]
        for k, v in TRUTH.items():
            hits[k].append(pr[k]["low"] is not None and pr[k]["low"] <= v <= pr[k]["high"])
    out = {k: float(np.mean(v)) for k, v in hits.items()}
    out["all"] = float(np.mean([x for v in hits.values() for x in v]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=int, default=40)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.002, 0.005, 0.01])
    ap.add_argument("--level", type=float, default=0.95)
    args = ap.parse_args()
    t0 = time.perf_counter()
    tab = Table(title=f"share of {100 * args.level:g}% profile intervals holding the truth ({args.tables} tables each)")
    for col in ["noise", *TRUTH, "all"]:
        tab.add_column(col, justify="right")
    for noise in args.noise:
        c = coverage(args.tables, noise, args.level)
        tab.add_row(f"{noise:g}", *(f"{c[k]:.2f}" for k in [*TRUTH, "all"]))
    Console().print(tab)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
