"""How the CLI finds and talks to the controller, and starts one when none runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from common.processes import is_alive
from controller.child_env import child_env
from controller.settings import Settings

START_TIMEOUT_SECONDS = 60.0


class ControllerUnavailable(Exception):
    pass


class ApiError(Exception):
    """A 4xx/5xx answer; `detail` is the controller's own explanation."""

    def __init__(self, status: int, error: str, detail: str, issues: list[dict[str, str]]):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.issues = issues


class ControllerClient:
    def __init__(self, settings: Settings, url: str | None = None):
        self.settings = settings
        self.url = url or os.environ.get("SERVE_CONTROLLER_URL") or _state_url(settings)
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(30.0, write=300.0))

    def _headers(self) -> dict[str, str]:
        token = os.environ.get("SERVE_TOKEN")
        if token is None and self.settings.token_path.exists():
            token = self.settings.token_path.read_text().strip()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, headers=self._headers(), **kwargs)
        except httpx.TransportError as exc:
            raise ControllerUnavailable(
                f"cannot reach the controller at {self.url} ({type(exc).__name__}); "
                "start it with `serve controller start`"
            ) from None
        if resp.status_code >= 400:
            raise _api_error(resp)
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()

    def call_status(self, method: str, path: str) -> int:
        """Just the status code (a HEAD asking whether something exists)."""
        try:
            return self._http.request(method, path, headers=self._headers()).status_code
        except httpx.TransportError as exc:
            raise ControllerUnavailable(
                f"cannot reach the controller at {self.url}: {exc}"
            ) from None

    def healthy(self) -> bool:
        try:
            return self._http.get("/healthz", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False


def _api_error(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    detail = body.get("detail") or resp.text or resp.reason_phrase
    return ApiError(
        resp.status_code, body.get("error", "error"), str(detail), body.get("issues", [])
    )


def _state_url(settings: Settings) -> str:
    state = read_state(settings)
    return str(state["url"]) if state and state.get("url") else settings.url


def read_state(settings: Settings) -> dict[str, Any] | None:
    try:
        data = json.loads(settings.state_path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    return pid > 0 and is_alive(pid)


def start_controller(settings: Settings, on_wait: Callable[[float], None] | None = None) -> str:
    """Start the daemon in the background and wait until it answers; returns its URL."""
    client = ControllerClient(settings, url=settings.url)
    if client.healthy():
        return settings.url
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    out = (settings.log_dir / "controller.out").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.daemon"],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=child_env(),
    )
    began = time.monotonic()
    while time.monotonic() - began < START_TIMEOUT_SECONDS:
        if client.healthy():
            return settings.url
        if proc.poll() is not None:
            raise ControllerUnavailable(
                f"the controller exited at start (code {proc.returncode}):\n"
                + tail(settings.log_dir / "controller.out", 15)
            )
        if on_wait:
            on_wait(time.monotonic() - began)
        time.sleep(0.2)
    raise ControllerUnavailable(
        f"the controller did not answer within {START_TIMEOUT_SECONDS:.0f}s; "
        f"see {settings.log_dir / 'controller.out'}"
    )


def stop_controller(settings: Settings, timeout: float = 20.0) -> int | None:
    state = read_state(settings)
    if not state or not pid_alive(int(state.get("pid", 0))):
        settings.state_path.unlink(missing_ok=True)
        return None
    pid = int(state["pid"])
    os.kill(pid, 15)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, 9)
    settings.state_path.unlink(missing_ok=True)
    return pid


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
