"""Request rate -> target replicas, with SkyPilot's delays and our noise rule."""

from __future__ import annotations

from typing import Any

from autoscaler.rate import CountSample, average_qps
from autoscaler.target import ScalingConfig, decide_target

AUTO = ScalingConfig(
    min_replicas=1,
    max_replicas=5,
    target_qps_per_replica=2.0,
    upscale_delay_seconds=300,
    downscale_delay_seconds=1200,
)


def run(
    samples: list[tuple[float, float]],
    config: ScalingConfig = AUTO,
    state: dict[str, Any] | None = None,
) -> list[int]:
    state = dict(state or {})
    out = []
    for now, qps in samples:
        target, state = decide_target(config, qps, state, now)
        out.append(target)
    return out


def test_fixed_count_without_target_qps() -> None:
    fixed = ScalingConfig(min_replicas=3, max_replicas=3)
    assert run([(0, 100.0), (1000, 100.0)], fixed) == [3, 3]


def test_scales_up_only_after_the_upscale_delay() -> None:
    targets = run([(t, 8.0) for t in range(0, 330, 30)])
    assert targets[:10] == [1] * 10  # t = 0..270: still waiting
    assert targets[10] == 4  # t = 300: ceil(8 / 2)


def test_target_is_clipped_to_max_replicas() -> None:
    assert run([(0, 100.0), (300, 100.0)])[-1] == 5


def test_one_noisy_sample_does_not_restart_a_long_wait() -> None:
    samples = [(t, 8.0) for t in range(0, 240, 30)] + [(240, 1.0)] + [(270, 8.0), (300, 8.0)]
    assert run(samples)[-1] == 4


def test_a_long_dip_restarts_the_wait() -> None:
    samples = [(t, 8.0) for t in range(0, 240, 30)] + [(t, 1.0) for t in range(240, 330, 30)]
    samples += [(t, 8.0) for t in range(330, 600, 30)]
    targets = run(samples)
    assert targets[-1] == 1, "the wait restarted at t=330 and has not run 300 s yet"


def test_scales_down_only_after_the_downscale_delay() -> None:
    state = {"target": 4}
    targets = run([(t, 1.0) for t in range(0, 1260, 60)], state=state)
    assert targets[-2] == 4 and targets[-1] == 1


def test_scaling_up_from_zero_is_immediate() -> None:
    zero = ScalingConfig(min_replicas=0, max_replicas=3, target_qps_per_replica=1.0)
    assert run([(0, 0.0), (10, 0.5)], zero) == [0, 1]


def test_no_traffic_data_keeps_the_current_target() -> None:
    assert run([(0, None), (500, None)], state={"target": 3}) == [3, 3]  # type: ignore[list-item]


def test_rate_is_averaged_over_the_window() -> None:
    samples = [CountSample(float(t), 10, 2.0) for t in range(0, 120, 2)]
    assert average_qps(samples, 118.0, window=60) == 5.0
    assert average_qps([], 118.0, window=60) is None


def test_rate_before_the_window_fills_uses_the_time_seen() -> None:
    samples = [CountSample(100.0, 20, 2.0), CountSample(102.0, 20, 2.0)]
    assert average_qps(samples, 102.0, window=60) == 10.0


def test_absurd_rates_clip_to_max_replicas() -> None:
    tiny = ScalingConfig(
        min_replicas=1, max_replicas=4, target_qps_per_replica=1e-300, upscale_delay_seconds=0
    )
    assert run([(0, 1e300), (1, 1e300)], tiny)[-1] == 4
