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
        text = ": ".join([", ".join(where), message]) if where else message
        # one line, whatever a file's names hold (a header with a line break, say)
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))


class FitError(ScalingLawsError):
    """A fit could not be carried out at all (for example no finite start)."""


class OptionError(InputError):
    """A bad value of a named option or parameter (``delta``, ``fix``, ``flops``).

    The message names the option as the library knows it (``"delta must be > 0"``);
    the command line shows it by its flag instead (``"--delta must be > 0"``).

    Parameters
    ----------
    option : str
        The parameter's name in Python (``"exclude_top"``, ``"N"``).
    reason : str
        What is wrong, continuing a sentence that starts with the option's name.
    takes : sequence of str, optional
        The options that would apply instead, named in the message the same way.
    """

    def __init__(self, option: str, reason: str, *, file: str | None = None, takes=None):
        self.option = option
        self.takes = tuple(takes) if takes is not None else None
        tail = "" if self.takes is None else f" (it takes: {', '.join(self.takes) or 'no options'})"
        super().__init__(f"{option} {reason}{tail}", file=file)
        self.reason = reason

    def as_flag(self, flag=None) -> str:
        """The message with the options shown as command-line flags (``--exclude-top``).

        ``flag`` maps an option name to its flag (default ``--`` + the name with dashes).
        """
        flag = flag or (lambda name: "--" + name.replace("_", "-"))
        head = f"{self.file}: " if self.file else ""
        tail = "" if self.takes is None else f" (it takes: {', '.join(map(flag, self.takes)) or 'no options'})"
        return f"{head}{flag(self.option)} {self.reason}{tail}"
