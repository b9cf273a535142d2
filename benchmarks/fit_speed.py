"""Speed of the full 4,500-start Chinchilla fit against the published baseline procedure.

Both run in this process on the same table (``../shared/data/chinchilla_epoch.csv``
without its 5 highest-loss runs, 240 runs, as in Besiroglu et al. 2024):

* baseline: one ``scipy.optimize.minimize(method="L-BFGS-B")`` call per start of
  Hoffmann's 4,500-point grid, with the analytic gradient (``baseline_fit.py``);
* scalinglaws: ``scalinglaws.fit(runs, law="chinchilla")``, the same grid and objective.

Prints both times, the ratio, both objectives and how many starts reached the best; then the
same grid with *every* start run to convergence (``converge=0``, no successive halving), its
ratio to the baseline, how many starts reached the best optimum and how many distinct end points
they reached: as shipped (the amplitudes E, A, B solved for each start of the exponents, so the
grid's 4,500 starts are 25 distinct ones: ``scalinglaws.fitting.amplitudes``), and with the whole
grid searched (the amplitudes not solved, as before), in one process and in worker processes (one
per core).

Then a row per registered law: on the law's example design repeated to 300 runs (0.5% noise,
``scalinglaws.fitting.synthetic.example_table``), the default fit's time, whether it converged and
how many starts reached its best, and the time of a 1,000-resample bootstrap, as a ratio to the
Chinchilla law's bootstrap on its own 300-run table (target: within 4x), timed alternately with it
(best of ``--repeat`` each).  The reference is
Chinchilla's own table, not the other law's rows: on another law's design Chinchilla is often not
identifiable (or the table has no N, D and loss), and its refits then wander.  ``--laws-only`` runs only this
part (it needs no shared data).

Usage: ``python benchmarks/fit_speed.py [--runs PATH] [--repeat 3] [--baseline-starts 4500] [--laws-only]``.
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
    ap.add_argument("--laws-only", action="store_true", help="only the per-law rows")
    ap.add_argument("--skip-every", action="store_true", help="skip the every-start-converged row (~10 s)")
    args = ap.parse_args(argv)
    if args.laws_only:
        return per_law(args.repeat)
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
          f"  objective {res.objective:.11g}  starts reaching it: {res.status['n_best']} of {res.status['n_starts']}"
          f" ({res.status['n_distinct']} distinct)")
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

    if not args.skip_every:
        from scalinglaws.fitting.workers import cores

        def every_start(label):
            times, cpus = [], []
            for _ in range(max(1, args.repeat)):
                t0, c0 = time.perf_counter(), time.process_time()
                every = sl.fit(runs, law="chinchilla", converge=0, n_jobs=1)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            t_every = min(times)
            ms = every.multistart
            ok = ms.converged & np.isfinite(ms.funs)
            ends = len(np.unique(np.round(ms.xs[ok] / 1e-6), axis=0))
            objs = len(np.unique(np.round(np.log(ms.funs[ok]) / 1e-6)))
            print(f"every start converged (converge=0), {label}, one process (best of {len(times)}): {t_every:.3f} s "
                  f"({min(cpus):.3f} s CPU), {t_base / t_every:.1f}x the baseline; objective "
                  f"{every.objective:.11g} ({every.objective - f_base:+.2e} against the baseline's); "
                  f"{ms.n_best} of {ms.n_starts} starts reached the best optimum "
                  f"({every.status['n_distinct']} distinct starts); "
                  f"{int(ok.sum())} converged, at {ends} distinct end points (1e-6 apart) with {objs} distinct "
                  f"objectives; iterations per start: median {np.median(ms.n_iter):.0f}, max {ms.n_iter.max()}")
            return t_every, ms

        every_start("amplitudes E, A, B solved for each start of the exponents (as shipped)")
        shipped_amplitudes = type(law).amplitudes
        type(law).amplitudes = ()        # the whole grid searched, as before the amplitudes were solved
        try:
            t_every, ms = every_start("the whole grid searched (amplitudes not solved)")
            t0 = time.perf_counter()
            par = sl.fit(runs, law="chinchilla", converge=0)
            t_par = time.perf_counter() - t0
        finally:
            type(law).amplitudes = shipped_amplitudes
        same = np.array_equal(par.multistart.xs, ms.xs) and np.array_equal(par.multistart.funs, ms.funs)
        print(f"every start converged, the whole grid searched, {cores()} worker processes: {t_par:.3f} s wall, "
              f"{t_base / t_par:.1f}x the baseline, {t_every / t_par:.2f}x one process; "
              f"{'the same' if same else 'DIFFERENT'} end points and objectives")
    print()
    return per_law(args.repeat)


def per_law(repeat: int) -> int:
    """A row per registered law: default fit and 1,000-resample bootstrap on its 300-run example table."""
    import warnings
    from law_speed import best_of  # (numpy is loaded already: its thread settings do not apply)
    from scalinglaws.fitting.synthetic import example_table
    from scalinglaws.laws import REGISTRY

    def best(fn):
        return best_of(max(1, repeat), fn)

    print("every law on its example design repeated to 300 runs (0.5% noise), default start grid; "
          "bootstrap: 1,000 resamples, seed 0, wall time on this machine's cores:")
    print(f"  {'law':<16} {'starts':>6} {'distinct':>8} {'fit':>8}  {'converged':<10} {'reached best':>12} {'bootstrap':>10} "
          f"{'failed':>6} {'ratio to chinchilla':>20}")
    _, ref_table = example_table("chinchilla", rows=300, seed=2)
    ref = sl.fit(ref_table, law="chinchilla")
    sl.bootstrap(ref, ref_table, n=1000, seed=0)  # warm-up
    refs = []

    def paired(fn):
        """Best of ``repeat`` runs of ``fn`` and of the reference bootstrap, alternated (which runs first
        alternates too): the ratio then compares runs made under the same load (a reference timed once
        moved the ratios by up to 1.5x)."""
        def reference():
            return sl.bootstrap(ref, ref_table, n=1000, seed=0)
        times, outs = {fn: np.inf, reference: np.inf}, {}
        for i in range(max(1, repeat)):
            for f in ((fn, reference) if i % 2 == 0 else (reference, fn)):
                t0 = time.perf_counter()
                outs[f] = f()
                times[f] = min(times[f], time.perf_counter() - t0)
        refs.append(times[reference])
        return times[fn], times[reference], outs[fn]
    worst, slowest = 0.0, None
    for name in REGISTRY:
        _, table = example_table(name, rows=300, seed=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sl.fit(table, law=name, starts=2)  # derivatives generated outside the timing
            t_fit, res = best(lambda: sl.fit(table, law=name))
            t_boot, t_pair, boot = paired(lambda: sl.bootstrap(res, table, n=1000, seed=0))
        ratio = t_boot / t_pair
        if ratio > worst:
            worst, slowest = ratio, (name, res, table)
        print(f"  {name:<16} {res.status['n_starts']:>6} {res.status['n_distinct']:>8} {t_fit:7.3f}s  "
              f"{'yes' if res.converged else 'NO':<10} "
              f"{res.status['n_best']:>12} {t_boot:9.2f}s {boot.extra['bootstrap']['n_failed']:>6} "
              f"{ratio:19.1f}x")
    print(f"Chinchilla's bootstrap on its 300 runs (best of {max(1, repeat)}, timed beside each law's): "
          f"{min(refs):.2f}-{max(refs):.2f} s; largest ratio: {worst:.1f}x (target: 4x)")
    # workers: the bootstrap as shipped (forked worker processes, one per core) against one process
    from scalinglaws.fitting.workers import cores as _cores
    cores = _cores()
    for name, res, table in (("chinchilla", ref, ref_table), slowest):
        t_one, _ = best(lambda: sl.bootstrap(res, table, n=1000, seed=0, n_jobs=1))
        t_all, _ = best(lambda: sl.bootstrap(res, table, n=1000, seed=0))
        print(f"workers: {name} bootstrap in one process {t_one:.2f} s, in {cores} worker processes (as shipped) "
              f"{t_all:.2f} s: {t_one / t_all:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
