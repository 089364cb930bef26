"""A cycle is a whole round: it ends when the last service handed out in it was ticked."""

from __future__ import annotations

from controller.timings import Timings


def test_a_round_records_one_cycle_when_its_last_tick_is_done() -> None:
    timings = Timings()
    round_ = timings.round_started(3)
    assert round_ is not None
    round_.ticked()
    round_.ticked()
    assert timings.summary()["cycle_p99_s"] is None
    round_.ticked()
    summary = timings.summary()
    assert summary["cycle_p99_s"] is not None and summary["cycle_p99_s"] >= 0


def test_nothing_to_tick_is_no_round() -> None:
    assert Timings().round_started(0) is None


def test_the_interval_is_between_two_ticks_of_one_service() -> None:
    timings = Timings()
    timings.tick_started("a")
    assert timings.summary()["tick_interval_p99_s"] is None
    timings.tick_started("a")
    assert timings.summary()["tick_interval_p99_s"] is not None
