"""Does a fit stay linear in the table?  CPU per run and peak memory from 1,000 to 1,000,000 runs.

Each size is a seeded synthetic Chinchilla table (N log-uniform in 30M-10B, D in 1B-1T,
1% noise), fitted with the default settings (Hoffmann's 4,500-start grid) in a fresh
process, so that its peak memory is its own.  Tables larger than ``explore_rows`` (2,048)
rank the start grid on a seeded subset of that many runs and converge the 32 surviving
starts on every run (``scalinglaws.FitOptions.explore_rows``).  Printed: CPU seconds, CPU per
run, its ratio to the 1,000-run figure (target: at most 1.5x up to 1e6 runs), peak resident
memory and its growth per run.

Usage: ``python benchmarks/fit_scaling.py [--sizes 1000,10000,100000,1000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
import scalinglaws as sl
from scalinglaws.laws import get_law
n = int(sys.argv[1])
rng = np.random.default_rng(n)
truth = dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
N = np.exp(rng.uniform(np.log(3e7), np.log(1e10), n))
D = np.exp(rng.uniform(np.log(1e9), np.log(1e12), n))
loss = get_law("chinchilla").predict(truth, {"N": N, "D": D}) * np.exp(0.01 * rng.standard_normal(n))
runs = pd.DataFrame({"N": N, "D": D, "loss": loss})
runs.index = pd.RangeIndex(1, n + 1, name="row")
runs.attrs["source"] = f"<{n} synthetic runs>"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c0, t0 = time.process_time(), time.perf_counter()
res = sl.fit(runs, law="chinchilla")
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
err = max(abs(res.params[k] / v - 1) for k, v in truth.items())
print(json.dumps({"n": n, "cpu": cpu, "wall": wall, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mb": before / 1024, "converged": res.converged, "objective": res.objective,
                  "max_rel_param_error": err}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]["cpu"] / rows[0]["n"]
    print(f"{'runs':>9} {'CPU s':>8} {'ms/run':>8} {'x 1st':>6} {'wall s':>7} {'peak MB':>8} {'MB grown':>9}  "
          f"converged  max rel. parameter error")
    ok = True
    for r in rows:
        per = r["cpu"] / r["n"]
        ok &= per <= 1.5 * base
        print(f"{r['n']:9d} {r['cpu']:8.2f} {1e3 * per:8.4f} {per / base:5.2f}x {r['wall']:7.2f} {r['peak_mb']:8.0f} "
              f"{r['peak_mb'] - r['before_mb']:9.0f}  {str(r['converged']):9s}  {r['max_rel_param_error']:.2e}")
    if len(rows) > 1:
        a, b = rows[-2], rows[-1]
        print(f"memory grown per run between the two largest: "
              f"{1024 * ((b['peak_mb'] - b['before_mb']) - (a['peak_mb'] - a['before_mb'])) / (b['n'] - a['n']):.2f} KB")
    print("CPU per run within 1.5x of the first size at every size: " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
