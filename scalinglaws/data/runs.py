"""Run tables: one row per training run, in canonical columns.

Canonical columns
-----------------
=============  =====================================================================
``N``          model parameters.  By convention the *non-embedding* count (as in
               Kaplan et al. and the precision papers); say so in your own tables.
``D``          training tokens.
``loss``       final (validation) loss in nats per token.
``w_bits``     weight bits during training (empty = 16, unquantized).
``a_bits``     activation bits during training (empty = 16).
``kv_bits``    key/value (attention cache) bits (empty = 16).
``ptq_bits``   bits of post-training weight quantization (empty = 16, none).
``group_size`` elements sharing one quantization scale (block size for FP formats).
``exp_bits``   exponent bits of a floating-point format (eXmY: X).
``man_bits``   mantissa bits of a floating-point format (eXmY: Y).
``D_fp``       tokens trained in full precision before QAT.
``D_qat``      tokens trained with quantization-aware training.
``loss_fp``    loss of the same checkpoint before post-training quantization.
=============  =====================================================================

Any other column is kept as it is.  Cells may carry suffixes (``125M``, ``1.5B``,
``300B``, ``2T``, ``1e9``).  Every problem is raised as
:class:`~scalinglaws.data.errors.InputError` naming the file, the data row and the column.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import InputError
from scalinglaws.data.units import expand_suffixes, parse_number

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
    "exp_bits": "exponent bits of an FP format",
    "man_bits": "mantissa bits of an FP format",
    "D_fp": "tokens trained in full precision before QAT",
    "D_qat": "tokens trained with QAT",
    "loss_fp": "loss of the same checkpoint before post-training quantization",
}

#: Precision columns whose empty cells mean 16-bit (unquantized).
BITS_DEFAULT_16 = ("w_bits", "a_bits", "kv_bits", "ptq_bits")
_POSITIVE = ("N", "D", "loss", "loss_fp")
_AT_LEAST_ONE = ("w_bits", "a_bits", "kv_bits", "ptq_bits", "group_size")
_NON_NEGATIVE = ("exp_bits", "man_bits", "D_fp", "D_qat")

#: Aliases recognised case-insensitively (spaces, dashes and dots count as underscores).
ALIASES = {
    "n": "N", "params": "N", "n_params": "N", "nparams": "N", "parameters": "N",
    "num_params": "N", "model_size": "N", "non_embedding_params": "N", "size": "N",
    "d": "D", "tokens": "D", "train_tokens": "D", "n_tokens": "D", "training_tokens": "D",
    "num_tokens": "D", "data": "D",
    "loss": "loss", "val_loss": "loss", "eval_loss": "loss", "final_loss": "loss",
    "validation_loss": "loss", "test_loss": "loss", "l": "loss",
    "w_bits": "w_bits", "wbits": "w_bits", "weight_bits": "w_bits", "bits_w": "w_bits",
    "a_bits": "a_bits", "abits": "a_bits", "act_bits": "a_bits", "activation_bits": "a_bits",
    "kv_bits": "kv_bits", "kvbits": "kv_bits", "cache_bits": "kv_bits",
    "ptq_bits": "ptq_bits", "post_bits": "ptq_bits", "ptq": "ptq_bits",
    "group_size": "group_size", "groupsize": "group_size", "g": "group_size",
    "block_size": "group_size", "blocksize": "group_size",
    "exp_bits": "exp_bits", "exponent_bits": "exp_bits", "e_bits": "exp_bits",
    "man_bits": "man_bits", "mantissa_bits": "man_bits", "m_bits": "man_bits",
    "d_fp": "D_fp", "fp_tokens": "D_fp", "tokens_fp": "D_fp",
    "d_qat": "D_qat", "qat_tokens": "D_qat", "tokens_qat": "D_qat",
    "loss_fp": "loss_fp", "fp_loss": "loss_fp", "loss_bf16": "loss_fp", "loss_unquantized": "loss_fp",
}


def _key(name: str) -> str:
    return "_".join(str(name).strip().lower().replace("-", " ").replace(".", " ").split())


def canonical_name(name: str) -> str | None:
    """The canonical column a header stands for, or None."""
    if name in CANONICAL:
        return name
    return ALIASES.get(_key(name))


def parse_mapping(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Parse ``--map COLUMN=canonical`` options into a dict (file column -> canonical)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if "=" not in item:
                raise InputError(f"--map {item!r}: expected COLUMN=canonical, for example --map size=N")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    out = {}
    for k, v in pairs:
        if v not in CANONICAL:
            raise InputError(f"--map {k}={v}: {v!r} is not a canonical column; "
                             f"choose from {', '.join(CANONICAL)}")
        out[k] = v
    return out


def _read(path: str) -> pd.DataFrame:
    if not os.path.exists(path):
        raise InputError("no such file", file=path)
    if os.path.isdir(path):
        raise InputError("is a folder, expected a CSV or Parquet file", file=path)
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = "\t" if ext in (".tsv", ".tab") else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True,
                           comment=None)
    except ImportError as exc:
        raise InputError(f"cannot read Parquet: {exc} (pip install pyarrow)", file=path) from None
    except pd.errors.EmptyDataError:
        raise InputError("the file is empty", file=path) from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read the table: {msg}", file=path) from None


def _to_number(series: pd.Series, label: str, name: str, default: float | None) -> np.ndarray:
    out = np.empty(len(series), dtype=float)
    for i, cell in enumerate(series.tolist()):
        if cell is None or (isinstance(cell, float) and math.isnan(cell)) or (
                isinstance(cell, str) and cell.strip() in ("", "NA", "nan", "NaN", "None", "null")):
            if default is None:
                out[i] = np.nan
                continue
            out[i] = default
            continue
        try:
            out[i] = parse_number(cell, "value")
        except InputError:
            raise InputError(f"{str(cell)!r} is not a number", file=label, row=i + 1, column=name) from None
    return out


def load_runs(source, *, mapping: Mapping[str, str] | Iterable[str] | None = None,
              required: Iterable[str] = ("N", "D", "loss"), where: str | None = None,
              exclude_top: int = 0, name: str | None = None) -> pd.DataFrame:
    """Load a run table into canonical columns.

    Parameters
    ----------
    source : str, path or DataFrame
        A CSV (``.csv``; ``.tsv`` for tabs) or Parquet file, or a DataFrame.
    mapping : dict or list of ``"COLUMN=canonical"``, optional
        Extra renames for headers the aliases do not know.
    required : iterable of str
        Canonical columns that must be present (a law's needs).  Empty cells in a
        required column are an error, except precision columns (empty = 16 bits).
    where : str, optional
        A filter such as ``"N>=1e8 and D<300B"`` (pandas ``query`` syntax; suffixes allowed).
    exclude_top : int
        Drop the ``exclude_top`` highest-loss runs (after ``where``).
    name : str, optional
        What to call the table in messages (defaults to the file name).

    Returns
    -------
    pandas.DataFrame
        Canonical columns as floats, other columns as read; the original 1-based data
        row of each run in the index (so later messages can point at it).
    """
    if isinstance(source, pd.DataFrame):
        label = name or "<table>"
        raw = source.copy()
        raw.columns = [str(c) for c in raw.columns]
    else:
        label = name or os.fspath(source)
        raw = _read(os.fspath(source))
    if raw.shape[0] == 0:
        raise InputError("the table has no data rows", file=label)

    rename = parse_mapping(mapping)
    columns = {}
    for col in raw.columns:
        canon = rename.get(col) or canonical_name(col)
        target = canon or col
        if target in columns.values():
            first = next(k for k, v in columns.items() if v == target)
            raise InputError(f"columns '{first}' and '{col}' both stand for '{target}'; "
                             f"rename one with --map", file=label)
        columns[col] = target
    df = raw.rename(columns=columns)

    required = list(required)
    missing = [c for c in required if c not in df.columns]
    if missing:
        have = ", ".join(str(c) for c in raw.columns)
        raise InputError(f"missing required column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)} (the file has: {have}; "
                         f"use --map COLUMN=canonical to rename)", file=label)

    inverse = {v: k for k, v in columns.items()}
    for col in CANONICAL:
        if col not in df.columns:
            continue
        src = inverse.get(col, col)
        default = 16.0 if col in BITS_DEFAULT_16 else None
        values = _to_number(df[col], label, src, default)
        for i, v in enumerate(values):
            if np.isnan(v):
                if col in required:
                    raise InputError("empty cell in a required column", file=label, row=i + 1, column=src)
                continue
            if not math.isfinite(v):
                raise InputError(f"{v} is not finite", file=label, row=i + 1, column=src)
            if col in _POSITIVE and v <= 0:
                raise InputError(f"{col} must be > 0, got {v:g}", file=label, row=i + 1, column=src)
            if col in _AT_LEAST_ONE and v < 1:
                raise InputError(f"{col} must be >= 1, got {v:g}", file=label, row=i + 1, column=src)
            if col in _NON_NEGATIVE and v < 0:
                raise InputError(f"{col} must be >= 0, got {v:g}", file=label, row=i + 1, column=src)
        df[col] = values
    for col in df.columns:
        if col not in CANONICAL:
            df[col] = _maybe_numeric(df[col])
    df.index = pd.RangeIndex(1, len(df) + 1, name="row")
    df.attrs["source"] = label

    if where:
        try:
            mask = df.eval(expand_suffixes(where))
            df = df[np.asarray(mask, dtype=bool)]
        except Exception as exc:  # pandas raises many types for a bad expression
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"--where {where!r}: {msg}", file=label) from None
        if df.empty:
            raise InputError(f"--where {where!r} leaves no runs", file=label)
    if exclude_top:
        if exclude_top < 0:
            raise InputError(f"--exclude-top must be >= 0, got {exclude_top}")
        if "loss" not in df.columns:
            raise InputError("--exclude-top needs a 'loss' column", file=label)
        if exclude_top >= len(df):
            raise InputError(f"--exclude-top {exclude_top} would drop all {len(df)} runs", file=label)
        df = df.drop(df["loss"].nlargest(exclude_top).index)
    df.attrs["source"] = label
    return df


def _maybe_numeric(series: pd.Series) -> pd.Series:
    """Convert a free column to numbers when every cell is one; leave it as text otherwise."""
    try:
        return pd.to_numeric(series)
    except (ValueError, TypeError):
        return series


def bits_label(row: Mapping) -> str:
    """A short format key such as ``W4A16`` or ``W4A4G32`` for one run."""
    def b(name):
        v = row.get(name, 16.0)
        return 16 if v is None or (isinstance(v, float) and math.isnan(v)) else int(round(v))
    key = f"W{b('w_bits')}A{b('a_bits')}"
    g = row.get("group_size")
    if g is not None and not (isinstance(g, float) and math.isnan(g)):
        key += f"G{int(round(g))}"
    return key
