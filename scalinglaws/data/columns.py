"""A run table as plain numpy columns: what a law reads, with no pandas behind it.

:class:`Columns` is the table layer's light form.  A law's ``design`` and ``predict``
take one (or anything :func:`as_columns` turns into one: a pandas DataFrame from
:func:`scalinglaws.load_runs`, or a dict of values), so that a prediction from numbers
on the command line or in Python never imports pandas.

Precision columns a table does not have read as their default
(:data:`scalinglaws.data.schema.DEFAULTS`: 16 bits; ``sparsity``: 0, dense), here and only here.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from scalinglaws.data.errors import InputError
from scalinglaws.data.schema import CANONICAL, DEFAULTS, range_error
from scalinglaws.data.units import SUFFIX_NOTE, parse_number


class Columns:
    """Equal-length float columns by name, where they came from, and each row's label.

    Parameters
    ----------
    data : mapping of name -> values
        1-D arrays (or scalars, broadcast to the common length; or strings with
        suffixes such as ``"70B"``).
    source : str
        What to call the table in messages (a file name, ``"<arguments>"``).
    rows : sequence, optional
        Each row's label in messages (the 1-based data row of a file); default 1..n.
    """

    __slots__ = ("_data", "source", "rows", "n")

    def __init__(self, data: Mapping[str, object], source: str = "<arguments>", rows=None):
        arrays = {str(k): _as_float_array(v, str(k), source) for k, v in data.items()}
        sizes = {a.size for a in arrays.values() if a.size != 1}
        if len(sizes) > 1:
            raise InputError("columns of different lengths: " + ", ".join(
                f"{k} has {a.size}" for k, a in arrays.items()), file=source)
        n = sizes.pop() if sizes else (1 if arrays else 0)
        self._data = {k: (np.full(n, a[0]) if a.size == 1 and n != 1 else a) for k, a in arrays.items()}
        for k in DEFAULTS:  # an empty precision cell means its default, as an absent column does
            if k in self._data and np.isnan(self._data[k]).any():
                self._data[k] = np.where(np.isnan(self._data[k]), DEFAULTS[k], self._data[k])
        self.source = source
        self.n = n
        self.rows = list(range(1, n + 1)) if rows is None else list(rows)

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> np.ndarray:
        """The column ``name``; an absent precision column reads as its default (16 bits; sparsity 0)."""
        if name in self._data:
            return self._data[name]
        if name in DEFAULTS:
            return np.full(self.n, DEFAULTS[name])
        raise InputError(f"missing column {name!r}", file=self.source)

    def __contains__(self, name: object) -> bool:
        """Whether the table has column ``name`` itself (defaults do not count)."""
        return name in self._data

    def __len__(self) -> int:
        return self.n

    @property
    def columns(self) -> list[str]:
        return list(self._data)

    def get(self, name: str, default=None):
        """The column, its default for precision columns, else ``default``."""
        if name in self._data or name in DEFAULTS:
            return self[name]
        return default

    def require(self, names: Iterable[str], who: str) -> None:
        """Refuse, naming them, the columns of ``names`` the table lacks (defaults count as present)."""
        missing = [c for c in names if c not in self._data and c not in DEFAULTS]
        if missing:
            raise InputError(f"{who} needs column{'s' if len(missing) > 1 else ''} "
                             f"{', '.join(repr(m) for m in missing)}", file=self.source)

    def error(self, message: str, i: int | None = None, column: str | None = None) -> InputError:
        """An InputError naming this table, the row at position ``i`` and ``column``."""
        row = None
        if i is not None:
            label = self.rows[int(i)]
            row = int(label) if isinstance(label, (int, np.integer)) else None
        return InputError(message, file=self.source, row=row, column=column)

    def check(self) -> "Columns":
        """Refuse a cell outside its canonical column's range (``N`` > 0, bits >= 1, ...), naming it."""
        for c, v in self._data.items():
            if c not in CANONICAL:
                continue
            for i, x in enumerate(v):
                if x != x:  # an empty cell
                    continue
                why = range_error(c, float(x))
                if why:
                    raise InputError(why, file=self.source, row=int(self.rows[i]) if self.n > 1 else None, column=c)
        return self

    def take(self, mask) -> "Columns":
        """The rows where ``mask`` holds (or the rows at the given positions)."""
        idx = np.asarray(mask)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Columns({k: v[idx] for k, v in self._data.items()}, self.source, [self.rows[int(i)] for i in idx])

    def __repr__(self) -> str:
        return f"Columns({', '.join(self._data)}; {self.n} rows from {self.source})"


#: non-canonical columns that may supply the group size of per-channel/per-token rows
HIDDEN_SIZE_COLUMNS = ("hidden_size", "d_model")


def group_sizes(cols, need: np.ndarray, who: str) -> np.ndarray:
    """G of each row (NaN where not needed); rows in ``need`` must have one.

    Empty cells are filled from a ``hidden_size``/``d_model`` column when there is one
    (per-channel / per-token quantization shares a scale over the hidden size).
    """
    cols = as_columns(cols)
    G = np.array(cols["group_size"], dtype=float) if "group_size" in cols else np.full(cols.n, np.nan)
    for col in HIDDEN_SIZE_COLUMNS:
        if col in cols:
            G = np.where(np.isnan(G), cols[col], G)
    if not np.any(need):
        return G
    if "group_size" not in cols and not any(c in cols for c in HIDDEN_SIZE_COLUMNS):
        raise InputError(f"{who} needs column 'group_size' (elements sharing one quantization "
                         f"scale) on quantized rows; for per-channel/per-token quantization use the "
                         f"hidden size", file=cols.source)
    bad = np.flatnonzero(need & ~(G >= 1))
    if bad.size:
        raise cols.error("a quantized row needs a group size >= 1 (for per-channel/per-token quantization "
                         "write the hidden size, or add a 'hidden_size' column)", int(bad[0]), "group_size")
    return G


def _as_float_array(values, name: str, source: str) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return np.atleast_1d(values.astype(float, copy=False)).reshape(-1)
    if isinstance(values, (str, bytes)) or np.isscalar(values):
        values = [values]
    out = []
    for v in values:
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            out.append(float(v))
        else:
            try:
                out.append(parse_number(v, name))
            except InputError:
                raise InputError(f"{name}: {v!r} is not a number ({SUFFIX_NOTE})",
                                 file=source) from None
    return np.asarray(out, dtype=float)


def as_table(runs, required: Iterable[str] = ()):
    """A run table from a DataFrame or Columns (as they are), a dict of values (a :class:`Columns`,
    without pandas; numbers or suffixed strings, scalars broadcast, ranges checked) or a path
    (read by :func:`scalinglaws.load_runs`, ``required`` columns checked)."""
    if isinstance(runs, Columns) or hasattr(runs, "to_numpy"):
        return runs
    if isinstance(runs, Mapping):
        return Columns(runs, source="<arguments>").check()
    from scalinglaws.data.runs import load_runs
    return load_runs(runs, required=tuple(required))


def as_columns(table) -> Columns:
    """A :class:`Columns` from a Columns, a dict of values, or a pandas DataFrame.

    From a DataFrame: every column whose cells are numbers (canonical columns and numeric
    extras such as ``hidden_size``), its ``attrs["source"]`` and, for a table from
    :func:`scalinglaws.load_runs`, its data rows as row labels.
    """
    if isinstance(table, Columns):
        return table
    if isinstance(table, Mapping):
        return Columns(table)
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):  # a pandas DataFrame
        data = {}
        for c in table.columns:
            col = table[c]
            if getattr(col, "dtype", None) is not None and col.dtype.kind in "fiub":
                data[str(c)] = col.to_numpy(dtype=float)
        attrs = getattr(table, "attrs", {}) or {}
        # the data rows of a table read by load_runs (its index is named "row"); 1..n otherwise
        rows = list(table.index) if getattr(table.index, "name", None) == "row" else None
        return Columns(data, str(attrs.get("source", "<table>")), rows)
    raise InputError(f"expected a run table (a DataFrame, or a dict of columns), got {type(table).__name__}")
