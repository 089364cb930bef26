from controller.db.engine import Database, make_engine, normalise_url, upgrade_schema
from controller.db.models import (
    ApiKeyRow,
    Base,
    EventRow,
    InstallationRow,
    ReplicaRow,
    RequestCountRow,
    ServiceRow,
    ServiceVersionRow,
    TokenCountRow,
    TokenTotalRow,
)

__all__ = [
    "ApiKeyRow",
    "Base",
    "Database",
    "EventRow",
    "InstallationRow",
    "ReplicaRow",
    "RequestCountRow",
    "ServiceRow",
    "ServiceVersionRow",
    "TokenCountRow",
    "TokenTotalRow",
    "make_engine",
    "normalise_url",
    "upgrade_schema",
]
