"""The canonical columns of a run table, their meaning, and their defaults -- said once, here.

This module imports nothing heavy (no numpy, no pandas): the trainer, the table reader
and the laws all read it.

Canonical columns
-----------------
=============  =====================================================================
``N``          model parameters.  By convention the *non-embedding* count (as in
               Kaplan et al. and the precision papers); say so in your own tables.
``D``          training tokens.
``loss``       final (validation) loss in nats per token.
``w_bits``     weight bits during training (empty or absent = 16, unquantized).
``a_bits``     activation bits during training (empty or absent = 16).
``kv_bits``    key/value (attention cache) bits (empty or absent = 16).
``ptq_bits``   bits of post-training weight quantization (empty or absent = 16, none).
``group_size`` elements sharing one quantization scale (block size for FP formats).
``scale_span`` how far one scale reaches, for scales not shared over a fixed block:
               0 = a block of ``group_size`` elements (empty = 0), 1 = one channel
               (per-channel / per-token scaling), 2 = the whole tensor (per-tensor);
               leave ``group_size`` empty on rows with 1 or 2.
``exp_bits``   exponent bits of a floating-point format (eXmY: X).
``man_bits``   mantissa bits of a floating-point format (eXmY: Y).
``D_fp``       tokens trained in full precision before QAT.
``D_qat``      tokens trained with quantization-aware training.
``loss_fp``    loss of the same checkpoint before post-training quantization.
``sparsity``   fraction of the weights pruned (zero), 0 <= s < 1 (empty or absent =
               0, dense); 0.5 is 50% sparsity.
=============  =====================================================================
"""

from __future__ import annotations

#: Canonical columns and a one-line meaning each (``scalinglaws laws`` prints them).
CANONICAL = {
    "N": "parameters (non-embedding)",
    "D": "training tokens",
    "loss": "final loss, nats per token",
    "w_bits": "weight bits in training (empty = 16)",
    "a_bits": "activation bits in training (empty = 16)",
    "kv_bits": "key/value bits in training (empty = 16)",
    "ptq_bits": "post-training quantization bits (empty = 16, none)",
    "group_size": "elements sharing one scale (block size)",
    "scale_span": "reach of one scale: 0 = a block of group_size, 1 = a channel, 2 = the tensor",
    "exp_bits": "exponent bits of an FP format",
    "man_bits": "mantissa bits of an FP format",
    "D_fp": "tokens trained in full precision before QAT",
    "D_qat": "tokens trained with QAT",
    "loss_fp": "loss of the same checkpoint before post-training quantization",
    "sparsity": "fraction of weights pruned, 0 <= s < 1 (empty = 0, dense)",
}

#: The precision a run has when its table says nothing: an empty cell, or no such column
#: at all, means 16 bits (unquantized, no post-training quantization).
UNQUANTIZED_BITS = 16.0

#: A run's sparsity when its table says nothing: dense (no weight pruned).
DENSE_SPARSITY = 0.0

#: Columns whose empty cells (or absence) mean their default: :data:`UNQUANTIZED_BITS` for
#: the precision columns, :data:`DENSE_SPARSITY` for ``sparsity``.
DEFAULTS = {"w_bits": UNQUANTIZED_BITS, "a_bits": UNQUANTIZED_BITS, "kv_bits": UNQUANTIZED_BITS,
            "ptq_bits": UNQUANTIZED_BITS, "sparsity": DENSE_SPARSITY}

#: The precision columns (training and post-training bits).
BITS_COLUMNS = ("w_bits", "a_bits", "kv_bits", "ptq_bits")

#: Range rules of the canonical columns, checked when a table is read.
POSITIVE = ("N", "D", "loss", "loss_fp")
AT_LEAST_ONE = ("w_bits", "a_bits", "kv_bits", "ptq_bits", "group_size")
NON_NEGATIVE = ("exp_bits", "man_bits", "D_fp", "D_qat", "scale_span")
FRACTION = ("sparsity",)         # 0 <= x < 1

#: Canonical columns the bundled trainer does not write (it does not prune weights, and it
#: writes its scaling as the text column ``w_granularity``), so its run tables keep their
#: header (``scalinglaws.train.loop.COLUMNS``).
NOT_TRAINED = ("sparsity", "scale_span")

#: Columns holding counts of parameters or tokens (printed as 70B, 1.4T).
COUNT_COLUMNS = ("N", "D", "D_fp", "D_qat")


def range_error(column: str, value: float) -> str | None:
    """Why ``value`` is not a valid cell of canonical ``column`` (None when it is)."""
    if value != value or value in (float("inf"), float("-inf")):
        return f"{value} is not finite"
    if column in POSITIVE and value <= 0:
        return f"{column} must be > 0, got {value:g}"
    if column in AT_LEAST_ONE and value < 1:
        return f"{column} must be >= 1, got {value:g}"
    if column in NON_NEGATIVE and value < 0:
        return f"{column} must be >= 0, got {value:g}"
    if column in FRACTION and not 0 <= value < 1:
        return (f"{column} must be a fraction in [0, 1) (0.5 for 50% of the weights pruned), "
                f"got {value:g}")
    return None
