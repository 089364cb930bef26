"""The in-memory history behind the dashboard's chart (`controller.history`)."""

from __future__ import annotations

from pathlib import Path

from controller.db import Database
from controller.history import HistoryRing, HistorySampler, Point, ServiceHistory


class FixedClock:
    def __init__(self, now: float) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def point(at: float, spot: int = 2, on_demand: int = 0, cost: float = 2.0) -> Point:
    return Point(
        at=at,
        ready_spot=spot,
        ready_on_demand=on_demand,
        target=2,
        cost_per_hour=cost,
        on_demand_cost_per_hour=6.0,
    )


def test_a_point_is_stored_only_when_a_value_changes() -> None:
    ring = HistoryRing(service_id=1, window=3600, max_points=100)
    for t in range(10):
        ring.record(point(float(t)))
    ring.record(point(10.0, spot=1, on_demand=1, cost=4.0))
    ring.record(point(11.0, spot=1, on_demand=1, cost=4.0))
    assert [p.at for p in ring.points] == [0.0, 10.0]
    assert ring.sampled_at == 11.0


def test_points_older_than_the_window_go_but_the_one_holding_at_its_start_stays() -> None:
    ring = HistoryRing(service_id=1, window=100, max_points=100)
    ring.record(point(0.0, spot=0))
    ring.record(point(50.0, spot=1))
    ring.record(point(120.0, spot=2))
    ring.record(point(170.0, spot=3))
    assert [p.ready_spot for p in ring.points] == [1, 2, 3]


def test_a_ring_holds_at_most_max_points() -> None:
    ring = HistoryRing(service_id=1, window=1e9, max_points=5)
    for t in range(20):
        ring.record(point(float(t), spot=t % 2))
    assert len(ring.points) == 5 and ring.points[-1].at == 19.0


def test_since_starts_with_the_point_holding_then() -> None:
    history = ServiceHistory()
    for t, spot in [(0.0, 0), (10.0, 1), (20.0, 2)]:
        history.record({"chat": (1, point(t, spot=spot))})
    found = history.get("chat")
    assert found is not None
    assert [p.at for p in found.since(15.0)] == [10.0, 20.0]
    assert [p.at for p in found.since(0.0)] == [0.0, 10.0, 20.0]
    assert [p.at for p in found.since(99.0)] == [20.0]


def test_a_deleted_service_loses_its_history_and_a_new_one_under_its_name_starts_anew() -> None:
    history = ServiceHistory()
    history.record({"chat": (1, point(0.0, spot=0)), "other": (2, point(0.0))})
    history.record({"chat": (1, point(1.0, spot=1))})
    assert history.get("other") is None
    history.record({"chat": (3, point(2.0, spot=2))})
    found = history.get("chat")
    assert found is not None and [p.ready_spot for p in found.points] == [2]


def test_a_database_error_skips_a_sample_and_keeps_the_history(tmp_path: Path) -> None:
    history = ServiceHistory()
    history.record({"chat": (1, point(0.0))})
    unreachable = Database(f"sqlite:///{tmp_path / 'missing-dir' / 'serve.db'}")
    HistorySampler(unreachable, FixedClock(5.0), history, period=1.0).sample()
    found = history.get("chat")
    assert found is not None and found.sampled_at == 0.0
