"""How fast the command line starts, as ratios to a bare ``python -c "import numpy"`` in the same run.

Each command runs as a fresh process, the commands in turn (A B C D, A B C D, ...) so that
a drift of the machine's speed touches all alike; the figure of each is its median over
the runs, wall-clock and CPU (user + system, from the OS accounting of the finished child).

Targets (issue: architecture): ``scalinglaws --help`` at most 2x the bare numpy import,
``scalinglaws predict besiroglu2024 --N 70B --D 1.4T`` at most 4x, and
``import scalinglaws.train`` loading no scipy and no fitter module (checked here and in
``tests/test_architecture.py``).

Usage: ``python benchmarks/startup.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

PY = sys.executable


def commands() -> dict[str, list[str]]:
    cli = shutil.which("scalinglaws")
    run = [cli] if cli else [PY, "-m", "scalinglaws.cli.main"]
    return {
        "python -c 'import numpy' (baseline)": [PY, "-c", "import numpy"],
        "scalinglaws --help": run + ["--help"],
        "scalinglaws predict besiroglu2024 --N 70B --D 1.4T": run + ["predict", "besiroglu2024", "--N", "70B",
                                                                      "--D", "1.4T"],
        "python -c 'import scalinglaws.train'": [PY, "-c", "import scalinglaws.train"],
    }


TARGETS = {"scalinglaws --help": 2.0, "scalinglaws predict besiroglu2024 --N 70B --D 1.4T": 4.0}


def timed(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**os.environ, "COLUMNS": "100"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def trainer_modules() -> list[str]:
    code = "import json, sys, scalinglaws.train; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True).stdout
    return [m for m in json.loads(out) if m == "scipy" or m.startswith(("scipy.", "scalinglaws.fitting",
                                                                         "scalinglaws.laws"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each command (after one warm-up each)")
    args = ap.parse_args(argv)
    cmds = commands()
    for cmd in cmds.values():  # warm the file cache
        timed(cmd)
    times = {k: [] for k in cmds}
    for _ in range(args.runs):
        for k, cmd in cmds.items():
            times[k].append(timed(cmd))
    base = next(iter(cmds))
    bw = statistics.median(t[0] for t in times[base])
    bc = statistics.median(t[1] for t in times[base])
    print(f"{args.runs} runs each, interleaved; medians")
    print(f"{'command':<56} {'wall s':>7} {'x base':>7} {'cpu s':>7} {'x base':>7}  target")
    ok = True
    for k in cmds:
        w = statistics.median(t[0] for t in times[k])
        c = statistics.median(t[1] for t in times[k])
        target = TARGETS.get(k)
        verdict = "" if target is None else (f"<= {target:g}x wall: " + ("met" if w / bw <= target else "NOT met"))
        ok &= target is None or w / bw <= target
        print(f"{k:<56} {w:7.3f} {w / bw:6.2f}x {c:7.3f} {c / bc:6.2f}x  {verdict}")
    heavy = trainer_modules()
    print("import scalinglaws.train loads " + ("no scipy and no fitter or law module" if not heavy
                                               else "these it should not: " + ", ".join(heavy)))
    return 0 if ok and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
