"""Load balancer request counts in the database, and the rate the autoscaler reads."""

from __future__ import annotations

from sqlalchemy import delete, select

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
            s.add(
                RequestCountRow(
                    service_name=service,
                    at=now,
                    count=max(0, count),
                    window_seconds=max(0.0, window_seconds),
                    in_flight=None if in_flight is None else max(0, in_flight),
                    lb_id=lb_id,
                )
            )

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
