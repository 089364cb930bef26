"""Prepare the Azure SDK's model classes once, before threads race to make their first instances.

azure-mgmt-compute and azure-mgmt-network (generated `_utils/model_base.Model.__new__`) work
out a class's field table the first time an instance of it is made, iterating over class
dictionaries that the same work in another thread is writing to. Two threads making the
first instance of one class together can fail with `RuntimeError: dictionary changed size
during iteration`; seen here when two replicas were launched at once. The controller
launches, observes and deletes from several threads, and the SDK makes models while it
deserializes every answer, so the adapter prepares every model class of both SDKs under one
lock before it builds or reads any: under a second of CPU, once per process.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any, cast

from azure.mgmt.compute import models as compute_models
from azure.mgmt.network import models as network_models

_lock = threading.Lock()
_prepared = False


def prepare_models() -> None:
    """Make every model class's field table now (idempotent, thread-safe)."""
    global _prepared
    if _prepared:
        return
    with _lock:
        if not _prepared:
            for module in (compute_models, network_models):
                _prepare(module)
            _prepared = True


def _prepare(module: ModuleType) -> None:
    for cls in vars(module).values():
        calculated = getattr(cls, "_calculated", None)
        if isinstance(cls, type) and isinstance(calculated, set):
            cast(Any, cls).__new__(cls)  # the one-time table work, without __init__
