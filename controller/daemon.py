"""The controller process: `python -m controller.daemon` (what `serve controller start` runs).

It announces itself in `$SERVE_HOME/controller.json` (url, pid, database) as it starts;
clients wait for `/healthz` before trusting it. The file goes when the process exits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import uvicorn

from controller.app import create_app
from controller.lb_process import port_is_free
from controller.logs import configure_logging
from controller.settings import Settings

log = logging.getLogger("controller")


def open_reads_refusal(settings: Settings) -> str | None:
    """Why the controller must not start: reads need no token by default, and logs, events
    and metrics say too much to serve to a network without one."""
    if not settings.binds_beyond_loopback or settings.read_auth or settings.allow_open_reads:
        return None
    return (
        f"SERVE_CONTROLLER_HOST={settings.host} would serve logs, events and metrics to the "
        "network without a token; set SERVE_READ_AUTH=1 (reads then need the token too), or "
        "SERVE_ALLOW_OPEN_READS=1 if something in front of the controller authenticates"
    )


def write_state(settings: Settings, database: str) -> None:
    state = {
        "url": settings.url,
        "pid": os.getpid(),
        "database": database,
        "started_at": time.time(),
        "home": str(settings.home),
    }
    tmp = settings.state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, settings.state_path)


def clear_state(settings: Settings) -> None:
    try:
        state = json.loads(settings.state_path.read_text())
    except (OSError, ValueError):
        return
    if state.get("pid") == os.getpid():
        settings.state_path.unlink(missing_ok=True)


GIL_SWITCH_SECONDS = 0.001
"""How long a thread may hold the GIL while others wait (Python's default is 5 ms). Up to
eight ticks run at once beside the API, the load balancers' syncs and the probe loop; with
shorter slices the short jobs wait less behind the long ones (scale benchmark, 100 x 20:
lb-sync p99 65 -> 37-57 ms, probe p99 14 -> 5-8 ms, cycle p99 0.97 -> 0.73-0.81 s)."""


def main() -> int:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    settings = Settings.from_env()
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    configure_logging(
        settings.log_dir / "controller.log", os.environ.get("SERVE_LOG_LEVEL", "INFO")
    )
    refusal = open_reads_refusal(settings)
    if refusal:
        log.error(refusal)
        print(refusal, file=sys.stderr)
        return 2
    if not port_is_free(settings.host, settings.port):
        log.error("port %s on %s is taken; set SERVE_CONTROLLER_PORT", settings.port, settings.host)
        return 2
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    write_state(settings, app.state.runtime.db.display_url)
    log.info("controller starting", extra={"url": settings.url})
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server.run()
    finally:
        clear_state(settings)
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
