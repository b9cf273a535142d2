"""Published headline numbers, one module per paper, each with a list ``ROWS`` of :class:`Row`.

``python examples/reproduce_papers.py`` runs every row's toolkit command and writes
docs/papers.md; ``tests/test_papers.py`` runs the same checks.  A row is a number the paper
states (in a table, a figure or the text), where it states it, the ``scalinglaws`` command
that reproduces it, how to read the value from the command's ``--json`` output, and the
relative tolerance the row is held to.  A row that the toolkit does not reproduce is kept
with ``expect="differs"`` and the reason, so the table says so honestly.  A row whose value
the paper does not print (its formula worked out by hand at chosen inputs, to check how the
toolkit reads the formula) says so with ``published=False`` and is counted apart, and so is a
row whose preset was fitted to that very number (``fitted=True``: agreement then checks the
fit, not a prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Row:
    paper: str                 # short citation, e.g. "Kumar et al. 2024"
    quantity: str              # what the number is, with its unit
    value: float               # the paper's number, in the unit of ``quantity``
    where: str                 # "Table 2", "Fig. 4", "Eq. 11", "Sec. 4.3 text"
    command: str | tuple[str, ...]      # arguments of ``scalinglaws`` (``--json`` is added); several: a tuple
    pick: str | Callable[[Any], float]  # dotted key into the JSON ("bits", "rows.0.loss") or a function of it
    #                                     (of the list of JSONs when ``command`` is a tuple)
    tol: float = 0.02          # relative tolerance |toolkit/paper - 1|
    expect: str = "agrees"     # "agrees", or "differs" for a number we know we do not reproduce
    note: str = ""             # how the number follows; for "differs", why
    needs: str = ""            # a file the command reads, relative to the checkout (e.g. ../shared/...)
    published: bool = True     # False: not a number the paper prints, but its formula worked out by hand
    fitted: bool = False       # True: the preset was fitted (here) to this very number, so agreement checks
    #                            that fit, not a prediction; counted apart


def pick(data: Any, key: str) -> float:
    """``data`` indexed by a dotted key: names of dict entries and list positions."""
    for part in key.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return float(data)
