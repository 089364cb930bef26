"""Fixtures for hostile-input tests: one controller shared by a module's read-mostly probes."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import ControllerProcess, Env, kill_everything_of


@pytest.fixture(scope="module")
def shared_controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """A controller on SQLite for a whole module: hostile requests must leave it serving, so
    one process taking them all is itself part of what the module checks."""
    root = tmp_path_factory.mktemp("hostile")
    env = Env(home=root / "serve-home", database_url=f"sqlite:///{root / 'serve.db'}")
    env.home.mkdir()
    proc = ControllerProcess(env).start()
    yield proc
    proc.kill()
    kill_everything_of(env.home)


@pytest.fixture(scope="module")
def api(shared_controller: ControllerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_controller.env.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def auth(shared_controller: ControllerProcess) -> dict[str, str]:
    return shared_controller.env.auth()


@pytest.fixture
def new_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A fresh installation whose SERVE_HOME does not exist yet (the controller makes it);
    every process started for it is killed afterwards."""
    root = tmp_path_factory.mktemp("fresh")
    env = Env(home=root / "serve-home", database_url=f"sqlite:///{root / 'serve.db'}")
    yield env
    kill_everything_of(env.home)
