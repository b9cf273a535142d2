"""GPU training speed of the bundled trainer: full precision, int W4A4 G32, FP8, E4M3FN, MXFP4, NVFP4; ~125M.

On a machine with a CUDA device, trains the ladder shape nearest 125M parameters (12
layers, d_model 768, 12 heads: 85M non-embedding with the byte vocabulary, GPT-2
small's body) at seq_len 1024 with the ladder's batch, for a fixed number of steps in
each format of :data:`RUNS`, through the trainer's own code (``build``,
``make_optimizer``, ``train_step``: bf16 autocast, fused AdamW, ``torch.compile`` unless
``--no-compile``).  Prints, as a table, each format's step time, tokens/s, model FLOP/s,
MFU (:mod:`scalinglaws.train.speed`, the trainer's one definition) and its step time over
full precision's, next to the targets: full precision >= 40% MFU, every quantized
format <= 1.3x full precision's step time.  The quantized formats are fake-quantized
(quantize-dequantize in bf16/fp32, matmuls in bf16): their ratio is the quantizers' cost.

    python benchmarks/train_gpu.py                     # CUDA; about 10 minutes on an H100/H200 (estimated)
    python benchmarks/train_gpu.py --out speed.json    # also the results as JSON
    python benchmarks/train_gpu.py --peak-flops 989T   # a GPU not in the peak table
    python benchmarks/train_gpu.py --smoke             # seconds on the CPU: tiny model, 3 steps, same path

The JSON goes to ``--out``, by default ``$OUT/train_gpu.json`` when ``OUT`` is set (no
JSON otherwise), written atomically.  Without a CUDA device (and without ``--smoke``)
the script says so on stderr and exits with code 2: nothing is measured.  A format that
fails (out of memory, a compile error) is reported in the table and the JSON, the
others still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

from scalinglaws.data.atomic import write_atomic
from scalinglaws.data.units import human, parse_number
from scalinglaws.train.data import Corpus
from scalinglaws.train.loop import Stepper, TrainConfig, use_compile
from scalinglaws.train.speed import device_peak, flops_per_token, mfu, model_flops_per_s

#: The formats, first the full-precision baseline; one line per format:
#: (name, options of TrainConfig, the largest step-time ratio over full precision that meets the target).
RUNS = [
    ("full precision", {}, None),
    ("int W4A4 G32", dict(w_bits=4, a_bits=4, group_size=32), 1.3),
    ("FP8 E4M3 G32", dict(format="fp", exp_bits=4, man_bits=3, group_size=32), 1.3),
    ("E4M3FN", dict(format="e4m3fn"), 1.3),
    ("MXFP4", dict(format="mxfp4"), 1.3),
    ("NVFP4", dict(format="nvfp4"), 1.3),
]

#: The full-precision run's target: model FLOPs utilisation of at least this fraction.
MFU_TARGET = 0.40

#: ``--smoke``: a 13K-parameter model that takes a few steps on the CPU in seconds.
SMOKE = dict(n_layer=1, d_model=32, n_head=2, seq_len=64, batch_size=4)

NO_CUDA = ("no CUDA device: benchmarks/train_gpu.py measures GPU training speed, so nothing was measured; "
           "run it on a machine with a CUDA GPU (or --smoke for a CPU check of the script)")


def measure(name: str, options: dict, args, corpus: Corpus, device: torch.device) -> dict:
    """One format: warm up (compiling), then time ``args.steps`` steps; the numbers of its row."""
    shape_opts = SMOKE if args.smoke else dict(params=args.params, seq_len=args.seq_len, batch_size=args.batch_size)
    cfg = TrainConfig(tokens=1e12, **shape_opts, **options, compile=args.compile, seed=args.seed)
    runner = Stepper(cfg, corpus, device)
    p = runner.p
    warmup_s, _ = runner.timed(args.warmup)
    elapsed, last = runner.timed(args.steps)
    tok_s = args.steps * p.tokens_per_step / elapsed
    return {"name": name, "options": options, "warmup_s": round(warmup_s, 3),
            "step_s": elapsed / args.steps, "tokens_per_s": tok_s,
            "model_flops_per_s": model_flops_per_s(p.shape, cfg.seq_len, tok_s),
            "mfu": mfu(p.shape, cfg.seq_len, tok_s, args.peak), "loss": last if math.isfinite(last) else None,
            "_plan": p}


def judge(runs: list[dict]) -> None:
    """Add each run's ratio to full precision, its target and whether it meets it."""
    base = runs[0] if runs and "error" not in runs[0] else None
    for r, (_, _, limit) in zip(runs, RUNS):
        if r is runs[0]:
            r["target"] = f"MFU >= {100 * MFU_TARGET:g}%"
            r["step_time_ratio"] = 1.0 if "error" not in r else None
            r["meets_target"] = None if r.get("mfu") is None else r["mfu"] >= MFU_TARGET
            continue
        r["target"] = f"<= {limit:g}x"
        ratio = r["step_s"] / base["step_s"] if base and "error" not in r else None
        r["step_time_ratio"] = ratio
        r["meets_target"] = None if ratio is None else ratio <= limit


def show(console: Console, info: dict, runs: list[dict]) -> None:
    m = info["model"]
    t = Table(title=f"{info['device']}: N {human(m['params'], 3)} non-embedding ({m['n_layer']} layers, d_model "
                    f"{m['d_model']}), batch {m['batch_size']}x{m['seq_len']}, {info['steps']} steps after "
                    f"{info['warmup']} warm-up, {info['precision']}"
                    + (", torch.compile" if info["compile"] else "")
                    + (f", peak {human(info['peak_flops'], 4)} FLOP/s" if info["peak_flops"] else ", peak unknown")
                    + "; vs FP: step time over full precision's",
              title_justify="left")
    for c in ("run", "step ms", "tokens/s", "FLOP/s", "MFU", "vs FP", "target", ""):
        t.add_column(c, justify="left" if c in ("run", "target", "") else "right")
    for r in runs:
        if "error" in r:
            t.add_row(r["name"], "-", "-", "-", "-", "-", r["target"], f"failed: {r['error']}")
            continue
        verdict = {True: "ok", False: "missed", None: "-"}[r["meets_target"]]
        t.add_row(r["name"], f"{1000 * r['step_s']:.1f}", f"{r['tokens_per_s']:,.0f}",
                  human(r["model_flops_per_s"], 3), "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%",
                  "-" if r["step_time_ratio"] is None else f"{r['step_time_ratio']:.2f}x", r["target"], verdict)
    console.print(t)


def write_json(path: str, info: dict, runs: list[dict]) -> None:
    doc = dict(info, runs=[{k: v for k, v in r.items() if not k.startswith("_")} for r in runs])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=parse_number, default=125e6, help="model size, nearest ladder shape (125M)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the ladder's)")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per format (default 50)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first, the compiling ones (default 5)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="torch.compile (default: on with CUDA, as in the trainer)")
    ap.add_argument("--peak-flops", type=parse_number, default=None,
                    help="device peak FLOP/s for the MFU (default: the table, by GPU name)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file of the results (default: $OUT/train_gpu.json if OUT is set)")
    ap.add_argument("--smoke", action="store_true",
                    help="a check of the script on the CPU: a tiny model, 3 steps, the same code path")
    args = ap.parse_args(argv)
    for name in ("steps", "warmup"):
        if getattr(args, name) < (1 if name == "steps" else 0):
            ap.error(f"--{name} must be >= {1 if name == 'steps' else 0}, got {getattr(args, name)}")
    if args.peak_flops is not None and not (args.peak_flops > 0 and math.isfinite(args.peak_flops)):
        ap.error(f"--peak-flops must be a number of FLOP/s > 0, got {args.peak_flops:g}")
    if args.smoke:
        args.steps, args.warmup = 3, 1
        device = torch.device("cpu")
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    out = args.out or (os.path.join(os.environ["OUT"], "train_gpu.json") if os.environ.get("OUT") else None)
    console = Console()
    args.peak = device_peak(device, args.peak_flops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'cpu'})"
    corpus = Corpus.load(None)
    t_all = time.perf_counter()
    runs = []
    for run_name, options, _ in RUNS:
        console.print(f"{run_name}: {args.warmup} warm-up and {args.steps} timed steps ...", highlight=False)
        try:
            runs.append(measure(run_name, options, args, corpus, device))
        except Exception as exc:          # report the format, go on with the others
            runs.append({"name": run_name, "options": options, "error": f"{type(exc).__name__}: {exc}"[:300]})
        finally:
            if device.type == "cuda":
                torch._dynamo.reset()
                torch.cuda.empty_cache()
    judge(runs)
    p = next((r["_plan"] for r in runs if "_plan" in r), None)
    s = p.shape if p else None
    info = {
        "benchmark": "train_gpu", "smoke": args.smoke, "device": name, "torch": torch.__version__,
        "cuda": torch.version.cuda, "peak_flops": args.peak,
        "peak_from": "--peak-flops" if args.peak_flops else ("table" if args.peak else None),
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "compile": use_compile(device, args.compile), "steps": args.steps, "warmup": args.warmup,
        "model": {} if s is None else {
            "params": s.n_params, "params_total": s.n_total, "n_layer": s.n_layer, "d_model": s.d_model,
            "n_head": s.n_head, "seq_len": p.cfg.seq_len, "batch_size": p.batch_size,
            "tokens_per_step": p.tokens_per_step},
        "flops_per_token": flops_per_token(s, p.cfg.seq_len) if s else None,
        "targets": {"full_precision_mfu": MFU_TARGET, **{n: lim for n, _, lim in RUNS[1:]}},
        "total_s": round(time.perf_counter() - t_all, 1),
    }
    if s is not None:
        show(console, info, runs)
    else:
        for r in runs:
            console.print(f"{r['name']}: failed: {r['error']}", highlight=False, soft_wrap=True)
    console.print(f"{len(runs)} formats in {info['total_s']:.0f} s", highlight=False)
    if out:
        write_json(out, info, runs)
        console.print(f"results in {out}", highlight=False, soft_wrap=True)
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
