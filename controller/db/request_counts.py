"""Load balancer request counts in the database, and the rate the autoscaler reads."""

from __future__ import annotations

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from autoscaler.rate import CountSample, average_qps, mean_in_flight
from controller.db.engine import Database
from controller.db.models import RequestCountRow


class RequestCounts:
    def __init__(self, db: Database, window_seconds: float):
        self.db = db
        self.window = window_seconds

    def record(
        self,
        service: str,
        count: int,
        window_seconds: float,
        now: float,
        in_flight: int | None = None,
        lb_id: str | None = None,
    ) -> None:
        with self.db.session() as s:
            add_count(s, service, count, window_seconds, now, in_flight, lb_id)

    def concurrency(self, service: str, now: float) -> float | None:
        """Requests in flight over the window: each load balancer's mean, summed; None when
        no load balancer reported any."""
        with self.db.session() as s:
            rows = s.execute(
                select(RequestCountRow.lb_id, RequestCountRow.in_flight).where(
                    RequestCountRow.service_name == service,
                    RequestCountRow.at > now - self.window,
                    RequestCountRow.in_flight.is_not(None),
                    RequestCountRow.lb_id.is_not(None),
                )
            ).all()
        return mean_in_flight(rows)

    def qps(self, service: str, now: float) -> float | None:
        with self.db.session() as s:
            rows = s.execute(
                select(
                    RequestCountRow.at, RequestCountRow.count, RequestCountRow.window_seconds
                ).where(
                    RequestCountRow.service_name == service,
                    RequestCountRow.at > now - self.window,
                )
            ).all()
        return average_qps((CountSample(*row) for row in rows), now, self.window)

    def trim(self, now: float) -> None:
        """Forget samples no window will look at again."""
        with self.db.session() as s:
            s.execute(delete(RequestCountRow).where(RequestCountRow.at <= now - 2 * self.window))


def add_count(
    s: Session,
    service: str,
    count: int,
    window_seconds: float,
    now: float,
    in_flight: int | None = None,
    lb_id: str | None = None,
    seq: int | None = None,
) -> None:
    """One report's sample, in the caller's session (the sync records its tokens in the same
    transaction, so a report counts wholly or not at all)."""
    s.add(
        RequestCountRow(
            service_name=service,
            at=now,
            count=max(0, count),
            window_seconds=max(0.0, window_seconds),
            in_flight=None if in_flight is None else max(0, in_flight),
            lb_id=lb_id,
            seq=seq,
        )
    )


def already_recorded(s: Session, service: str, lb_id: str | None, seq: int | None) -> bool:
    """Whether this load balancer's report number `seq` was recorded: it is sent again when
    its answer was lost (samples are kept twice the rate window, far longer than a retry)."""
    if lb_id is None or seq is None:
        return False
    found = exists().where(
        RequestCountRow.service_name == service,
        RequestCountRow.lb_id == lb_id,
        RequestCountRow.seq == seq,
    )
    return bool(s.scalar(select(found)))
