"""Load balancer request counts in the database, and the rate the autoscaler reads."""

from __future__ import annotations

from sqlalchemy import delete, select

from autoscaler.rate import CountSample, average_qps
from controller.db.engine import Database
from controller.db.models import RequestCountRow


class RequestCounts:
    def __init__(self, db: Database, window_seconds: float):
        self.db = db
        self.window = window_seconds

    def record(self, service: str, count: int, window_seconds: float, now: float) -> None:
        with self.db.session() as s:
            s.add(
                RequestCountRow(
                    service_name=service,
                    at=now,
                    count=max(0, count),
                    window_seconds=max(0.0, window_seconds),
                )
            )

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
