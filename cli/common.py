"""Shared pieces of the command line: error handling, printing, option parsing."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from typing import Any, Callable

import typer
from rich.console import Console
from rich.markup import escape

from scalinglaws.data.errors import OptionError, ScalingLawsError

console = Console()
err_console = Console(stderr=True)


#: the option that silences progress, shared by every long command
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")


def progress_bar(enabled: bool = True):
    """A transient progress bar on stderr (off for --json, and when stderr is not a terminal)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), console=err_console, transient=True,
                    disable=not enabled or not err_console.is_terminal)


#: library option names whose command-line flag is not ``--`` + the name with dashes
FLAGS = {"mapping": "--map", "n": "--bootstrap", "kind": "--interval", "by": "--leave-one-out",
         "options": "the options", "law": "--law", "n_jobs": "--jobs"}


def flag(option: str) -> str:
    """The command-line flag of a library option name (``exclude_top`` -> ``--exclude-top``)."""
    return FLAGS.get(option) or "--" + option.replace("_", "-")


def fail(message: str, code: int = 2) -> None:
    """Print one error line to stderr and exit with ``code`` (2: bad input)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func: Callable) -> Callable:
    """Turn the package's own errors into one line on stderr and exit code 2."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OptionError as exc:
            fail(exc.as_flag(flag))
        except ScalingLawsError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", code=130)
    return wrapper


def to_jsonable(obj: Any) -> Any:
    """Plain-data copy of ``obj`` for ``--json`` (numpy scalars, NaN -> null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2) + "\n")


def fmt(x: Any) -> str:
    """A number for a table (see :func:`scalinglaws.data.units.format_number`), plain text otherwise."""
    if isinstance(x, bool) or x is None:
        return str(x)
    from scalinglaws.data.units import format_number
    return format_number(x)


_COUNT = re.compile(r"^(N|D)(_(opt|crit|fp|qat|eff|total|max))?$")


def is_count(name: str) -> bool:
    """Columns holding parameter or token counts (N, D, N_opt, D_crit, D_fp, ...)."""
    return bool(_COUNT.match(str(name)))


class FittedTable:
    """A table that never cuts what it prints: numbers keep every digit (their columns do not
    wrap), text wraps at spaces, and when the columns cannot fit the terminal (or the 80
    columns of piped output) the rows are printed one per paragraph, ``column: value``."""

    def __init__(self, title, columns, cells, numeric):
        self.title, self.columns, self.cells, self.numeric = title, columns, cells, numeric

    def _widths(self) -> list[int]:
        """The narrowest each column can be without cutting: whole numbers, whole words."""
        out = []
        for j, (c, num) in enumerate(zip(self.columns, self.numeric)):
            cells = [r[j] for r in self.cells if j < len(r)]
            words = [w for v in [c] + cells for w in str(v).split()] or [""]
            out.append(max([len(w) for w in words] + ([len(v) for v in cells] if num else [])))
        return out

    def _grid(self, widths):
        from rich.table import Table
        t = Table(title=self.title, title_justify="left", header_style="bold")
        for c, num, w in zip(self.columns, self.numeric, widths):
            t.add_column(c, justify="right" if num else "left", no_wrap=num, min_width=w)
        for r in self.cells:
            t.add_row(*r)
        return t

    def __rich_console__(self, console, options):
        from rich.text import Text
        widths = self._widths()
        if sum(widths) + 3 * len(widths) + 1 <= options.max_width:  # the box: 3 characters a column, and 1
            yield self._grid(widths)
            return
        if self.title:
            yield Text(self.title, style="bold")
        for r in self.cells:
            yield Text("  ".join(f"{c}: {v}" for c, v in zip(self.columns, r)))


def table(title: str | None, columns: list[str], rows: list[list[Any]]):
    """A table for the console (see :class:`FittedTable`); parameter and token counts shown as 70B, 1.4T."""
    from scalinglaws.data.units import human
    rows = [[human(float(v)) if is_count(c) and isinstance(v, (int, float)) and not isinstance(v, bool) else v
             for c, v in zip(columns, r)] for r in rows]
    numeric = [not any(isinstance(r[j], str) for r in rows if j < len(r)) for j in range(len(columns))]
    return FittedTable(title, list(map(str, columns)), [[fmt(v) for v in r] for r in rows], numeric)


def _made_by_us(path: str, kind: str) -> bool:
    """Whether the existing ``path`` is an output of ours of this ``kind`` (so writing over it is expected)."""
    import os
    try:
        if kind == "report":
            with open(os.path.join(path, "report.html"), "rb") as fh:
                return b"Made by scalinglaws" in fh.read()
        if kind == "fit":
            from scalinglaws.fitting.result import load_fit
            load_fit(path)
            return True
        if kind == "figure":
            from scalinglaws.viz.plotting import is_our_figure
            return is_our_figure(path)
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        if kind == "table":
            if path.lower().endswith((".parquet", ".pq")):
                import pandas as pd
                return any(str(c).endswith("_pred") for c in pd.read_parquet(path).columns)
            first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
            return any(c.strip().endswith("_pred") for c in first.replace("\t", ",").split(","))
    except (OSError, ScalingLawsError, ValueError):
        return False
    return False


def guard_overwrite(path: str | None, flag: str, kind: str, force: bool) -> None:
    """Refuse to write over an existing file (or report folder) this command did not make, unless ``--force``.

    The commands write over their own outputs only: a fit.json, a figure carrying the toolkit's signature in
    its metadata (``scalinglaws.viz.plotting.SIGNATURE``), a table
    of predictions (a ``*_pred`` column), a report folder; anything else needs ``--force``.
    """
    import os
    from scalinglaws.data.errors import InputError
    if path is None or force or not os.path.exists(path):
        return
    if kind == "report" and os.path.isdir(path) and not os.listdir(path):
        return
    if not _made_by_us(path, kind):
        what = {"fit": "a fit file", "figure": "a figure this toolkit drew", "table": "a table of predictions",
                "report": "a report folder this toolkit wrote"}[kind]
        raise InputError(f"{flag} {path} exists and is not {what}; refusing to write over it (give --force to "
                         f"replace it)")


def parse_assignments(items: list[str] | None, option: str) -> dict[str, float]:
    """``["alpha=0.3", "E=1.7"]`` -> ``{"alpha": 0.3, "E": 1.7}`` (suffixes allowed)."""
    from scalinglaws.data.errors import InputError
    from scalinglaws.data.units import parse_number
    out: dict[str, float] = {}
    for item in items or []:
        if "=" not in item:
            raise OptionError(option, f"{item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = parse_number(v.strip(), k.strip())
        except InputError:
            raise OptionError(option, f"{k.strip()}: {v.strip()!r} is not a number") from None
        if out[k.strip()] != out[k.strip()]:
            raise OptionError(option, f"{k.strip()}: {v.strip()!r} is not a number")
    return out


def print_caveats(caveats: list[dict]) -> None:
    """One line beside printed bootstrap intervals when the fit was warned about its bootstrap (the warnings'
    first clauses; ``scalinglaws fit`` and the fit's report print them whole)."""
    if not caveats:
        return
    said = "; ".join(f"{w['code']}: {re.split(r': |, ', w['message'], maxsplit=1)[0]}" for w in caveats)
    console.print(f"[yellow]note:[/] these intervals come from a bootstrap the fit was warned about ({escape(said)}), "
                  f"so they are less certain than they look; the fit's warnings say why", highlight=False)
