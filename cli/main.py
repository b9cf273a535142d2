"""Entry point of the ``scalinglaws`` command.

Each group of commands lives in its own module with a ``register(app)`` function;
this file only assembles them and turns usage errors into one line and exit code 2.
"""

from __future__ import annotations

import sys

import typer
from typer import _click
from typer.core import TyperGroup

from scalinglaws import __version__


class Root(TyperGroup):
    """The top-level group: its own help is plain text (every command's summary in full), which
    spares ``scalinglaws --help`` the cost of loading rich's help renderer; each command keeps
    typer's rich help."""

    def format_help(self, ctx, formatter):
        return _click.core.Command.format_help(self, ctx, formatter)  # click's plain layout

    def format_commands(self, ctx, formatter):
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, (cmd.help or "").strip().split("\n")[0]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    cls=Root,
    name="scalinglaws",
    help="Fit and predict scaling laws for low-precision LLM training, and train small models for new points.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"scalinglaws {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """Fit and predict scaling laws for low-precision LLM training."""


def _register_all() -> None:
    from scalinglaws.cli import fit_cmds, optimal_cmds, train_cmds, trust_cmds
    fit_cmds.register(app)
    optimal_cmds.register(app)  # its commands are built from the registered laws on first use
    trust_cmds.register(app)
    train_cmds.register(app)  # imports torch only when a training command runs


_register_all()


def run(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv``; returns the exit code (used by tests).

    Usage errors (unknown option, missing argument, bad value) become one line on
    stderr and exit code 2.  (Typer may vendor its own click, so errors are
    recognised by their interface rather than their class.)
    """
    try:
        rv = app(args=argv, prog_name="scalinglaws", standalone_mode=False)
    except Exception as exc:  # noqa: BLE001 - re-raised below unless it is click's
        name = type(exc).__name__
        code = getattr(exc, "exit_code", None)
        if hasattr(exc, "format_message"):
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            message = exc.format_message() or (  # a group called without its command: the help is printed above
                f"'{ctx.command_path}' needs a command" if ctx is not None else "a command is missing")
            sys.stderr.write(f"error: {message}{where}\n")
            return 2 if code is None else code
        if name == "Exit":
            return 0 if code is None else code
        if name == "Abort":
            sys.stderr.write("error: aborted\n")
            return 130
        raise
    if isinstance(rv, int) and not isinstance(rv, bool):  # click returns an Exit's code here
        return rv
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    main()
