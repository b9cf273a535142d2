"""Speed of 1,000 bootstrap refits of the Chinchilla law on the 240-run replication table.

Both in this process, on ``../shared/data/chinchilla_epoch.csv`` without its 5 highest-loss
runs: ``scalinglaws.bootstrap`` (all resamples as one weighted batch, threads), against a
per-resample scipy loop (one ``scipy.optimize.minimize(method="L-BFGS-B")`` per resample
with the analytic gradient of the weighted Huber objective, started at the full fit's
optimum, with tolerances tight enough to converge: the cheapest honest version of the
usual script).  Prints both times, the ratio,
and both sets of 95% intervals next to the replication's published ones.
Usage: ``python benchmarks/bootstrap_speed.py [--n 1000] [--baseline 200]``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the ratio compares procedures, not BLAS thread pools

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_fit import make_objective  # noqa: E402

import scalinglaws as sl  # noqa: E402
from scalinglaws.trust.bootstrap import intervals, resample_weights  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch.csv"
PUBLISHED = {"E": (1.769, 1.871), "A": (285, 744), "B": (1042, 5810), "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(DEFAULT))
    ap.add_argument("--n", type=int, default=1000, help="resamples")
    ap.add_argument("--baseline", type=int, default=200, help="resamples timed for the scipy loop (scaled to --n)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not os.path.exists(args.runs):
        print(f"error: {args.runs}: no such file (the shared reference data is needed)", file=sys.stderr)
        return 2
    runs = sl.load_runs(args.runs, exclude_top=5)
    res = sl.fit(runs, law="chinchilla")
    law = sl.get_law("chinchilla")

    t0 = time.perf_counter()
    # (no path probe: its 64 extra refits have no counterpart in the scipy loop)
    boot = sl.bootstrap(res, runs, n=args.n, seed=args.seed, probe=0)
    t_ours = time.perf_counter() - t0

    W = resample_weights(runs, args.n, seed=args.seed)
    k = max(1, min(args.n, args.baseline))
    x0 = law.to_internal(res.params)
    lo, hi = law.bounds()
    xs = []
    t0 = time.perf_counter()
    for i in range(k):
        f = make_objective(runs["N"].to_numpy(), runs["D"].to_numpy(), runs["loss"].to_numpy(), weights=W[i])
        # scipy's default tolerances stop at once on an objective of size 1e-3 (the intervals
        # would collapse onto the full fit), so the loop is run to real convergence
        xs.append(minimize(f, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                           options=dict(ftol=1e-15, gtol=1e-11, maxiter=2000)).x)
    t_base = (time.perf_counter() - t0) * args.n / k
    base = intervals(np.array([list(law.to_public(x).values()) for x in xs]), law.param_names)

    b = boot.extra["bootstrap"]
    print(f"runs: {len(runs)}; resamples: {args.n}; cores: {os.cpu_count()}")
    print(f"scalinglaws.bootstrap:     {t_ours:8.3f} s  ({b['n_failed']} refits did not converge)")
    print(f"scipy loop (L-BFGS-B each): {t_base:8.3f} s" + ("" if k == args.n else f"  (timed on {k}, scaled)"))
    print(f"speed-up: {t_base / t_ours:.1f}x")
    print(f"{'param':>6}  {'scalinglaws 95%':>24}  {'scipy loop 95%':>24}  {'published (Besiroglu 2024)':>28}")
    for name in law.param_names:
        a, c, p = boot.intervals()[name], base[name], PUBLISHED[name]
        print(f"{name:>6}  {a[0]:11.4g} .. {a[1]:<10.4g}  {c[0]:11.4g} .. {c[1]:<10.4g}  {p[0]:13.4g} .. {p[1]:<10.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
