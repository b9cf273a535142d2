"""Numbers with unit suffixes: ``125M`` parameters, ``300B`` tokens, ``16GB`` of memory.

>>> parse_number("1.5B")
1500000000.0
>>> parse_bytes("16GiB")
17179869184.0
"""

from __future__ import annotations

import math
import numbers
import re

from scalinglaws.data.errors import InputError

#: Decimal multipliers accepted after a number (case-insensitive).
SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15}
#: how error messages name them
SUFFIX_NOTE = "suffixes k, M, B (or G), T, P are allowed"
_BYTE_UNITS = {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
               "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NUM_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]?)\s*$")
_BYTES_RE = re.compile(rf"^\s*({_NUMBER})\s*([a-zA-Z]*)\s*$")
#: A number with a suffix inside an expression such as ``N>=100M``.
SUFFIXED_TOKEN = re.compile(rf"(?<![\w.])({_NUMBER})([kKmMbBgGtTpP])(?![\w])")


def parse_number(value, what: str = "value") -> float:
    """Parse ``value`` (a number or a string such as ``'1.5B'``, ``'2e9'``, ``'300b'``) to float.

    Raises :class:`~scalinglaws.data.errors.InputError` naming ``what`` when it is not a number.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    m = _NUM_RE.match(text)
    if not m or m.group(2).lower() not in SUFFIXES:
        lowered = text.strip().lower()
        if lowered in ("inf", "+inf", "-inf", "nan"):
            return float(lowered)
        raise InputError(f"{what} {text!r} is not a number ({SUFFIX_NOTE})")
    return float(m.group(1)) * SUFFIXES[m.group(2).lower()]


def parse_bytes(value, what: str = "memory") -> float:
    """Parse a memory size: ``'16GB'`` (1e9 bytes each), ``'16GiB'`` (2**30), or plain bytes."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    m = _BYTES_RE.match(str(value))
    if not m or m.group(2).lower() not in _BYTE_UNITS:
        raise InputError(f"{what} {value!r} is not a size in bytes (examples: 16GB, 80GiB, 1.2e10)")
    return float(m.group(1)) * _BYTE_UNITS[m.group(2).lower()]


def expand_suffixes(expression: str) -> str:
    """Rewrite ``N>=100M`` as ``N>=100000000.0`` so a filter may use suffixes."""
    return SUFFIXED_TOKEN.sub(lambda m: repr(float(m.group(1)) * SUFFIXES[m.group(2).lower()]), expression)


_HUMAN_COUNTS = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3), ("", 1.0))
_HUMAN_BYTES = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), (" bytes", 1.0))  # "bytes": "B" is billion


def human(x: float, digits: int = 3, units=_HUMAN_COUNTS) -> str:
    """Short human form of a count: 6.7e10 -> '67B', 1.4e12 -> '1.4T' (``units``: (suffix, scale), largest first)."""
    if x is None or not math.isfinite(x):
        return str(x)
    if abs(x) >= 1000 * units[0][1]:  # past the largest unit: 4.17e+19, not 41708125T
        return f"{x:.{digits}g}" + units[-1][0]
    for unit, scale in units:
        if abs(x) >= scale or scale == 1.0:
            v = x / scale
            text = f"{v:.{digits}g}"
            if "e" in text:  # 200 with 2 digits: show '200', not '2e+02'
                text = f"{round(v):d}"
            return text + unit


def human_bytes(x: float, digits: int = 3) -> str:
    """Short form of a size in bytes, decimal units as :func:`parse_bytes` reads them: 8e9 -> '8GB', 512 -> '512 bytes'."""
    return human(x, digits, _HUMAN_BYTES)


def format_number(x) -> str:
    """A number for a table: up to 5 significant digits, scientific when very large or small."""
    if isinstance(x, numbers.Integral) and not isinstance(x, bool) and abs(x) < 1e6:
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.4g}"
    return f"{v:.5g}"
