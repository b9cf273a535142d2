"""Speed of the full 4,500-start Chinchilla fit against the published baseline procedure.

Both run in this process on the same table (``../shared/data/chinchilla_epoch.csv``
without its 5 highest-loss runs, 240 runs, as in Besiroglu et al. 2024):

* baseline: one ``scipy.optimize.minimize(method="L-BFGS-B")`` call per start of
  Hoffmann's 4,500-point grid, with the analytic gradient (``baseline_fit.py``);
* scalinglaws: ``scalinglaws.fit(runs, law="chinchilla")``, the same grid and objective.

Prints both times, the ratio, both objectives and how many starts reached the best.
Usage: ``python benchmarks/fit_speed.py [--runs PATH] [--repeat 3] [--baseline-starts 4500]``.
"""

from __future__ import annotations

import os

# The baseline runs on one BLAS thread (threadpoolctl): the ratio then compares the
# procedures, not thread pools (small BLAS calls in a busy multi-threaded pool can slow it
# tenfold).  scalinglaws limits itself to one BLAS thread inside a fit; the last lines show
# what that limit saves against the machine's default threading.
import argparse  # noqa: E402
import sys  # noqa: E402
import time
from pathlib import Path

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_fit import baseline_fit  # noqa: E402

import scalinglaws as sl  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch.csv"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(DEFAULT), help="run table (default: ../shared/data/chinchilla_epoch.csv)")
    ap.add_argument("--exclude-top", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats of the scalinglaws fit (best is kept)")
    ap.add_argument("--baseline-starts", type=int, default=4500,
                    help="time the baseline on this many grid starts (evenly spaced) and scale to 4,500")
    args = ap.parse_args(argv)
    if not os.path.exists(args.runs):
        print(f"error: {args.runs}: no such file (the shared reference data is needed)", file=sys.stderr)
        return 2
    runs = sl.load_runs(args.runs, exclude_top=args.exclude_top)
    law = sl.laws.get_law("chinchilla")
    grid = law.start_grid()
    lo, hi = law.bounds()

    sl.fit(runs, law="chinchilla")  # warm-up (imports, caches)
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        res = sl.fit(runs, law="chinchilla")
        times.append(time.perf_counter() - t0)
    t_ours = min(times)

    k = max(1, min(len(grid), args.baseline_starts))
    idx = np.linspace(0, len(grid) - 1, k).round().astype(int)
    from threadpoolctl import threadpool_limits
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        _, f_base, objs = baseline_fit(runs["N"].to_numpy(), runs["D"].to_numpy(), runs["loss"].to_numpy(),
                                       grid[idx], list(zip(lo, hi)))
    t_base = (time.perf_counter() - t0) * len(grid) / k
    n_base = int((objs <= f_base * (1 + 1e-6)).sum())

    print(f"runs: {len(runs)} ({args.runs}, {args.exclude_top} highest-loss excluded); starts: {len(grid)}")
    print(f"baseline (L-BFGS-B per start, analytic gradient): {t_base:8.3f} s"
          + ("" if k == len(grid) else f"  (timed on {k} starts, scaled)")
          + f"  objective {f_base:.11g}  starts reaching it: {n_base} of {k}")
    print(f"scalinglaws fit (best of {len(times)}):               {t_ours:8.3f} s"
          f"  objective {res.objective:.11g}  starts reaching it: {res.status['n_best']} of {res.status['n_starts']}")
    print(f"speed-up: {t_base / t_ours:.1f}x; objective difference (ours - baseline): {res.objective - f_base:+.3e}")
    print("parameters: " + ", ".join(f"{k}={v:.6g}" for k, v in res.params.items()))

    # threads: the fit as shipped (one BLAS thread) against the same fit on the default BLAS threads
    import scalinglaws.fitting.api as api
    from contextlib import nullcontext
    from threadpoolctl import threadpool_info

    def timed(label):
        wall, cpu = [], []
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            sl.fit(runs, law="chinchilla")
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        return min(wall), min(cpu)
    w1, c1 = timed("one")
    shipped = api.one_blas_thread
    api.one_blas_thread = nullcontext
    try:
        wd, cd = timed("default")
    finally:
        api.one_blas_thread = shipped
    n = max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"), default=1)
    print(f"threads: one BLAS thread (as shipped) {w1:.3f} s wall, {c1:.3f} s CPU; default BLAS threads ({n}) "
          f"{wd:.3f} s wall, {cd:.3f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
