"""What each service looked like over the last hours: ready spot and on-demand replicas,
target, and cost per hour, for the dashboard's chart.

Kept in memory only, so it restarts empty with the controller. A `HistorySampler` thread
reads every service's counts in one grouped query per period, away from the reconcile
tick (it shares nothing with it but the database); each service's `HistoryRing` stores a
point only when a value changed, so a fleet at rest costs one point per service.

Invariant: a point's values hold from its `at` until the next point's `at`, and the last
point's until the ring's `sampled_at` (the newest sampling that found the service).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from common.clock import Clock
from controller.db import Database, ReplicaRow, ServiceRow

log = logging.getLogger(__name__)

WINDOW_SECONDS = 6 * 3600.0
MAX_POINTS = 4096
"""Per service (about 100 bytes each): a service whose counts change at every 2 s sample
keeps 2.3 h of them; one at rest keeps one."""
SHARE = 50
"""The sampler waits at least this many times the CPU time its last sampling took (CPU
time of its own thread: waiting for the database or the GIL costs nothing and does not
slow the sampling down)."""
MAX_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    ready_spot: int
    ready_on_demand: int
    target: int
    cost_per_hour: float
    on_demand_cost_per_hour: float
    """What `target` on-demand replicas would cost: the saving is the gap to `cost_per_hour`."""

    @property
    def values(self) -> tuple[int, int, int, float, float]:
        return (
            self.ready_spot,
            self.ready_on_demand,
            self.target,
            self.cost_per_hour,
            self.on_demand_cost_per_hour,
        )


class HistoryRing:
    """One service's points within `window` seconds of the newest sampling (plus the one
    point that holds at the window's start), at most `max_points` of them. Not thread-safe:
    `ServiceHistory` guards it."""

    def __init__(self, service_id: int, window: float, max_points: int) -> None:
        self.service_id = service_id
        self.window = window
        self.points: deque[Point] = deque(maxlen=max_points)
        self.sampled_at: float | None = None

    def record(self, point: Point) -> None:
        self.sampled_at = point.at
        if not self.points or self.points[-1].values != point.values:
            self.points.append(point)
        start = point.at - self.window
        while len(self.points) >= 2 and self.points[1].at <= start:
            self.points.popleft()


@dataclass(frozen=True)
class History:
    """A copy of one service's ring, safe to hand to a request."""

    points: tuple[Point, ...]
    sampled_at: float | None

    def since(self, t: float) -> tuple[Point, ...]:
        """The points from the one that holds at `t` on."""
        first = sum(1 for p in self.points if p.at <= t)
        return self.points[max(0, first - 1) :]


class ServiceHistory:
    """Every service's ring, by name; a service that is gone (or deleted and made anew
    under the same name) loses its ring."""

    def __init__(self, window: float = WINDOW_SECONDS, max_points: int = MAX_POINTS) -> None:
        self.window, self.max_points = window, max_points
        self._rings: dict[str, HistoryRing] = {}
        self._lock = threading.Lock()

    def record(self, samples: dict[str, tuple[int, Point]]) -> None:
        """`samples`: every service that exists now, by name: (its row id, its point)."""
        with self._lock:
            rings = {}
            for name, (service_id, point) in samples.items():
                ring = self._rings.get(name)
                if ring is None or ring.service_id != service_id:
                    ring = HistoryRing(service_id, self.window, self.max_points)
                ring.record(point)
                rings[name] = ring
            self._rings = rings

    def get(self, name: str) -> History | None:
        with self._lock:
            ring = self._rings.get(name)
            return None if ring is None else History(tuple(ring.points), ring.sampled_at)


def read_points(db: Database, now: float) -> dict[str, tuple[int, Point]]:
    """Every service's point now, in one grouped query (no replica rows leave the database).
    Cost per hour is `controller.costs.hourly_rates` in SQL: instances we pay for, and
    `target` times the highest on-demand price among the service's replicas."""
    s, r = ServiceRow.__table__, ReplicaRow.__table__
    ready = r.c.status == "READY"
    paying = r.c.instance_id.is_not(None) & r.c.terminated_at.is_(None)
    stmt = (
        select(
            s.c.id,
            s.c.name,
            s.c.target_replicas,
            func.sum(case((ready & r.c.spot, 1), else_=0)),
            func.sum(case((ready & ~r.c.spot, 1), else_=0)),
            func.sum(case((paying, r.c.price_per_hour), else_=0.0)),
            func.max(r.c.on_demand_price_per_hour),
        )
        .select_from(s.outerjoin(r, r.c.service_id == s.c.id))
        .group_by(s.c.id, s.c.name, s.c.target_replicas)
    )
    with db.session() as session:
        rows = session.execute(stmt).all()
    return {
        name: (
            service_id,
            Point(
                at=now,
                ready_spot=int(spot or 0),
                ready_on_demand=int(on_demand or 0),
                target=int(target or 0),
                cost_per_hour=round(float(cost or 0.0), 4),
                on_demand_cost_per_hour=round(float(od_price or 0.0) * int(target or 0), 4),
            ),
        )
        for service_id, name, target, spot, on_demand, cost, od_price in rows
    }


class HistorySampler:
    """Samples every `period` seconds on its own thread, or less often when a sampling
    takes over 2% of the period in CPU (about 20 ms at 1,000 services), so it never costs
    more than 2% of a core. Constructing it does no I/O; a database error skips one sampling
    (the chart shows a longer step), never stops it."""

    def __init__(self, db: Database, clock: Clock, history: ServiceHistory, period: float):
        self.db, self.clock, self.history, self.period = db, clock, history, period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        try:
            self.history.record(read_points(self.db, self.clock.now()))
        except SQLAlchemyError as exc:
            log.debug("history sample skipped: %s", exc)
        except Exception:  # a bug here must not freeze the chart for the controller's life
            log.exception("history sample failed; trying again next period")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.thread_time()
            self.sample()
            spent = time.thread_time() - started
            self._stop.wait(min(MAX_WAIT, max(self.period, SHARE * spent)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
