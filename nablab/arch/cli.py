"""``nablab arch``: the per-layer summary of a spec, as a table, JSON or CSV."""

from __future__ import annotations

import json as _json
import sys

import typer

from .shapes import ShapeError
from .spec import SpecError
from .summary import summary


def arch_command(
    spec: str = typer.Argument(..., help="Layers in VGG notation, e.g. "
                               "'input 3x112x112, conv3-64, maxpool2, fc-100'."),
    input: str | None = typer.Option(None, "--input", help="Input shape such as 3x112x112 "
                                     "(NxCxHxW adds a batch); overrides the spec's 'input'."),
    json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    csv: bool = typer.Option(False, "--csv", help="Print one CSV line per layer."),
) -> None:
    """Shapes, parameters, neurons, connections, MACs and receptive fields, layer by layer.

    Example: nablab arch "input 3x112x112, conv3-64, maxpool2, conv3-128, maxpool2, fc-100, softmax"
    """
    if json and csv:
        typer.echo("error: choose one of --json and --csv", err=True)
        raise typer.Exit(2)
    try:
        s = summary(spec, input_shape=input)
    except (SpecError, ShapeError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if json:
        typer.echo(_json.dumps(s.to_dict(), indent=2))
    elif csv:
        sys.stdout.write(s.to_csv())
    else:
        typer.echo(str(s))
