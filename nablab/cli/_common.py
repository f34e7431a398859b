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
