"""Does a law's hand-tuned fast path pay?  Chinchilla's against the generic derivatives of its formula.

Every law's fitter derivatives come from its one formula (sympy-generated numpy,
``scalinglaws.laws.derive``).  Chinchilla also keeps a hand-tuned ``evaluate`` /
``grad_hess`` (softmax weights, sums over runs as matrix products of six features).
This benchmark fits the same table with both, in this process, one BLAS thread, and
prints the times, their ratio and both objectives (``tests/test_laws_contract.py``
checks the two paths agree to rounding).  Then each registered law's fit time on its
own example table (generic derivatives), and for each law with generated derivatives the
cost of its values plus Jacobian per start and run, with powers merged into exponentials (as
shipped) and as written (``Law.merge_powers = False``: ``N ** -psi`` as a ``pow`` call), with
the ratio (ABBA-alternating, best of 15).

Usage: ``python benchmarks/law_speed.py [--runs PATH] [--repeat 3]``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import scalinglaws as sl  # noqa: E402
from scalinglaws.fitting.synthetic import simulate  # noqa: E402
from scalinglaws.laws import DEFAULT_LAW, REGISTRY  # noqa: E402
from scalinglaws.laws.base import Law  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "chinchilla_epoch.csv"


def generic(law: Law) -> Law:
    """The same law without its own evaluate/grad_hess/log_predict: the formula's derivatives only."""
    cls = type(law)
    plain = type(f"Generic{cls.__name__}", (cls,), {
        "evaluate": Law.evaluate, "grad_hess": Law.grad_hess, "log_predict": Law.log_predict,
        "log_predict_jac": Law.log_predict_jac, "__module__": cls.__module__})
    return plain()


def unmerged(law: Law) -> Law:
    """The same law with its generated derivatives differentiating the formula's powers as written."""
    cls = type(law)
    return type(f"Unmerged{cls.__name__}", (cls,), {"merge_powers": False, "__module__": cls.__module__})()


def per_value(law: Law, table, starts: int = 256, repeat: int = 15):
    """Nanoseconds per (start, run) of the fitter's values plus Jacobian: merged powers, as written."""
    from scalinglaws.fitting.options import FitOptions
    from scalinglaws.fitting.problem import Problem
    grid = law.start_grid()
    T = grid[np.linspace(0, len(grid) - 1, starts).round().astype(int)]
    out = []
    for variant in (law, unmerged(law)):
        X = Problem.build(table, variant, FitOptions()).X
        variant.log_predict_jac(T[:2], X)  # generated outside the timing
        out.append((variant, X))
    best = [np.inf, np.inf]
    with np.errstate(all="ignore"):
        for r in range(repeat):
            for k in ((0, 1) if r % 2 == 0 else (1, 0)):  # ABBA: neither goes first every time
                variant, X = out[k]
                t0 = time.perf_counter()
                variant.fit_log_predict(T, X)
                variant.log_predict_jac(T, X)
                best[k] = min(best[k], time.perf_counter() - t0)
    n = len(table) * len(T)
    return best[0] / n * 1e9, best[1] / n * 1e9


def best_of(repeat, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(DEFAULT), help="run table (default: the replication table in ../shared)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    law = REGISTRY[DEFAULT_LAW]
    if Path(args.runs).exists():
        runs = sl.load_runs(args.runs, exclude_top=5)
        what = f"{len(runs)} runs of {args.runs}"
    else:
        truth, cols = law.example()
        N, D = np.meshgrid(np.geomspace(5e7, 1e10, 16), np.geomspace(1e9, 5e11, 15))
        runs = sl.load_runs(simulate(law, truth, {"N": N.ravel(), "D": D.ravel()}, noise=0.01))
        what = f"{len(runs)} synthetic runs ({args.runs} not found)"
    slow = generic(law)
    sl.fit(runs, law=slow, starts=8)  # derivatives generated (or read from the cache) outside the timing
    t_fast, fast = best_of(args.repeat, lambda: sl.fit(runs, law=law))
    t_gen, gen = best_of(args.repeat, lambda: sl.fit(runs, law=slow))
    print(f"{law.name} on {what}, full start grid ({fast.status['n_starts']} starts), best of {args.repeat}:")
    print(f"  generic derivatives of the formula: {t_gen:7.3f} s  objective {gen.objective:.13g}")
    print(f"  hand-tuned fast path:               {t_fast:7.3f} s  objective {fast.objective:.13g}")
    print(f"  the fast path is {t_gen / t_fast:.2f}x the generic one")
    print("\nevery law on its example table (noise-free, default start grid; generic derivatives unless the "
          "law has its own fast path); then the generated code's cost per start and run (values and Jacobian "
          "at 256 start points, alternating, best of 15) with merged powers (as shipped) and with the formula's "
          "powers as written:")
    for name, other in REGISTRY.items():
        truth, cols = other.example()
        table = sl.load_runs(simulate(other, truth, pd.DataFrame(cols), noise=0.0), required=())
        sl.fit(table, law=name, starts=2)  # derivatives generated outside the timing
        t, res = best_of(args.repeat, lambda: sl.fit(table, law=name))
        own = type(other).grad_hess is not Law.grad_hess
        line = (f"  {name:<16} {len(table):4d} runs {res.status['n_starts']:5d} starts  {t:7.3f} s  "
                f"{'converged' if res.converged else res.status['message']}" + ("  (fast path)" if own else ""))
        if other.has_formula and not own:
            merged, plain = per_value(other, table)
            line += f"; {merged:.1f} ns merged, {plain:.1f} ns as written ({plain / merged:.2f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
