"""`GET /api/v1/services` for a fleet: rebuild only what changed since the last listing.

A dashboard polls the listing every second or two; with 2,000 replicas, reading every
replica row and building every model each time cost more than the rest of the controller.
A service's view is kept with the key it was built from: its row's listed columns, which
include `replicas_revision` (bumped with every write to one of its replicas, in the same
transaction), but not the running cost, tokens and uptime, which move all the time and are
put into the kept view at each listing. A listing reads the service rows (one query), and the
replicas and versions of only the services whose key moved. Everything is in the database,
so a standby controller's listing is as fresh as the leader's.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select

from controller.api.schemas import ServicePublic
from controller.api.views import LISTED_COLUMNS, cost_view, service_view, tokens_view
from controller.db import Database, ReplicaRow, ServiceRow
from controller.db.token_counts import UNKNOWN, TokenFigures, token_figures
from controller.services import latest_versions
from controller.settings import Settings

SERVICE_LIST = TypeAdapter(list[ServicePublic])
_SERVICE_COLUMNS = (
    "id",
    "name",
    "status",
    "status_reason",
    "version",
    "created_at",
    "updated_at",
    "ready_since",
    "lb_port",
    "target_replicas",
    "policy_name",
    "policy_state",
    "replicas_revision",
    "cost_so_far",
    "on_demand_cost_so_far",
)
_KEYED = len(_SERVICE_COLUMNS) - 2
"""The columns a kept view depends on: all but the running cost."""


class ServiceListing:
    """The views of the last listing, by service id, with the keys they were built from."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._views: dict[int, tuple[tuple[Any, ...], ServicePublic]] = {}
        self._lock = threading.Lock()

    def json(self, now: float) -> bytes:
        services, replicas = ServiceRow.__table__, ReplicaRow.__table__
        with self.db.session() as s:
            rows = s.execute(
                select(*(services.c[c] for c in _SERVICE_COLUMNS)).order_by(services.c.name)
            ).all()
            with self._lock:
                known = dict(self._views)
            keys = {r.id: _key(r) for r in rows}
            stale = [r for r in rows if known.get(r.id, ((),))[0] != keys[r.id]]
            by_service: dict[int, list[Any]] = {r.id: [] for r in stale}
            if stale:
                listed = select(*(replicas.c[c] for c in LISTED_COLUMNS))
                for r in s.execute(
                    listed.where(replicas.c.service_id.in_(list(by_service))).order_by(
                        replicas.c.replica_id
                    )
                ).all():
                    by_service[r.service_id].append(r)
            versions = latest_versions(s, stale)
            tokens = token_figures(s, None, now)
        fresh = {
            r.id: (
                keys[r.id],
                service_view(
                    r, self.settings, now, versions[r.id], by_service[r.id], tokens.get(r.id)
                ),
            )
            for r in stale
        }
        views = []
        for r in rows:
            _, view = fresh.get(r.id) or known[r.id]
            if r.id not in fresh:
                view = view.model_copy(update=_moving(view, r, now, tokens.get(r.id)))
            views.append(view)
        with self._lock:
            self._views = {r.id: fresh.get(r.id) or known[r.id] for r in rows}
        return SERVICE_LIST.dump_json(views)


def _key(row: Any) -> tuple[Any, ...]:
    """Comparable: the policy state is a dict, compared by its repr."""
    return tuple(repr(v) if isinstance(v, dict) else v for v in row[:_KEYED])


def _moving(
    view: ServicePublic, row: Any, now: float, tokens: TokenFigures | None
) -> dict[str, Any]:
    """What changes in a service's view while nothing else does: uptime, cost so far and
    tokens (each market's cost per hour moves only with its replicas, which re-key the view)."""
    cost = view.cost
    per_hour = {m: v.cost_per_hour for m, v in view.tokens.markets.items() if m != UNKNOWN}
    age = now - row.created_at
    return {
        "tokens": tokens_view(tokens or TokenFigures(), per_hour, row.cost_so_far, age),
        "uptime_seconds": now - row.ready_since if row.ready_since is not None else None,
        "cost": cost_view(
            cost.per_hour, cost.on_demand_per_hour, row.cost_so_far, row.on_demand_cost_so_far
        ),
    }
