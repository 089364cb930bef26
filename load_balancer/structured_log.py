"""Structured event logging for the load balancer: one JSON object per line on stderr.

Invariant: every record has ``ts``, ``level`` and ``event``; other fields are flat JSON values,
so a log shipper can parse each line without knowing the event.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def log_event(level: str, event: str, **fields: Any) -> None:
    """Write one event line to stderr; never raises, so logging cannot break the data path."""
    record: dict[str, Any] = {"ts": round(time.time(), 3), "level": level, "event": event}
    record["pid"] = os.getpid()
    record.update(fields)
    try:
        sys.stderr.write(json.dumps(record, default=str) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
