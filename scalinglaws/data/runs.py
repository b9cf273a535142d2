"""Run tables: one row per training run, read into canonical columns (pandas).

The columns, their meaning and their defaults are in :mod:`scalinglaws.data.schema`.
Any other column is kept as it is.  Cells may carry suffixes (``125M``, ``1.5B``,
``300B``, ``2T``, ``1e9``).  Every problem is raised as
:class:`~scalinglaws.data.errors.InputError` naming the file, the data row and the column.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from scalinglaws.data.errors import InputError, OptionError
from scalinglaws.data.schema import CANONICAL, DEFAULTS, range_error
from scalinglaws.data.units import expand_suffixes, parse_number

#: Aliases recognised case-insensitively (spaces, dashes and dots count as underscores).
#: Only names that cannot mean anything else: a column called ``size``, ``model_size`` (often
#: in millions), ``data``, ``n``, ``d`` (``d_model``?), ``l`` or ``g`` is not guessed at; map it
#: with ``--map COLUMN=canonical`` (``mapping=`` in Python).
ALIASES = {
    "params": "N", "n_params": "N", "nparams": "N", "parameters": "N", "num_params": "N",
    "non_embedding_params": "N",
    "tokens": "D", "train_tokens": "D", "n_tokens": "D", "training_tokens": "D", "num_tokens": "D",
    "loss": "loss", "val_loss": "loss", "eval_loss": "loss", "final_loss": "loss",
    "validation_loss": "loss", "test_loss": "loss",
    "w_bits": "w_bits", "wbits": "w_bits", "weight_bits": "w_bits", "bits_w": "w_bits",
    "a_bits": "a_bits", "abits": "a_bits", "act_bits": "a_bits", "activation_bits": "a_bits",
    "kv_bits": "kv_bits", "kvbits": "kv_bits", "cache_bits": "kv_bits",
    "ptq_bits": "ptq_bits", "post_bits": "ptq_bits",
    "group_size": "group_size", "groupsize": "group_size",
    "sparsity": "sparsity", "weight_sparsity": "sparsity",
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
                raise OptionError("mapping", f"{item!r}: expected COLUMN=canonical, for example size=N")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    out = {}
    for k, v in pairs:
        if v not in CANONICAL:
            raise OptionError("mapping", f"{k}={v}: {v!r} is not a canonical column; "
                             f"choose from {', '.join(CANONICAL)}")
        out[k] = v
    return out


def read_table(path: str) -> pd.DataFrame:
    """A CSV (``.tsv``/``.tab``: tabs) or Parquet file as read, every CSV cell a string; one clear error otherwise."""
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
        required column are an error, except precision columns (empty = 16 bits) and
        ``sparsity`` (empty = 0, dense).
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
        raw = read_table(os.fspath(source))
    if raw.shape[0] == 0:
        raise InputError("the table has no data rows", file=label)

    rename = parse_mapping(mapping)
    unknown = [k for k in rename if k not in raw.columns]
    if unknown:
        raise OptionError("mapping", f"{unknown[0]}={rename[unknown[0]]}: the table has no column "
                                     f"{unknown[0]!r} (it has: {', '.join(map(str, raw.columns))})", file=label)
    columns, twins = {}, []
    for col in raw.columns:
        canon = rename.get(col) or canonical_name(col)
        target = canon or col
        if target in columns.values():
            first = next(k for k, v in columns.items() if v == target)
            if not _same_cells(raw[first], raw[col]):
                i = _first_difference(raw[first], raw[col])
                raise InputError(f"columns '{first}' and '{col}' both stand for '{target}' and differ "
                                 f"({raw[first].iloc[i]!r} against {raw[col].iloc[i]!r}); keep one, or rename one "
                                 f"(--map COLUMN=canonical, or mapping= in Python)", file=label, row=i + 1)
            twins.append(col)  # the same values twice: one copy is enough
            continue
        columns[col] = target
    df = raw.drop(columns=twins).rename(columns=columns)

    required = list(required)
    missing = [c for c in required if c not in df.columns]
    if missing:
        have = ", ".join(str(c) for c in raw.columns)
        raise InputError(f"missing required column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)} (the file has: {have}; "
                         f"rename a column to it with --map COLUMN=canonical, or mapping= in Python)", file=label)

    inverse = {v: k for k, v in columns.items()}
    for col in CANONICAL:
        if col not in df.columns:
            continue
        src = inverse.get(col, col)
        default = DEFAULTS.get(col)
        values = _to_number(df[col], label, src, default)
        for i, v in enumerate(values):
            if np.isnan(v):
                if col in required:
                    raise InputError("empty cell in a required column", file=label, row=i + 1, column=src)
                continue
            why = range_error(col, v)
            if why:
                raise InputError(why, file=label, row=i + 1, column=src)
        df[col] = values
    for col in df.columns:
        if col not in CANONICAL:
            df[col] = _maybe_numeric(df[col])
    df.index = pd.RangeIndex(1, len(df) + 1, name="row")
    df.attrs["source"] = label
    # which of the table's columns became which canonical one (``params -> N``), for fit reports
    df.attrs["columns"] = {str(k): v for k, v in columns.items() if v in CANONICAL and str(k) != v}
    if twins:
        df.attrs["columns"].update({str(t): f"{columns.get(t) or canonical_name(t) or rename.get(t)} (same values "
                                            f"as another column)" for t in twins})

    if where:
        df = subset(df, select(df, where, "where"))
        if df.empty:
            raise OptionError("where", f"{where!r} leaves no runs", file=label)
    if exclude_top:
        if exclude_top < 0:
            raise OptionError("exclude_top", f"must be >= 0, got {exclude_top}")
        if "loss" not in df.columns:
            raise OptionError("exclude_top", "needs a 'loss' column", file=label)
        if exclude_top >= len(df):
            raise OptionError("exclude_top", f"{exclude_top} would drop all {len(df)} runs", file=label)
        df = df.drop(df["loss"].nlargest(exclude_top).index)
    df.attrs["source"] = label
    return df


def _cell_values(series: pd.Series) -> list:
    out = []
    for cell in series.tolist():
        try:
            out.append(parse_number(cell, "value"))
        except InputError:
            out.append(str(cell).strip())
    return out


def typed_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose run-table columns (canonical names and their aliases) written as text numbers
    (suffixes allowed: ``1B``; empty cells allowed) are floats, for a typed format such as Parquet; every
    other column as it is (an identifier such as ``007`` stays text)."""
    out = df.copy()
    for c in out.columns:
        if canonical_name(str(c)) is None:
            continue
        if out[c].dtype != object and not pd.api.types.is_string_dtype(out[c]):
            continue
        try:
            out[c] = _to_number(out[c], "", str(c), None)   # empty cells: NaN
        except InputError:
            continue                                      # a cell that is not a number: the column as given
    return out


def _same_cells(a: pd.Series, b: pd.Series) -> bool:
    """Whether two columns hold the same values (as numbers where they are numbers)."""
    return _first_difference(a, b) is None


def _first_difference(a: pd.Series, b: pd.Series) -> int | None:
    for i, (x, y) in enumerate(zip(_cell_values(a), _cell_values(b))):
        same = x == y or (isinstance(x, float) and isinstance(y, float) and (math.isnan(x) and math.isnan(y)
                                                                              or math.isclose(x, y, rel_tol=1e-12)))
        if not same:
            return i
    return None


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


def canonical_table(runs, required=(), *, mapping=None, where: str | None = None,
                    exclude_top: int = 0) -> pd.DataFrame:
    """A canonical run table (``runs`` a path or a DataFrame), filtered as a fit filters it.

    A table that is already canonical (from :func:`load_runs`) is used as it is when no
    filter is asked for; its ``required`` columns are still checked.
    """
    if isinstance(runs, pd.DataFrame) and "source" in runs.attrs and not (where or exclude_top or mapping):
        missing = [c for c in required if c not in runs.columns]
        if missing:
            raise InputError(f"missing required column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}", file=runs.attrs.get("source"))
        return runs
    return load_runs(runs, mapping=mapping, required=required, where=where, exclude_top=exclude_top)


def subset(table: pd.DataFrame, mask) -> pd.DataFrame:
    """Rows of ``table`` where ``mask`` holds, keeping the table's attributes (its source)."""
    out = table[np.asarray(mask, dtype=bool)]
    out.attrs.update(table.attrs)
    return out


#: what a condition may contain, said in every message about a bad one
CONDITION_HELP = ("a condition compares column names and numbers (suffixes allowed: 1B, 300B) with "
                  "<, <=, ==, !=, >=, >, joined by and, or, not; + - * / may combine them, e.g. \"N >= 1e9 and D < 20*N\"")

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Mod: "%", ast.FloorDiv: "//",
        ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.Invert: "~", ast.USub: "-", ast.UAdd: "+",
        ast.Not: "not"}
_ALLOWED_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.BitAnd, ast.BitOr, ast.USub, ast.UAdd, ast.Not, ast.Invert)
_COMPARE = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


def check_condition(expression: str, columns, option: str = "where", file: str | None = None) -> None:
    """Refuse, in plain words, an expression that is not a condition on these columns (see CONDITION_HELP)."""
    text = expand_suffixes(str(expression))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        at = (f" near {exc.text.strip()[max(0, (exc.offset or 1) - 1):][:12]!r}"
              if exc.text and text == str(expression) else "")
        raise OptionError(option, f"{expression!r} cannot be read{at}: {CONDITION_HELP}", file=file) from None
    names = {str(c) for c in columns}

    def bad(what):
        raise OptionError(option, f"{expression!r}: {what} is not allowed; {CONDITION_HELP}", file=file)

    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)):
            continue  # operators are checked at the node that uses them
        if isinstance(node, ast.BoolOp):
            continue
        if isinstance(node, (ast.BinOp, ast.UnaryOp)):
            if not isinstance(node.op, _ALLOWED_OPS):
                bad(f"'{_OPS.get(type(node.op), type(node.op).__name__)}'")
            continue
        if isinstance(node, ast.Compare):
            for op in node.ops:
                if not isinstance(op, _COMPARE):
                    bad(f"'{type(op).__name__}'")
            continue
        if isinstance(node, ast.Name):
            if node.id not in names:
                near = difflib.get_close_matches(node.id, sorted(names), n=1)
                raise OptionError(option, f"{expression!r}: no column {node.id!r}"
                                          + (f" (did you mean {near[0]!r}?)" if near else "")
                                          + f"; the runs have: {', '.join(sorted(names))}", file=file)
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)) \
                and not isinstance(node.value, bool):
            continue
        bad({ast.Call: "a function call", ast.Attribute: "an attribute", ast.Subscript: "indexing",
             ast.NamedExpr: "':='", ast.Lambda: "a lambda", ast.IfExp: "'if ... else'"}.get(
            type(node), f"'{type(node).__name__}'"))
    top = tree.body
    if not isinstance(top, (ast.Compare, ast.BoolOp)) and not (isinstance(top, ast.UnaryOp)
                                                               and isinstance(top.op, ast.Not)):
        raise OptionError(option, f"{expression!r} is not a condition on the runs; {CONDITION_HELP}", file=file)


def select(table: pd.DataFrame, expression: str, option: str = "holdout") -> np.ndarray:
    """Boolean mask of the runs matching a condition such as ``"N >= 1B and D < 300B"`` (see CONDITION_HELP).

    ``option`` names the option the expression came from, for messages.
    """
    check_condition(expression, table.columns, option, table.attrs.get("source"))
    try:
        mask = table.eval(expand_suffixes(expression))
        mask = np.asarray(mask, dtype=bool)
    except Exception as exc:  # pandas raises many types for a bad expression
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OptionError(option, f"{expression!r}: {msg}", file=table.attrs.get("source")) from None
    if mask.shape != (len(table),):
        raise OptionError(option, f"{expression!r} is not a condition on the runs (e.g. \"N>=1e9\")")
    return mask
