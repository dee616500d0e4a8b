"""One way for the data/training sub-commands to stop on bad input: a plain, unwrapped error line."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console


def exit_with_error(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr (never wrapped, so paths stay whole) and exit with ``code``."""
    Console(stderr=True).print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)
