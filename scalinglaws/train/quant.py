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

Formats as their standards name them (``format`` one of :data:`NAMED`)
    ``e4m3fn`` (OCP FP8 E4M3: bias 7, no infinities, one NaN code S.1111.111, so the
    largest value is 448) and ``e5m2`` (OCP FP8 E5M2: bias 15, IEEE-like, the top
    exponent field holds infinities and NaNs, largest finite 57344): the eXmY grid
    above, cut at the standard's largest finite value, with a float32 absmax scale per
    tensor, channel, token or group as for ``fp``.  Out-of-range values saturate.

    ``mxfp8`` (E4M3FN elements), ``mxfp8_e5m2``, ``mxfp6_e3m2`` (largest 28),
    ``mxfp6_e2m3`` (7.5) and ``mxfp4`` (E2M1, 6): OCP Microscaling v1.0.  One E8M0 scale
    (a power of two, 2**-127 .. 2**127) per block of 32 consecutive elements along the
    reduction dimension, ``X = 2**(floor(log2 amax) - emax)`` with ``emax`` the exponent
    of the element format's largest normal (8, 15, 4, 2, 2) (spec Sec. 6.3); elements
    are ``x / X`` rounded to nearest, ties to even, and saturated.  The FP6 and FP4
    element formats have no inf/NaN codes, so their grids are the all-finite ones.

    ``nvfp4``: E2M1 elements, one E4M3 scale per block of 16 (along the reduction
    dimension) and one float32 scale per tensor: ``s_t = amax_tensor / (6 * 448)``,
    ``s_b = E4M3(amax_block / 6 / s_t)`` (round to nearest even, subnormal scales kept
    down to 2**-9), elements ``E2M1(x * ((1 / s_t) / s_b))``, dequantized as
    ``e * (s_t * s_b)``: torchao's order of operations, so the results agree with its
    ``NVFP4Tensor`` bit for bit, except on blocks whose scale is below the 2**-6 at
    which torchao floors them.

Stochastic rounding (``stochastic=True``, floating-point formats): each element goes to
one of its two neighbours on the grid, up with probability equal to its distance from
the lower one (in grid steps), with uniform numbers from a seeded ``torch.Generator``
passed to :func:`quantize`; unbiased, and without a generator (evaluation) the spec
rounds to nearest.

Granularity: the scale is shared over the whole tensor (``per_tensor``), over each
row of the last dimension (``per_channel`` for a weight ``[out, in]`` = one scale per
output channel; ``per_token`` for an activation ``[..., in]``), or over each block of
``group_size`` consecutive elements of the last dimension (``per_group``; for weights
and activations that is the input dimension, the reduction dimension of the layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from scalinglaws.data.errors import InputError

GRANULARITIES = ("per_tensor", "per_channel", "per_token", "per_group")


@dataclass(frozen=True)
class Named:
    """A floating-point format as its standard defines it."""

    exp_bits: int
    man_bits: int
    top: float               # largest finite element value
    block: int | None        # elements per scale, fixed by the standard (None: any granularity)
    scale: str               # "float32" (absmax), "e8m0" (OCP MX), "e4m3" (NVFP4: E4M3 per block, FP32 per tensor)

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def emax(self) -> int:
        """Exponent of the largest normal value (OCP MX's ``emax_elem``)."""
        return math.floor(math.log2(self.top))


#: The standard formats by name.  Largest values: E4M3FN 1.75 * 2**8 (the code 1.875 * 2**8
#: is NaN), E5M2 1.75 * 2**15 (exponent field 31 is inf/NaN), E3M2 1.75 * 2**4,
#: E2M3 1.875 * 2**2, E2M1 1.5 * 2**2 (the FP6/FP4 codes are all finite).
NAMED = {
    "e4m3fn": Named(4, 3, 448.0, None, "float32"),
    "e5m2": Named(5, 2, 57344.0, None, "float32"),
    "mxfp8": Named(4, 3, 448.0, 32, "e8m0"),
    "mxfp8_e5m2": Named(5, 2, 57344.0, 32, "e8m0"),
    "mxfp6_e3m2": Named(3, 2, 28.0, 32, "e8m0"),
    "mxfp6_e2m3": Named(2, 3, 7.5, 32, "e8m0"),
    "mxfp4": Named(2, 1, 6.0, 32, "e8m0"),
    "nvfp4": Named(2, 1, 6.0, 16, "e4m3"),
}

FORMATS = ("int", "fp") + tuple(NAMED)

E4M3FN_MAX = NAMED["e4m3fn"].top


@dataclass(frozen=True)
class QuantSpec:
    """How to fake-quantize one tensor.

    ``bits`` is the total width (for FP: ``1 + exp_bits + man_bits``).  A format of
    :data:`NAMED` fixes ``bits``, ``exp_bits`` and ``man_bits`` (and, for the block
    formats, ``per_group`` with its block as ``group_size``): :meth:`named` fills them in.
    """

    bits: int
    format: str = "int"
    exp_bits: int = 0
    man_bits: int = 0
    granularity: str = "per_tensor"
    group_size: int | None = None
    is_symmetric: bool = True
    stochastic: bool = False

    @classmethod
    def named(cls, name: str, granularity: str = "per_tensor", group_size: int | None = None,
              stochastic: bool = False) -> "QuantSpec":
        """The spec of a standard format (``granularity`` and ``group_size`` only for e4m3fn and e5m2)."""
        if name not in NAMED:
            raise InputError(f"format {name!r}: choose from {', '.join(NAMED)}")
        f = NAMED[name]
        if f.block:
            granularity, group_size = "per_group", f.block
        return cls(bits=f.bits, format=name, exp_bits=f.exp_bits, man_bits=f.man_bits,
                   granularity=granularity, group_size=group_size, stochastic=stochastic)

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
            if self.stochastic:
                raise InputError("stochastic rounding applies to floating-point formats, not int")
            return
        if self.format in NAMED:
            f = NAMED[self.format]
            if (self.bits, self.exp_bits, self.man_bits) != (f.bits, f.exp_bits, f.man_bits):
                raise InputError(f"{self.format} is {f.bits} bits, E{f.exp_bits}M{f.man_bits}; got {self.bits} "
                                 f"bits, E{self.exp_bits}M{self.man_bits} (QuantSpec.named fills them in)")
            if f.block and (self.granularity, self.group_size) != ("per_group", f.block):
                raise InputError(f"{self.format} shares one scale per block of {f.block} elements "
                                 f"(per_group, group size {f.block})")
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
    def top(self) -> float:
        """Largest value of the element format (FP formats)."""
        f = NAMED.get(self.format)
        return f.top if f else fp_max(self.exp_bits, self.man_bits)

    @property
    def label(self) -> str:
        sr = "/sr" if self.stochastic else ""
        f = NAMED.get(self.format)
        if f and f.block:
            return self.format + sr
        fmt = self.format if f else f"E{self.exp_bits}M{self.man_bits}" if self.format == "fp" else f"int{self.bits}"
        g = f"G{self.group_size}" if self.granularity == "per_group" else self.granularity
        return f"{fmt}/{g}" + ("" if self.is_symmetric else "/asym") + sr


def fp_max(exp_bits: int, man_bits: int) -> float:
    """Largest finite value of eXmY when every code is finite (no inf/nan codes)."""
    bias = 2 ** (exp_bits - 1) - 1
    return 2.0 ** (2 ** exp_bits - 1 - bias) * (2.0 - 2.0 ** -man_bits)


def round_to_fp(x: torch.Tensor, exp_bits: int, man_bits: int, top: float | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """Round ``x`` to the nearest eXmY value (as float32): ties to even, subnormals, saturation.

    The grid spacing at ``x`` is ``2**(floor(log2|x|) - man_bits)``, read off the
    exponent field of ``x``'s float32 bits (exact and cheap), but never finer than in
    the subnormal range ``2**(1 - bias - man_bits)``.  ``top``: the largest value
    (default :func:`fp_max`, every code finite; 448 for E4M3FN, 57344 for E5M2), beyond
    which values saturate.  ``noise``: uniform numbers in [0, 1) of ``x``'s shape for
    stochastic rounding, ``floor(x / step + noise) * step``, instead of to nearest.
    """
    bias = 2 ** (exp_bits - 1) - 1
    top = fp_max(exp_bits, man_bits) if top is None else top
    x = x.float().clamp(-top, top)                                        # new tensor
    step = (x.view(torch.int32) & 0x7F800000).view(torch.float32)        # 2**floor(log2|x|)
    step.clamp_(min=2.0 ** (1 - bias)).mul_(2.0 ** -man_bits)
    if noise is None:
        return x.div_(step).round_().mul_(step)                          # round_: half to even
    return x.div_(step).add_(noise).floor_().mul_(step)                  # stays within [-top, top]


def e8m0_scale(amax: torch.Tensor, emax: int) -> torch.Tensor:
    """OCP MX's shared scale ``2**(floor(log2 amax) - emax)``, clamped to E8M0's 2**-127 .. 2**127.

    ``floor(log2 amax)`` is the exponent field of ``amax``'s float32 bits (-127 for a zero
    block, whose elements are zero at any scale); the power of two is built from its bits
    (2**-127 is the float32 subnormal 0x00400000).
    """
    e = ((amax.float().contiguous().view(torch.int32) >> 23) & 0xFF) - 127
    k = (e - emax).clamp_(-127, 127)
    bits = torch.where(k >= -126, (k + 127) << 23, torch.full_like(k, 0x00400000))
    return bits.view(torch.float32)


def _blocks(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """View ``x`` as rows that each share one scale."""
    if spec.granularity == "per_tensor":
        return x.reshape(1, -1)
    last = x.shape[-1]
    if spec.granularity == "per_group":
        fixed = spec.format in NAMED and NAMED[spec.format].block
        g = spec.group_size if fixed else min(spec.group_size, last)
        if last % g:
            raise InputError(f"group size {spec.group_size} does not divide the dimension {last}")
        return x.reshape(-1, g)
    return x.reshape(-1, last)


def quantize(x: torch.Tensor, spec: QuantSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """Quantize-dequantize ``x`` to ``spec`` (no gradient handling; see :func:`fake_quant`).

    ``generator``: the random numbers of stochastic rounding (``spec.stochastic``); a
    stochastic spec without one rounds to nearest.  Written with in-place operations on
    fresh tensors: on the CPU the temporaries, not the arithmetic, are what fake
    quantization costs.
    """
    shape, dtype = x.shape, x.dtype
    b = _blocks(x.detach().float(), spec)
    tiny = torch.finfo(torch.float32).tiny
    if spec.format != "int":
        e, m, top = spec.exp_bits, spec.man_bits, spec.top
        noise = None
        if spec.stochastic and generator is not None:
            noise = torch.rand(b.shape, generator=generator, device=b.device)
        kind = NAMED[spec.format].scale if spec.format in NAMED else "float32"
        amax = b.abs().amax(dim=-1, keepdim=True)
        if kind == "e8m0":
            scale = e8m0_scale(amax, NAMED[spec.format].emax)
            q = round_to_fp(b / scale, e, m, top, noise).mul_(scale)
        elif kind == "e4m3":
            # the per-tensor scale has a floor of 2**-100 so that its reciprocal over any block
            # scale stays finite (a tensor of zeros, or of values below 1e-27, has no meaningful scale)
            s_t = amax.amax().div(top * E4M3FN_MAX).clamp_(min=2.0 ** -100)
            s_b = round_to_fp(amax.div_(top).div_(s_t).clamp_(min=2.0 ** -9), 4, 3, E4M3FN_MAX)
            q = round_to_fp(b * ((1.0 / s_t) / s_b), e, m, top, noise).mul_(s_t * s_b)
        else:
            scale = amax.clamp_(min=tiny).div_(top)
            q = round_to_fp(b / scale, e, m, top, noise).mul_(scale)
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
    def forward(ctx, x, spec, generator):
        return quantize(x, spec, generator)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


def fake_quant(x: torch.Tensor, spec: QuantSpec | None, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` rounded to ``spec``'s grid, with a straight-through gradient; ``x`` if ``spec`` is None.

    ``generator``: random numbers for a stochastic spec (else it rounds to nearest).
    """
    return x if spec is None else _FakeQuant.apply(x, spec, generator)
