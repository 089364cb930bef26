"""One clear line on stderr and a non-zero exit for every failure the user can act on."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from controller.client import ApiError, ControllerUnavailable
from controller.spec import SpecError

err_console = Console(stderr=True, highlight=False)


def wide_console() -> Console:
    """A console that does not fold tables to 80 columns when piped to a file or a pager."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal else 200)


F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def friendly(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as exc:
            raise fail(exc.summary()) from None
        except ApiError as exc:
            raise fail(exc.detail) from None
        except ControllerUnavailable as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
