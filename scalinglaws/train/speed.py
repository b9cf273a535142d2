"""Training speed: model FLOPs per token, the devices' bf16 peaks, model FLOPs utilisation (MFU).

One definition, shared by the trainer (each run's row) and the benchmarks::

    MFU = (6 N_matmul + 12 n_layer d_model seq_len) * tokens/s / peak

``N_matmul`` is the weights that multiply every token: the blocks and the lm head, not
the embedding lookup (``Shape.n_params + vocab d_model``, vocab 256 on bytes or the shards' size; the norms' few weights are
counted too, as nanoGPT and PaLM do).  6 = 2 FLOPs per multiply-add x (forward + two
backward matmuls).  The second term is the attention scores and the weighted values
(PaLM, appendix B: ``6 n_layer d_model seq_len`` each for QK^T and AV, forward and
backward, without halving for the causal mask).  Fake quantization adds work that
this count leaves out, so a quantized run's MFU is its useful FLOPs against the peak.

``peak`` is the device's dense bf16 tensor-core throughput (no 2:4 sparsity), from
:data:`PEAK_BF16` by the CUDA device name, or given (``--peak-flops``).
"""

from __future__ import annotations

import math
import re

from scalinglaws.train.model import Shape

#: Dense bf16 tensor-core peak in FLOP/s by device name, for FP32 accumulation (what
#: torch's bf16 matmuls use).  Vendor data sheets give bf16 "with sparsity", twice the
#: dense figure; the values here are the halves.  Sources (see docs/trainer.md):
#:
#: * A100 (SXM and PCIe) 312 T: NVIDIA A100 data sheet, "BFLOAT16 Tensor Core 312 | 624*".
#: * H100 SXM 989 T, H100 PCIe 756 T: NVIDIA H100 data sheet, "BFLOAT16 Tensor Core
#:   1,979* / 1,513* teraFLOPS, * with sparsity" (torch names the SXM part "H100 80GB HBM3").
#: * H200 989 T: NVIDIA H200 data sheet, 1,979* teraFLOPS; GH200 990 T: GH200 data sheet
#:   ("1,979* | 990 teraFLOPS").
#: * L4 121 T: NVIDIA L4 data sheet, 242*; L40S 362 T: L40S data sheet, 733*.
#: * A10 125 T: NVIDIA A10 data sheet, "BF16 Tensor Core 125 | 250*".
#: * RTX 4090 165.2 T: Ada architecture whitepaper, "Peak BF16 Tensor TFLOPS with FP32
#:   Accumulate 165.2" (330.3 with FP16 accumulation, which torch does not use).
#:
#: ``None``: a device whose name contains a listed one but whose peak differs and is not
#: checked here (the NVL cards, run at lower clocks); MIG slices are unknown too.  An
#: unknown device gets no MFU unless ``--peak-flops`` gives its peak.
PEAK_BF16: dict[str, float | None] = {
    "A100": 312e12,
    "H100": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": None,
    "H200": 989e12,
    "H200 NVL": None,
    "GH200": 990e12,
    "L4": 121e12,
    "L40S": 362e12,
    "A10": 125e12,
    "RTX 4090": 165.2e12,
}


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Z0-9]+", name.upper())


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of the device called ``device_name``, None when unknown.

    A table key matches when its words appear, in order and next to each other, among
    the name's words (``"NVIDIA H100 80GB HBM3"`` is an H100, ``"NVIDIA A10"`` is not an
    A100, ``"NVIDIA L40S"`` is not an L4); the key with the most words wins
    (``"NVIDIA H100 PCIe"`` is an H100 PCIe).  A MIG slice (the word ``MIG``) has a
    fraction of the device's peak: None.
    """
    words = _words(device_name)
    if "MIG" in words:
        return None
    best, size = None, 0
    for key, value in PEAK_BF16.items():
        k = _words(key)
        if len(k) > size and any(words[i:i + len(k)] == k for i in range(len(words) - len(k) + 1)):
            best, size = value, len(k)
    return best


def flops_per_token(shape: Shape, seq_len: int) -> int:
    """Training FLOPs per token: ``6 N_matmul + 12 n_layer d_model seq_len`` (see the module doc)."""
    n_matmul = shape.n_params + shape.vocab * shape.d_model
    return 6 * n_matmul + 12 * shape.n_layer * shape.d_model * seq_len


def model_flops_per_s(shape: Shape, seq_len: int, tokens_per_s: float) -> float:
    return flops_per_token(shape, seq_len) * tokens_per_s


def mfu(shape: Shape, seq_len: int, tokens_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation, a fraction (0.4 = 40%); None without a peak."""
    if not peak or not math.isfinite(tokens_per_s):
        return None
    return model_flops_per_s(shape, seq_len, tokens_per_s) / peak


def device_peak(device, given: float | None = None) -> float | None:
    """``given`` when set, else the table's peak of a CUDA ``device``; None on the CPU."""
    if given is not None:
        return given
    if getattr(device, "type", str(device)) != "cuda":
        return None
    import torch
    return peak_flops(torch.cuda.get_device_name(device))
