"""A small decoder-only transformer with fake-quantized linear layers.

Pre-norm RMSNorm, rotary positions, SwiGLU MLP (FC1 = gate and up, FC2 = down),
optional grouped-query attention; the vocabulary is the 256 byte values, or the token
shards' ``vocab_size`` (``Shape.vocab``).  Every linear layer
inside the blocks is a :class:`QuantLinear` that can fake-quantize its weight and its
input; keys and values inside attention have their own quantizer.  The embedding and
the lm head stay in full precision unless ``quant_head`` is set.

Sizes: :data:`LADDER` lists the shapes ``--params`` picks from (one knob, as in
nanochat); batch and learning rate follow from the width in :func:`shape_for`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from scalinglaws.data.errors import InputError, OptionError

from scalinglaws.train.quant import QuantSpec, fake_quant


class RunOptionError(OptionError):
    """A bad option of a run, or a bad combination of options.

    ``text`` is a :meth:`str.format` template naming each of ``options`` (Python names
    of :class:`~scalinglaws.train.loop.TrainConfig` fields) as ``{0}``, ``{1}``, ...:
    ``str()`` shows them by those names (which are also the keys of a sweep spec),
    :meth:`as_flag` as the command line's flags.  The sweep reads :attr:`options` to say
    where in a spec each offending key was set.
    """

    #: Options whose flag is not ``--`` + the name with dashes.
    FLAGS = {"is_symmetric": "--asymmetric", "compile": "--compile"}

    def __init__(self, text: str, *options: str, file: str | None = None):
        self.text, self.options = text, options
        message = text.format(*options)
        InputError.__init__(self, message, file=file)
        self.option, self.takes, self.reason = options[0], None, message

    @classmethod
    def about(cls, option: str, reason: str) -> "RunOptionError":
        """The usual case: ``"<option> <reason>"``, ``reason`` taken literally."""
        return cls("{0} " + reason.replace("{", "{{").replace("}", "}}"), option)

    def as_flag(self, flag=None) -> str:
        flag = flag or (lambda name: "--" + name.replace("_", "-"))
        head = f"{self.file}: " if self.file else ""
        return head + self.text.format(*[self.FLAGS.get(o) or flag(o) for o in self.options])

#: The byte-level vocabulary (text read as bytes); token shards bring their own size.
VOCAB = 256

#: The size ladder: (layers, d_model, heads).  ``--params X`` picks the entry whose
#: non-embedding count is nearest to X on a log scale.  Head size is 16 up to
#: d_model 128, 32 up to 512 and 64 above; the MLP width is 8/3 d_model rounded up to
#: a multiple of 32 (so group sizes 16 and 32 divide every input dimension).
LADDER = [
    (1, 32, 2), (2, 32, 2), (1, 64, 4), (2, 64, 4), (2, 96, 6), (2, 128, 8), (3, 128, 8), (3, 160, 10),
    (4, 192, 6), (5, 256, 8), (6, 320, 10), (6, 384, 12), (8, 512, 16), (10, 640, 10),
    (12, 768, 12), (16, 1024, 16), (20, 1280, 20),
]


@dataclass(frozen=True)
class Shape:
    """Model shape and the batch/learning rate that go with it."""

    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_ff: int
    batch_tokens: int
    lr: float
    vocab: int = VOCAB                   # embedding rows and lm-head outputs (not counted in N)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def n_params(self) -> int:
        """Non-embedding parameters (blocks and final norm; not the embedding or lm head)."""
        d, kv = self.d_model, self.n_kv_head * self.head_dim
        per_layer = d * (d + 2 * kv) + d * d + 3 * d * self.d_ff + 2 * d
        return self.n_layer * per_layer + d

    @property
    def n_total(self) -> int:
        return self.n_params + 2 * self.vocab * self.d_model


def mlp_width(d_model: int) -> int:
    return 32 * math.ceil(8 * d_model / 3 / 32)


def shape_for(params: float | None = None, *, n_layer: int | None = None, d_model: int | None = None,
              n_head: int | None = None, n_kv_head: int | None = None) -> Shape:
    """The ladder shape nearest to ``params`` (non-embedding), with optional overrides.

    Batch: 1K tokens below 1M parameters, 8K below 10M, 64K below 100M, 256K above
    (small models see few tokens; at a fixed budget more, smaller steps train them
    better: 100K parameters at 1M tokens reach 1.81 nats/byte with 1K-token batches
    and 2.25 with 8K).  Learning rate (AdamW): ``2e-3 * sqrt(128 / d_model)``, at most 3e-3.
    """
    if params is not None:
        if params <= 0:
            raise RunOptionError.about("params", f"must be > 0, got {params:g}")
        base = min(LADDER, key=lambda s: abs(math.log(_n(*s) / params)))
    elif d_model is not None and n_layer is not None:
        base = (n_layer, d_model, n_head or max(1, d_model // (16 if d_model <= 128 else 32 if d_model <= 512 else 64)))
    else:
        raise RunOptionError("give {0} (for example 1M) or both {1} and {2}", "params", "n_layer", "d_model")
    L, d, h = base
    L, d, h = n_layer or L, d_model or d, n_head or h
    kv = n_kv_head or h
    for name, v in (("n_layer", L), ("d_model", d), ("n_head", h), ("n_kv_head", kv)):
        if v < 1:
            raise RunOptionError.about(name, f"must be >= 1, got {v}")
    if d % h or (d // h) % 2:
        raise RunOptionError(f"{{0}} {d} must be a multiple of {{1}} {h} with an even head size",
                             "d_model", "n_head")
    if h % kv:
        raise RunOptionError(f"{{0}} {h} must be a multiple of {{1}} {kv}", "n_head", "n_kv_head")
    n = _n(L, d, h, kv)
    batch = 1024 if n < 1e6 else 8192 if n < 1e7 else 65536 if n < 1e8 else 262144
    lr = min(3e-3, 2e-3 * math.sqrt(128 / d))
    return Shape(L, d, h, kv, mlp_width(d), batch, round(lr, 6))


def _n(L, d, h, kv=None) -> int:
    return Shape(L, d, h, kv or h, mlp_width(d), 0, 0.0).n_params


class QuantLinear(nn.Linear):
    """``nn.Linear`` without bias that fake-quantizes its weight and its input when enabled."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(d_in, d_out, bias=False)
        self.w_spec: QuantSpec | None = None
        self.a_spec: QuantSpec | None = None
        self.rng: torch.Generator | None = None     # stochastic rounding's random numbers (training only)
        self.enabled = False

    def forward(self, x):
        if not self.enabled:
            return F.linear(x, self.weight)
        rng = self.rng if self.training else None
        return F.linear(fake_quant(x, self.a_spec, rng), fake_quant(self.weight, self.w_spec, rng))


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rotary_tables(seq_len: int, head_dim: int, base: float = 10000.0):
    inv = base ** (-torch.arange(0, head_dim, 2).float() / head_dim)
    ang = torch.outer(torch.arange(seq_len).float(), inv)
    return ang.cos(), ang.sin()


def apply_rotary(x, cos, sin):
    x1, x2 = x[..., ::2], x[..., 1::2]
    T = x.shape[-2]
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.h, self.kv, self.hd = s.n_head, s.n_kv_head, s.head_dim
        self.qkv = QuantLinear(s.d_model, (s.n_head + 2 * s.n_kv_head) * s.head_dim)
        self.out = QuantLinear(s.d_model, s.d_model)
        self.kv_spec: QuantSpec | None = None
        self.rng: torch.Generator | None = None
        self.kv_enabled = False

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split([self.h * self.hd, self.kv * self.hd, self.kv * self.hd], dim=-1)
        q = apply_rotary(q.view(B, T, self.h, self.hd).transpose(1, 2), cos, sin)
        k = apply_rotary(k.view(B, T, self.kv, self.hd).transpose(1, 2), cos, sin)
        v = v.view(B, T, self.kv, self.hd).transpose(1, 2)
        if self.kv_enabled:
            rng = self.rng if self.training else None
            k, v = fake_quant(k, self.kv_spec, rng), fake_quant(v, self.kv_spec, rng)
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.fc1 = QuantLinear(s.d_model, 2 * s.d_ff)   # gate and up, fused
        self.fc2 = QuantLinear(s.d_ff, s.d_model)       # down

    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.norm1, self.attn = RMSNorm(s.d_model), Attention(s)
        self.norm2, self.mlp = RMSNorm(s.d_model), MLP(s)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Language model over ``s.vocab`` tokens; ``forward(idx, targets)`` returns the mean loss in nats."""

    def __init__(self, s: Shape, seq_len: int):
        super().__init__()
        self.shape = s
        self.embed = nn.Embedding(s.vocab, s.d_model)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.norm = RMSNorm(s.d_model)
        self.head = QuantLinear(s.d_model, s.vocab)
        cos, sin = rotary_tables(seq_len, s.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * s.n_layer) if name.endswith(("out.weight", "fc2.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, idx, targets=None):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        logits = self.head(self.norm(x)).float()
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def configure_quant(self, w: QuantSpec | None, a: QuantSpec | None, kv: QuantSpec | None = None,
                        fc2_a: QuantSpec | None = None, head: bool = False,
                        rng: torch.Generator | None = None) -> None:
        """Set the quantizers (None = full precision); ``fc2_a`` overrides FC2's input.

        ``rng``: the generator stochastic specs draw from while training (in eval mode,
        and without it, they round to nearest).
        """
        for block in self.blocks:
            for lin in (block.attn.qkv, block.attn.out, block.mlp.fc1, block.mlp.fc2):
                lin.w_spec, lin.a_spec, lin.rng = w, a, rng
            if fc2_a is not None:
                block.mlp.fc2.a_spec = fc2_a
            block.attn.kv_spec, block.attn.rng = kv, rng
        self.head.w_spec, self.head.a_spec = (w, a) if head else (None, None)
        self.head.rng = rng

    def enable_quant(self, on: bool) -> None:
        """Switch every quantizer on (QAT phase) or off (full-precision phase)."""
        for m in self.modules():
            if isinstance(m, QuantLinear):
                m.enabled = on and (m.w_spec is not None or m.a_spec is not None)
            elif isinstance(m, Attention):
                m.kv_enabled = on and m.kv_spec is not None
