"""Concurrency-based autoscaling: requests in flight per replica, beside the request rate;
the larger count wanted wins."""

from __future__ import annotations

from autoscaler.rate import mean_in_flight
from autoscaler.target import ScalerState, ScalingConfig, decide_target

BOTH = ScalingConfig(
    min_replicas=1,
    max_replicas=8,
    target_qps_per_replica=10.0,
    target_concurrency_per_replica=2.0,
    upscale_delay_seconds=0.0,
)


def test_long_requests_at_a_low_rate_scale_on_concurrency() -> None:
    assert BOTH.wanted(qps=1.0, concurrency=7.0) == 4  # the rate alone wants 1


def test_many_short_requests_scale_on_the_rate() -> None:
    assert BOTH.wanted(qps=55.0, concurrency=1.0) == 6


def test_concurrency_alone_autoscales_and_is_clipped_to_the_bounds() -> None:
    only = ScalingConfig(min_replicas=1, max_replicas=3, target_concurrency_per_replica=1.0)
    assert only.autoscaling
    assert only.wanted(qps=None, concurrency=0.0) == 1
    assert only.wanted(qps=None, concurrency=50.0) == 3


def test_decide_target_follows_concurrency_without_a_rate() -> None:
    slow = ScalingConfig(**{**BOTH.__dict__, "upscale_delay_seconds": 1.0})
    target, state = decide_target(slow, None, ScalerState(target=1), 100.0, concurrency=5.0)
    assert target == 1  # the upscale wait starts
    target, _ = decide_target(slow, None, state, 101.0, concurrency=5.0)
    assert target == 3


def test_in_flight_is_each_load_balancers_mean_summed() -> None:
    samples = [("lb-a", 2.0), ("lb-a", 4.0), ("lb-b", 1.0), (None, 50.0), ("lb-c", None)]
    assert mean_in_flight(samples) == 4.0
    assert mean_in_flight([]) is None
