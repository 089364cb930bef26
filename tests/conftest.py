"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import database_url
from tests.support.processes import ControllerProcess, Env, kill_everything_of


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test against SQLite and against Postgres."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def serve_env(tmp_path: Path, db_url: str) -> Iterator[Env]:
    """An isolated installation; every process it started is killed afterwards."""
    env = Env(home=tmp_path / "serve-home", database_url=db_url)
    env.home.mkdir()
    yield env
    kill_everything_of(env.home)


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Iterator[Env]:
    """An installation on SQLite, for tests where the database makes no difference."""
    env = Env(home=tmp_path / "serve-home", database_url=f"sqlite:///{tmp_path / 'serve.db'}")
    env.home.mkdir()
    yield env
    kill_everything_of(env.home)


@pytest.fixture
def controller(serve_env: Env) -> Iterator[ControllerProcess]:
    proc = ControllerProcess(serve_env).start()
    yield proc
    proc.kill()


@pytest.fixture
def sqlite_controller(sqlite_env: Env) -> Iterator[ControllerProcess]:
    """A controller on SQLite, for behaviour that does not touch the database's kind."""
    proc = ControllerProcess(sqlite_env).start()
    yield proc
    proc.kill()
