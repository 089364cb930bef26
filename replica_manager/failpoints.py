"""Named places where a test can make the controller die as `kill -9` would.

`SERVE_FAILPOINT=launch.after_provider` (comma-separated for several) makes the process
SIGKILL itself the first time it reaches that point, so crash-recovery tests stop the real
controller at an exact step of its work instead of at a random moment. Unset in production:
then each call is one dictionary lookup.

Points: `launch.before_provider` (intent committed, cloud not called), `launch.after_provider`
(the cloud created the instance, the row does not know it), `launch.recorded` (the row has
the instance), `terminate.before_provider` (the row says SHUTTING_DOWN or failed, the
instance still runs), `terminate.after_provider` (the instance is gone, the row remains).
"""

from __future__ import annotations

import os
import signal

ENV = "SERVE_FAILPOINT"


def failpoint(name: str) -> None:
    wanted = os.environ.get(ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
