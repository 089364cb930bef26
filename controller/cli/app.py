"""The `serve` Typer application that command modules register on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="serve",
    help="Serve AI models on spot GPUs across clouds (SpotHedge).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """Serve AI models on spot GPUs across clouds (SpotHedge)."""
