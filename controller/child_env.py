"""The environment for processes the controller or CLI start (daemon, load balancers)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def child_env() -> dict[str, str]:
    """Our packages' parent first on PYTHONPATH, so children run the same code we do."""
    existing = os.environ.get("PYTHONPATH")
    path = f"{PROJECT_ROOT}{os.pathsep}{existing}" if existing else str(PROJECT_ROOT)
    return {**os.environ, "PYTHONPATH": path}
