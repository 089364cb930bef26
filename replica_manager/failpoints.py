"""Named places where a test can make the controller die as `kill -9` would.

`SERVE_FAILPOINT=launch.after_provider` (comma-separated for several) makes the process
SIGKILL itself the first time it reaches that point, so crash-recovery tests stop the real
controller at an exact step of its work instead of at a random moment. Unset in production:
then each call is one dictionary lookup.

`SERVE_FAILPOINT=launch.before_provider:hold` pauses the calling thread there instead, until
the file named by `SERVE_FAILPOINT_RELEASE` exists: a test holds a launch, changes the
world (deposes the leader), then lets it go on.

Points: `launch.before_provider` (intent committed, cloud not called), `launch.after_provider`
(the cloud created the instance, the row does not know it), `launch.recorded` (the row has
the instance), `terminate.before_provider` (the row says SHUTTING_DOWN or failed, the
instance still runs), `terminate.after_provider` (the instance is gone, the row remains).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "SERVE_FAILPOINT"
RELEASE_ENV = "SERVE_FAILPOINT_RELEASE"
HOLD = ":hold"


def failpoint(name: str) -> None:
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    points = wanted.split(",")
    if name in points:
        os.kill(os.getpid(), signal.SIGKILL)
    if name + HOLD in points:
        release = Path(os.environ.get(RELEASE_ENV) or "/nonexistent/failpoint-release")
        while not release.exists():
            time.sleep(0.05)
