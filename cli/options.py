"""The fit options of the command line, declared once and shared by every command that fits.

:func:`fit_options` decorates a command whose function takes ``options`` (a
:class:`scalinglaws.fitting.options.FitOptions`): it puts ``--loss --delta --space
--starts --seed --where --exclude-top --fix --confirm --jobs`` (those asked for) in the command's
signature, with the library's own defaults, and hands the function one options object.
"""

from __future__ import annotations

import functools
import inspect
from typing import List, Optional

import typer

from scalinglaws.fitting import defaults

#: option name -> (python type, typer.Option) of every shared fit option
SHARED = {
    "loss": (str, typer.Option(defaults.LOSS, "--loss", metavar="huber|mse", help="huber or mse (summed over runs).")),
    "delta": (Optional[float], typer.Option(None, "--delta", help=f"Huber threshold on residuals (default "
                                                                  f"{defaults.HUBER_DELTA:g}; --loss huber only).")),
    "space": (str, typer.Option(defaults.SPACE, "--space", metavar="log|linear",
                                help="Residuals of log(loss) ('log') or of loss ('linear').")),
    "starts": (Optional[int], typer.Option(None, "--starts", metavar="K",
                                           help="K seeded random starts instead of the law's full grid.")),
    "seed": (int, typer.Option(defaults.SEED, "--seed", help="Seed for random starts and bootstrap resampling.")),
    "where": (Optional[str], typer.Option(None, "--where", metavar="EXPR",
                                          help="Keep runs matching, e.g. \"N>=1e8 and D<300B\".")),
    "exclude_top": (int, typer.Option(0, "--exclude-top", metavar="K", help="Drop the K highest-loss runs.")),
    "fix": (Optional[List[str]], typer.Option(None, "--fix", metavar="NAME=VALUE",
                                              help="Hold a parameter: NAME=VALUE (repeatable).")),
    "confirm": (int, typer.Option(defaults.CONFIRM, "--confirm", metavar="K",
                                  help="Converge more of the starts successive halving stopped while fewer than K "
                                       "reached the best optimum (0: never).")),
    "n_jobs": (Optional[int], typer.Option(None, "--jobs", metavar="K",
                                           help="Worker processes for the work that runs in fixed batches "
                                                "(bootstrap refits; more than 400 starts converging at once); "
                                                "default: every core; the numbers do not depend on it.")),
    "mapping": (Optional[List[str]], typer.Option(None, "--map", metavar="COLUMN=CANONICAL",
                                                  help="Rename a column: COLUMN=canonical (repeatable).")),
}

ALL = ("loss", "delta", "space", "starts", "seed", "where", "exclude_top", "fix", "confirm", "n_jobs")


def fit_options(*names: str, mapping: bool = True):
    """Decorate a command taking ``options`` (and ``mapping`` when asked) with the shared fit options ``names``."""
    names = names or ALL

    def decorate(func):
        sig = inspect.signature(func)
        params = [p for p in sig.parameters.values() if p.name not in ("options", "mapping")]
        tail = [p for p in params if p.kind == p.KEYWORD_ONLY]
        params = [p for p in params if p.kind != p.KEYWORD_ONLY]
        extra = list(names) + (["mapping"] if mapping else [])
        for n in extra:
            kind, default = SHARED[n]
            params.append(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                            annotation=kind))
        params += [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in tail]

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            bound = {k: kwargs.pop(k) for k in extra if k in kwargs}
            values = {k: v for k, v in bound.items() if k in names}
            options = make_options(values)
            if mapping:
                kwargs["mapping"] = bound.get("mapping")
            return func(*args, options=options, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)
        hints = dict(getattr(func, "__annotations__", {}))
        hints.pop("options", None)
        hints.pop("mapping", None)
        wrapper.__annotations__ = {**{k: v for k, v in hints.items() if k != "return"},
                                   **{n: SHARED[n][0] for n in extra}}
        return wrapper
    return decorate


def make_options(values: dict):
    """A FitOptions from the parsed command-line values (``--fix`` items parsed as NAME=VALUE)."""
    from scalinglaws.fitting.options import FitOptions
    from scalinglaws.cli.common import parse_assignments
    from scalinglaws.data.errors import OptionError
    values = dict(values)
    if values.get("delta") is None:
        values.pop("delta", None)          # the library's default
    elif values.get("loss", defaults.LOSS) == "mse":    # (a loss of another name is refused as such)
        raise OptionError("delta", f"is the Huber loss's threshold; --loss {values['loss']} has none")
    if "fix" in values:
        values["fix"] = parse_assignments(values["fix"], "fix")
    return FitOptions.of(None, **values)
