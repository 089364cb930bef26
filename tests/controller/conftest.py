"""A real controller process per test module and database kind, for tests of its REST API
(each test uses its own service names, so they share it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import database_url
from tests.support.processes import ControllerProcess, Env, kill_everything_of


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def controller(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControllerProcess]:
    root = tmp_path_factory.mktemp("controller")
    with database_url(request.param, root) as url:
        env = Env(home=root / "serve-home", database_url=url)
        env.home.mkdir()
        proc = ControllerProcess(env).start()
        yield proc
        proc.kill()
        kill_everything_of(env.home)
