"""Coverage of the bootstrap intervals on synthetic runs drawn from known parameters.

Each repetition draws a table from the Chinchilla law at the replication's parameters
(7 model sizes x 6 token counts, multiplicative noise), fits it (full start grid, Huber)
and bootstraps it; it counts how often each parameter's interval holds the true value.
A well-calibrated 95% interval covers about 95% of the time.
Usage: ``python benchmarks/bootstrap_coverage.py [--reps 100] [--n 1000] [--noise 0.01] [--cluster N]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.progress import track

import scalinglaws as sl
from scalinglaws.fitting.synthetic import grid, simulate

TRUTH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--n", type=int, default=1000, help="resamples per repetition")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--loss", default="huber")
    ap.add_argument("--cluster", default=None)
    args = ap.parse_args(argv)
    design = grid(np.geomspace(5e7, 1e10, 7), np.geomspace(1e9, 5e11, 6))
    hits = {k: 0 for k in TRUTH}
    widths = {k: [] for k in TRUTH}
    t0 = time.perf_counter()
    for seed in track(range(args.reps), description="repetitions"):
        runs = simulate("chinchilla", TRUTH, design, noise=args.noise, seed=seed)
        res = sl.fit(runs, law="chinchilla", loss=args.loss)
        ci = sl.bootstrap(res, runs, n=args.n, seed=seed, level=args.level, cluster=args.cluster,
                          probe=0).intervals()  # (coverage only: no path probe)
        for k in TRUTH:
            hits[k] += ci[k][0] <= TRUTH[k] <= ci[k][1]
            widths[k].append(ci[k][1] - ci[k][0])
    print(f"{args.reps} repetitions x {args.n} resamples, {len(design)} runs, noise {args.noise}, "
          f"{args.loss} loss, cluster {args.cluster}: {time.perf_counter() - t0:.1f} s")
    print(f"{'param':>6}  {'coverage':>9}  {'median width':>12}   (nominal {args.level:.0%})")
    for k in TRUTH:
        print(f"{k:>6}  {hits[k] / args.reps:9.1%}  {np.median(widths[k]):12.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
