"""Training throughput of the bundled trainer, and the cost of fake quantization.

CPU: tokens/s of a ~1M-parameter model in full precision, integer W4A4 with one scale
per 32 inputs, FP8 E4M3 with 32-element blocks, and the standard MXFP4 and NVFP4, all in
this one process, with the overhead ratio (time per token of the quantized run over full precision; target <= 1.5).
The three are timed in turns, ``--repeats`` times, and the median is kept, so that a
busy machine slows them alike.

GPU (when CUDA is available): tokens/s and model FLOPs utilisation of a ~50M-parameter
model in bf16 autocast (optionally torch.compile'd; target MFU >= 30%)::

    MFU = (6 N_matmul + 12 n_layer d_model seq_len) * tokens/s / peak

with N_matmul the weights that multiply every token (the blocks and the lm head, not
the embedding lookup), the second term the attention scores and values (PaLM's
appendix B), and ``peak`` the dense bf16 tensor throughput of the device from
:data:`scalinglaws.train.speed.PEAK_BF16` or ``--peak-flops`` (the one definition the
trainer's rows and ``benchmarks/train_gpu.py`` use too).

    python benchmarks/train_speed.py                    # CPU, one thread
    python benchmarks/train_speed.py --threads 2 --repeats 5
    python benchmarks/train_speed.py --peak-flops 989e12  # on a GPU not in the table
"""

from __future__ import annotations

import argparse
import statistics

import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from scalinglaws.train.data import Corpus
from scalinglaws.train.loop import Stepper, TrainConfig
from scalinglaws.train.speed import device_peak, flops_per_token, mfu as model_flops_utilisation
from scalinglaws.data.units import human, parse_number

CPU_RUNS = {
    "FP32": {},
    "int W4A4 G32": dict(w_bits=4, a_bits=4, group_size=32),
    "FP8 E4M3 G32": dict(format="fp", exp_bits=4, man_bits=3, group_size=32),
    "MXFP4": dict(format="mxfp4"),
    "NVFP4": dict(format="nvfp4"),
}


def cpu_bench(args, corpus, console) -> None:
    torch.set_num_threads(args.threads)
    base = dict(params=args.params, tokens=1e9, seq_len=args.seq_len, batch_size=args.batch_size)
    runners = {name: Stepper(TrainConfig(**base, **kw), corpus, torch.device("cpu")) for name, kw in CPU_RUNS.items()}
    for r in runners.values():
        r.tokens_per_s(args.warmup)
    speeds = {name: [] for name in runners}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("CPU runs", total=args.repeats * len(runners))
        for _ in range(args.repeats):                 # in turns, so that load hits all alike
            for name, r in runners.items():
                speeds[name].append(r.tokens_per_s(args.steps))
                bar.advance(task)
    p = next(iter(runners.values())).p
    fp = statistics.median(speeds["FP32"])
    t = Table(title=f"CPU, {args.threads} thread(s): N {human(p.shape.n_params, 3)} non-embedding "
                    f"({p.shape.n_layer} layers, d_model {p.shape.d_model}), batch {p.batch_size}x{args.seq_len}, "
                    f"median of {args.repeats} x {args.steps} steps", title_justify="left")
    for c in ("run", "tokens/s", "overhead vs FP", "target"):
        t.add_column(c, justify="left" if c == "run" else "right")
    for name, s in speeds.items():
        v = statistics.median(s)
        ratio = fp / v
        t.add_row(name, f"{v:,.0f}", "-" if name == "FP32" else f"{ratio:.2f}x",
                  "" if name == "FP32" else ("ok (<= 1.5x)" if ratio <= 1.5 else "above 1.5x"))
    console.print(t)


def gpu_bench(args, corpus, console) -> None:
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device)
    peak = device_peak(device, args.peak_flops)
    cfg = TrainConfig(params=args.gpu_params, tokens=1e12, seq_len=args.gpu_seq_len, batch_size=args.gpu_batch_size,
                      compile=args.compile)
    r = Stepper(cfg, corpus, device)
    r.tokens_per_s(args.warmup + (10 if args.compile else 0))
    tps = statistics.median(r.tokens_per_s(args.gpu_steps) for _ in range(args.repeats))
    s = r.p.shape
    per_token = flops_per_token(s, cfg.seq_len)
    t = Table(title=f"{name}: N {human(s.n_params, 3)} non-embedding ({s.n_layer} layers, d_model {s.d_model}), "
                    f"batch {r.p.batch_size}x{cfg.seq_len}, bf16 autocast{', torch.compile' if args.compile else ''}",
              title_justify="left")
    for c in ("tokens/s", "model FLOPs/token", "peak FLOP/s", "MFU", "target"):
        t.add_column(c, justify="right")
    mfu = model_flops_utilisation(s, cfg.seq_len, tps, peak)
    t.add_row(f"{tps:,.0f}", f"{per_token:.3g}", f"{peak:.3g}" if peak else "unknown (--peak-flops)",
              f"{100 * mfu:.1f}%" if mfu else "-", "" if mfu is None else "ok (>= 30%)" if mfu >= 0.3 else "below 30%")
    console.print(t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=parse_number, default=1e6, help="CPU model size (ladder), default 1M")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the ladder's)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per turn")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=3, help="turns; the median is reported")
    ap.add_argument("--gpu-params", type=parse_number, default=50e6, help="GPU model size, default 50M")
    ap.add_argument("--gpu-seq-len", type=int, default=1024)
    ap.add_argument("--gpu-batch-size", type=int, default=None)
    ap.add_argument("--gpu-steps", type=int, default=30)
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="torch.compile the GPU model (default on)")
    ap.add_argument("--peak-flops", type=parse_number, default=None, help="device peak FLOP/s for the MFU")
    ap.add_argument("--cpu", action=argparse.BooleanOptionalAction, default=True, help="run the CPU part")
    args = ap.parse_args(argv)
    for name in ("steps", "repeats", "gpu_steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    console = Console()
    corpus = Corpus.load(None)
    if args.cpu:
        cpu_bench(args, corpus, console)
    if torch.cuda.is_available():
        gpu_bench(args, corpus, console)
    else:
        console.print("no CUDA device: GPU throughput and MFU not measured")


if __name__ == "__main__":
    main()
