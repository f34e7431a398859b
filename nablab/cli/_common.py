"""What the command groups share: the consoles, the status colours, and failing with a message."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

#: Rich style of each claim status.
STATUS_STYLE = {
    "agrees": "green", "reproduced": "blue", "disagrees": "dark_orange", "needs-data": "magenta",
    "error": "bold red", "not-implemented": "dim",
}


def fail(message: str, code: int = 2) -> None:
    """Print an error (plain text, so carets stay aligned) and exit with ``code``."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def os_reason(exc: OSError) -> str:
    """An OSError in words: its reason and the path it concerns."""
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename else reason


# -- help text ------------------------------------------------------------------------
#
# Typer (0.29, with its own copy of Click in typer._click) prints each parameter's type in the
# Rich help panels: `display_type_rich` also for flags, which take no value, so `--resume <bool>`
# and `--help <bool>`; and its usage line writes a required argument as `{claim_id}`. These
# command classes keep Typer's help and change those two things: a flag shows no type, and the
# usage line writes arguments the way Click and man pages do (CLAIM_ID, [SHEETS]...).


def _argument_metavar(param) -> str:
    """An argument's name in capitals (its metavar when given), ``...`` after one that repeats."""
    name = param.metavar or param.name.upper()
    return name if param.nargs == 1 or name.endswith("...") else name + "..."


def _usage_piece(param) -> str:
    """An argument in the usage line: ``CLAIM_ID``, ``[SHEETS]...`` (optional and repeatable)."""
    name = _argument_metavar(param).removesuffix("...")
    piece = name if param.required else f"[{name}]"
    return piece if param.nargs == 1 else piece + "..."


class _HelpText:
    """What both command classes change: flags without a type, arguments in capitals."""

    def get_params(self, ctx):
        from typer.core import TyperArgument, TyperOption

        params = super().get_params(ctx)
        for p in params:
            if isinstance(p, TyperOption) and (p.is_flag or p.count) and p.metavar is None:
                p.metavar = ""          # display_type_rich prints the metavar, if any, for the type
            elif isinstance(p, TyperArgument) and p.metavar is None:
                p.metavar = _argument_metavar(p)
        return params

    def collect_usage_pieces(self, ctx):
        from typer.core import TyperArgument

        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            pieces.extend([_usage_piece(p)] if isinstance(p, TyperArgument) else p.get_usage_pieces(ctx))
        if getattr(self, "subcommand_metavar", None):
            pieces.append(self.subcommand_metavar)
        return pieces


class Command(_HelpText, typer.core.TyperCommand):
    """Every ``nablab`` command's class (``app.command(cls=Command)``): see the note above.

    >>> from typer.testing import CliRunner
    >>> demo = typer.Typer()
    >>> @demo.command(cls=Command)
    ... def show(claim_id: str, quick: bool = typer.Option(False, "--quick")):
    ...     '''Show a claim.'''
    >>> text = CliRunner().invoke(demo, ["--help"], env={"COLUMNS": "80"}).output
    >>> "CLAIM_ID" in text.splitlines()[1], "<bool>" in text, "{" in text
    (True, False, False)
    """


class Group(_HelpText, typer.core.TyperGroup):
    """The class of ``nablab`` and its command groups (``typer.Typer(cls=Group)``)."""
