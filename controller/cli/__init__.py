"""The `serve` command line: a client of the controller's REST API.

Each command group lives in its own module and registers itself on `app` when imported.
"""

from __future__ import annotations

import controller.cli.controller_commands
import controller.cli.down_command
import controller.cli.key_commands
import controller.cli.market_commands
import controller.cli.service_commands
import controller.cli.simulate  # noqa: F401
from controller.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
