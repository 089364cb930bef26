"""`serve down` of several services or all of them, `serve status --endpoint`, and
`serve logs` following by default, as `sky serve` users type them."""

from __future__ import annotations

import fcntl
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO, ControllerProcess, Env, wait_until

EMPTY = """
service: {readiness_probe: /health, replicas: 0}
resources: {ports: 8080}
run: python3 -m http.server $SERVE_REPLICA_PORT
"""


def up(env: Env, *names: str) -> None:
    """Services created through the API (what is tested here is what comes after)."""
    for name in names:
        body = {"name": name, "yaml": EMPTY}
        resp = httpx.post(f"{env.url}/api/v1/services", json=body, headers=env.auth(), timeout=30)
        assert resp.status_code == 201, resp.text


def names(env: Env) -> list[str]:
    return sorted(s["name"] for s in httpx.get(f"{env.url}/api/v1/services", timeout=10).json())


def serve_with_stdin(env: Env, stdin: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with `stdin` piped in, or with no terminal and nothing to read (None)."""
    return subprocess.run(
        [sys.executable, "-m", "controller", *args],
        env=env.vars,
        cwd=REPO,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_down_takes_several_services_down_and_leaves_the_others(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a", "b", "c")
    out = env.serve("down", "a", "b")
    assert out.returncode == 0, out.stderr
    assert "Service a is down" in out.stdout and "Service b is down" in out.stdout
    assert names(env) == ["c"]


def test_down_with_one_unknown_name_takes_nothing_down(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a")
    out = env.serve("down", "a", "ghost")
    assert out.returncode == 1
    assert "no service named ghost; nothing was taken down" in out.stderr
    assert names(env) == ["a"]


def test_down_all_yes_takes_every_service_down_then_says_there_is_none(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a", "b")
    out = env.serve("down", "--all", "-y")
    assert out.returncode == 0, out.stderr
    assert names(env) == []
    again = env.serve("down", "--all")
    assert again.returncode == 0 and "No services to take down." in again.stdout


def test_down_all_asks_and_without_a_terminal_takes_nothing_down(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a", "b")
    refused = serve_with_stdin(env, None, "down", "--all")
    assert refused.returncode == 1
    assert "Take down 2 service(s): a, b?" in refused.stderr
    assert "nothing was taken down" in refused.stderr and "-y" in refused.stderr
    assert serve_with_stdin(env, "n\n", "down", "--all").returncode == 1
    assert names(env) == ["a", "b"]
    assert serve_with_stdin(env, "y\n", "down", "--all").returncode == 0
    assert names(env) == []


def test_down_refuses_names_beside_all_and_no_name_at_all(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a")
    both = env.serve("down", "a", "--all", "-y")
    assert both.returncode == 1 and "not both" in both.stderr
    neither = env.serve("down")
    assert neither.returncode == 1 and "serve down --all" in neither.stderr
    assert names(env) == ["a"]


def test_down_of_an_unknown_replica_names_it_and_where_to_look(
    sqlite_controller: ControllerProcess,
) -> None:
    env = sqlite_controller.env
    up(env, "a")
    out = env.serve("down", "a", "--replica-id", "7")
    assert out.returncode == 1
    assert "service a has no replica 7; `serve status a` lists its replicas" in out.stderr
    ghost = env.serve("down", "ghost", "--replica-id", "1")
    assert ghost.returncode == 1 and "no service named ghost" in ghost.stderr
    several = env.serve("down", "a", "b", "--replica-id", "1")
    assert several.returncode == 1 and "--replica-id takes one service" in several.stderr


def test_replica_down_needs_the_token(sqlite_controller: ControllerProcess) -> None:
    env = sqlite_controller.env
    up(env, "a")
    resp = httpx.delete(f"{env.url}/api/v1/services/a/replicas/1", timeout=10)
    assert resp.status_code == 401


def test_status_endpoint_prints_only_the_endpoint(sqlite_controller: ControllerProcess) -> None:
    env = sqlite_controller.env
    up(env, "a")
    wait_until(lambda: (env.status("a") or {}).get("status") != "CONTROLLER_INIT", "a first tick")
    out = env.serve("status", "--endpoint", "a")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{env.status('a')['endpoint']}\n"  # type: ignore[index]
    assert out.stdout.startswith("http://127.0.0.1:")
    unknown = env.serve("status", "--endpoint", "ghost")
    assert unknown.returncode == 1 and "no service named ghost" in unknown.stderr
    no_name = env.serve("status", "--endpoint")
    assert no_name.returncode == 1 and "serve status --endpoint NAME" in no_name.stderr


@pytest.fixture
def standby_controller(sqlite_env: Env) -> Iterator[ControllerProcess]:
    """A controller that never leads (the test holds the SQLite leader lock), so a service
    stays CONTROLLER_INIT: no tick, no load balancer."""
    lock_path = Path(sqlite_env.database_url.removeprefix("sqlite:///")).with_suffix(".leader")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = ControllerProcess(sqlite_env).start()
        yield proc
        proc.kill()


def test_status_endpoint_fails_until_the_load_balancer_is_started(
    standby_controller: ControllerProcess,
) -> None:
    env = standby_controller.env
    up(env, "a")
    out = env.serve("status", "--endpoint", "a")
    assert out.returncode == 1 and out.stdout == ""
    assert "a has no endpoint yet: the controller has not started its load balancer" in out.stderr
    assert "(CONTROLLER_INIT)" in out.stderr


def test_logs_no_follow_prints_the_log_and_exits(sqlite_controller: ControllerProcess) -> None:
    env = sqlite_controller.env
    log = env.home / "logs" / "controller.log"
    with log.open("a") as fh:
        fh.write("marker-before\n")
    out = env.serve("logs", "any", "--controller", "--no-follow", timeout=30)
    assert out.returncode == 0 and "marker-before" in out.stdout


@pytest.mark.parametrize("flags", [[], ["-f"], ["--follow"]])
def test_logs_follow_by_default_and_print_what_is_written_later(
    sqlite_controller: ControllerProcess, flags: list[str]
) -> None:
    env = sqlite_controller.env
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "logs", "any", "--controller", *flags],
        env=env.vars,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        output = Output(proc)
        wait_until(lambda: output.has("\n"), "the log so far", 30)
        with (env.home / "logs" / "controller.log").open("a") as fh:
            fh.write("marker-after\n")
        wait_until(lambda: output.has("marker-after"), "a line written after the start", 30)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=10)


class Output:
    """A process's stdout, read on a thread as it comes."""

    def __init__(self, proc: subprocess.Popen[str]):
        assert proc.stdout is not None
        self._lines: queue.Queue[str] = queue.Queue()
        self._got: list[str] = []
        stdout = proc.stdout
        threading.Thread(target=lambda: [self._lines.put(x) for x in stdout], daemon=True).start()

    def has(self, text: str) -> bool:
        while not self._lines.empty():
            self._got.append(self._lines.get())
        return any(text in line for line in self._got)
