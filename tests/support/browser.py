"""A real browser for the dashboard's tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here, so the tests launch the system's
chromium (`SERVE_TEST_CHROMIUM`, default `/usr/bin/chromium`). Without it, or without the
`playwright` package, the tests skip with a message saying how to enable them;
`SERVE_TEST_REQUIRE_BROWSER=1` (set by `.ci/run`) makes that a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

HOW = (
    "install Debian's chromium (`apt-get install -y --no-install-recommends chromium`) and "
    "the dev dependencies (`pip install -e '.[dev]'`, which has playwright), or point "
    "SERVE_TEST_CHROMIUM at a chromium binary"
)


def chromium_path() -> str | None:
    wanted = os.environ.get("SERVE_TEST_CHROMIUM") or "/usr/bin/chromium"
    return wanted if Path(wanted).is_file() else shutil.which("chromium")


def _unavailable(why: str) -> NoReturn:
    message = f"browser tests need a browser: {why}; {HOW}"
    if os.environ.get("SERVE_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (SERVE_TEST_REQUIRE_BROWSER=1)")
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless chromium for the length of the block, or a skip (a failure in CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    path = chromium_path()
    if path is None:
        _unavailable("no chromium at /usr/bin/chromium or on PATH")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_dir(fallback: Path) -> Path:
    """Where screenshots go: `SERVE_DASHBOARD_SCREENSHOTS` (the README's are made with
    `SERVE_DASHBOARD_SCREENSHOTS=docs`), else the test's own temporary directory."""
    wanted = os.environ.get("SERVE_DASHBOARD_SCREENSHOTS")
    target = Path(wanted) if wanted else fallback
    target.mkdir(parents=True, exist_ok=True)
    return target
