"""Fake quantization with a straight-through estimator (STE).

A :class:`QuantSpec` says how one tensor is quantized; :func:`fake_quant` rounds the
tensor to that grid and back ("quantize-dequantize") in the forward pass and lets the
gradient through unchanged in the backward pass.  The option names follow torchao:
``granularity`` (``per_tensor``, ``per_channel``, ``per_token``, ``per_group``),
``group_size`` and ``is_symmetric``.

Integer formats
    Symmetric absmax: ``scale = absmax / (2**(b-1) - 1)``, codes ``-qmax..qmax``
    (so 2 bits is ternary {-1, 0, 1}).  Asymmetric (``is_symmetric=False``) uses
    min/max, ``2**b`` levels and an integer zero point.

Floating-point formats eXmY (``format="fp"``)
    1 sign bit, X exponent bits with bias ``2**(X-1) - 1``, Y mantissa bits.  Every
    bit pattern is a finite number (no inf/nan codes), so the largest value is
    ``2**(2**X - 1 - bias) * (2 - 2**-Y)`` (E4M3: 480, E2M1: 6, E5M2: 114688).
    Subnormals are kept, rounding is to nearest with ties to even, values beyond the
    largest are saturated.  One absmax scale per block maps the block's absmax onto
    the largest value.

Granularity: the scale is shared over the whole tensor (``per_tensor``), over each
row of the last dimension (``per_channel`` for a weight ``[out, in]`` = one scale per
output channel; ``per_token`` for an activation ``[..., in]``), or over each block of
``group_size`` consecutive elements of the last dimension (``per_group``; for weights
and activations that is the input dimension).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scalinglaws.data.errors import InputError

GRANULARITIES = ("per_tensor", "per_channel", "per_token", "per_group")
FORMATS = ("int", "fp")


@dataclass(frozen=True)
class QuantSpec:
    """How to fake-quantize one tensor.

    ``bits`` is the total width (for FP: ``1 + exp_bits + man_bits``).
    """

    bits: int
    format: str = "int"
    exp_bits: int = 0
    man_bits: int = 0
    granularity: str = "per_tensor"
    group_size: int | None = None
    is_symmetric: bool = True

    def __post_init__(self):
        if self.format not in FORMATS:
            raise InputError(f"format {self.format!r}: choose from {', '.join(FORMATS)}")
        if self.granularity not in GRANULARITIES:
            raise InputError(f"granularity {self.granularity!r}: choose from {', '.join(GRANULARITIES)}")
        if self.granularity == "per_group" and (self.group_size is None or self.group_size < 1):
            raise InputError("per_group granularity needs a group size >= 1 (--group-size)")
        if self.format == "int":
            if not 2 <= self.bits <= 16:
                raise InputError(f"integer bits must be between 2 and 16, got {self.bits}")
        else:
            if self.exp_bits < 1 or self.man_bits < 0:
                raise InputError(f"FP format needs exp_bits >= 1 and man_bits >= 0, "
                                 f"got E{self.exp_bits}M{self.man_bits}")
            if self.exp_bits > 8 or self.man_bits > 23:
                raise InputError(f"FP format E{self.exp_bits}M{self.man_bits} is wider than float32")
            if self.bits != 1 + self.exp_bits + self.man_bits:
                raise InputError(f"FP format E{self.exp_bits}M{self.man_bits} has "
                                 f"{1 + self.exp_bits + self.man_bits} bits, not {self.bits}")
            if not self.is_symmetric:
                raise InputError("FP formats are symmetric; is_symmetric=False applies to integers only")

    @property
    def label(self) -> str:
        fmt = f"E{self.exp_bits}M{self.man_bits}" if self.format == "fp" else f"int{self.bits}"
        g = f"G{self.group_size}" if self.granularity == "per_group" else self.granularity
        return f"{fmt}/{g}" + ("" if self.is_symmetric else "/asym")


def fp_max(exp_bits: int, man_bits: int) -> float:
    """Largest finite value of eXmY when every code is finite (no inf/nan codes)."""
    bias = 2 ** (exp_bits - 1) - 1
    return 2.0 ** (2 ** exp_bits - 1 - bias) * (2.0 - 2.0 ** -man_bits)


def round_to_fp(x: torch.Tensor, exp_bits: int, man_bits: int) -> torch.Tensor:
    """Round ``x`` to the nearest eXmY value (as float32): ties to even, subnormals, saturation.

    The grid spacing at ``x`` is ``2**(floor(log2|x|) - man_bits)``, read off the
    exponent field of ``x``'s float32 bits (exact and cheap), but never finer than in
    the subnormal range ``2**(1 - bias - man_bits)``.
    """
    bias = 2 ** (exp_bits - 1) - 1
    top = fp_max(exp_bits, man_bits)
    x = x.float().clamp(-top, top)                                        # new tensor
    step = (x.view(torch.int32) & 0x7F800000).view(torch.float32)        # 2**floor(log2|x|)
    step.clamp_(min=2.0 ** (1 - bias)).mul_(2.0 ** -man_bits)
    return x.div_(step).round_().mul_(step)                              # round_: half to even


def _blocks(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """View ``x`` as rows that each share one scale."""
    if spec.granularity == "per_tensor":
        return x.reshape(1, -1)
    last = x.shape[-1]
    if spec.granularity == "per_group":
        g = min(spec.group_size, last)
        if last % g:
            raise InputError(f"group size {spec.group_size} does not divide the dimension {last}")
        return x.reshape(-1, g)
    return x.reshape(-1, last)


def quantize(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Quantize-dequantize ``x`` to ``spec`` (no gradient handling; see :func:`fake_quant`).

    Written with in-place operations on fresh tensors: on the CPU the temporaries,
    not the arithmetic, are what fake quantization costs.
    """
    shape, dtype = x.shape, x.dtype
    b = _blocks(x.detach().float(), spec)
    tiny = torch.finfo(torch.float32).tiny
    if spec.format == "fp":
        top = fp_max(spec.exp_bits, spec.man_bits)
        scale = b.abs().amax(dim=-1, keepdim=True).clamp_(min=tiny).div_(top)
        q = round_to_fp(b / scale, spec.exp_bits, spec.man_bits).mul_(scale)
    elif spec.is_symmetric:
        qmax = 2 ** (spec.bits - 1) - 1
        scale = b.abs().amax(dim=-1, keepdim=True).clamp_(min=tiny).div_(qmax)
        q = (b / scale).round_().clamp_(-qmax, qmax).mul_(scale)
    else:
        levels = 2 ** spec.bits - 1
        lo, hi = b.amin(dim=-1, keepdim=True), b.amax(dim=-1, keepdim=True)
        scale = (hi - lo).clamp_(min=tiny).div_(levels)
        zero = (lo / scale).neg_().round_()
        q = (b / scale).round_().add_(zero).clamp_(0, levels).sub_(zero).mul_(scale)
    return q.view(shape).to(dtype)


class _FakeQuant(torch.autograd.Function):
    """Quantize in the forward pass, identity in the backward pass (STE)."""

    @staticmethod
    def forward(ctx, x, spec):
        return quantize(x, spec)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def fake_quant(x: torch.Tensor, spec: QuantSpec | None) -> torch.Tensor:
    """``x`` rounded to ``spec``'s grid, with a straight-through gradient; ``x`` if ``spec`` is None."""
    return x if spec is None else _FakeQuant.apply(x, spec)
