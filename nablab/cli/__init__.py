"""The ``nablab`` command line (also ``python -m nablab``): the app and its entry point.

The commands live by group, each module importing only what its commands need:
:mod:`~nablab.cli.lab` (``reproduce``, ``grade``, ``lab list|show|run``),
:mod:`~nablab.cli.tools` (``jacobian``, ``graph``, ``arch``) and
:mod:`~nablab.cli.train` (``train``). Nothing in the library imports this package.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["jacobian", "x * y", "--vars", "x,y", "--at", "2,3", "--json"]).exit_code
0
"""

from __future__ import annotations

import typer

from nablab.cli import lab, tools, train
from nablab.cli._common import Command, Group, console
from nablab.cli.tools import jacobians

__all__ = ["app", "main", "jacobians"]

app = typer.Typer(
    name="nablab",
    cls=Group,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lab_app = typer.Typer(
    cls=Group,
    help="List and run single lab experiments.\n\nExample: nablab lab list",
    no_args_is_help=True)
app.add_typer(lab_app, name="lab")


def _version(value: bool) -> None:
    if value:
        import nablab

        console.print(f"nablab {nablab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """nablab: automatic differentiation on NumPy and a lab that reproduces the problem sets' claims.

    Example: nablab jacobian "x * y + exp(x)" --vars x,y --at 1,2
    """


# The order here is the order of `nablab --help`.
app.command(cls=Command)(lab.reproduce)
app.command(cls=Command)(tools.jacobian)
app.command(cls=Command)(tools.graph)
lab_app.command("list", cls=Command)(lab.lab_list)
lab_app.command("show", cls=Command)(lab.lab_show)
app.command(cls=Command)(lab.grade)
lab_app.command("run", cls=Command)(lab.lab_run)
app.command("arch", cls=Command)(tools.arch_command)
app.command("train", cls=Command)(train.train_command)


def main() -> None:
    """Entry point of the ``nablab`` script."""
    app(prog_name="nablab")


if __name__ == "__main__":
    main()
