"""Does a law's hand-tuned fast path pay?  Chinchilla's against the generic derivatives of its formula.

Every law's fitter derivatives come from its one formula (sympy-generated numpy,
``scalinglaws.laws.derive``).  Chinchilla also keeps a hand-tuned ``evaluate`` /
``grad_hess`` (softmax weights, sums over runs as matrix products of six features).
This benchmark fits the same table with both, in this process, one BLAS thread, and
prints the times, their ratio and both objectives (``tests/test_laws_contract.py``
checks the two paths agree to rounding).  Then each registered law's fit time on its
own example table (generic derivatives), for reference.

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
          "law has its own fast path):")
    for name, other in REGISTRY.items():
        truth, cols = other.example()
        table = sl.load_runs(simulate(other, truth, pd.DataFrame(cols), noise=0.0), required=())
        sl.fit(table, law=name, starts=2)  # derivatives generated outside the timing
        t, res = best_of(args.repeat, lambda: sl.fit(table, law=name))
        own = type(other).grad_hess is not Law.grad_hess
        print(f"  {name:<16} {len(table):4d} runs {res.status['n_starts']:5d} starts  {t:7.3f} s  "
              f"{'converged' if res.converged else res.status['message']}" + ("  (fast path)" if own else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
