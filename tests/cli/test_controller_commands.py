"""`serve controller start | status | stop` as an operator runs them."""

from __future__ import annotations

import json

from tests.support.processes import Env, processes_of


def test_start_status_stop(sqlite_env: Env) -> None:
    env = sqlite_env
    assert env.serve("controller", "start").returncode == 0
    status = json.loads(env.serve("controller", "status", "--json").stdout)
    assert status["running"] is True
    assert status["url"] == env.url and status["pid"] > 0
    assert status["database"].startswith("sqlite:///") and status["role"] == "leader"
    assert oct((env.home / "token").stat().st_mode & 0o777) == "0o600"

    assert env.serve("controller", "stop").returncode == 0
    after = json.loads(env.serve("controller", "status", "--json").stdout)
    assert after["running"] is False
    assert not [p for p in processes_of(env.home) if "controller.daemon" in p]


def test_start_twice_is_harmless(sqlite_env: Env) -> None:
    assert sqlite_env.serve("controller", "start").returncode == 0
    again = sqlite_env.serve("controller", "start")
    assert again.returncode == 0 and sqlite_env.url in again.stdout
    assert len([p for p in processes_of(sqlite_env.home) if "controller.daemon" in p]) == 1
