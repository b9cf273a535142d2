"""Errors that a user can act on.

Every problem with a user's input (a file, a table cell, an option) is raised as
:class:`InputError`.  Its message is one line that names the file, the row and the
column where that makes sense; the command line prints it and exits with code 2.
"""

from __future__ import annotations


class ScalingLawsError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(ScalingLawsError, ValueError):
    """Bad input: a file, a table cell, a law name or an option.

    Parameters
    ----------
    message : str
        What is wrong, in words a user understands.
    file : str, optional
        The file the problem is in.
    row : int, optional
        1-based *data* row (the first row under the header is 1).  The message also
        gives the spreadsheet line (data row + 1, the header being line 1).
    column : str, optional
        The column name as it appears in the file.
    """

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None):
        self.file, self.row, self.column, self.reason = file, row, column, message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"data row {row} (line {row + 1})")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(": ".join([", ".join(where), message]) if where else message)


class FitError(ScalingLawsError):
    """A fit could not be carried out at all (for example no finite start)."""
