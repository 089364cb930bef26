"""A controller runtime in the test's own process, without its schedule: nothing ticks unless
the test says so, so rows written for instances that do not exist stay as written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from common.clock import Clock
from controller.runtime import ControllerRuntime
from controller.settings import Settings
from tests.support.processes import lb_port_block


@contextmanager
def in_process_runtime(
    db_url: str, home: Path, clock: Clock | None = None
) -> Iterator[ControllerRuntime]:
    settings = replace(
        Settings.from_env({}),
        home=home,
        database_url=db_url,
        lb_port_start=lb_port_block(),
        clouds=("local",),
    )
    runtime = ControllerRuntime(settings, clock)
    runtime.start(schedule=False)
    try:
        yield runtime
    finally:
        runtime.stop()
