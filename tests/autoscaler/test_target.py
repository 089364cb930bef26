"""Request rate -> target replicas, with SkyPilot's delays and our noise rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.rate import CountSample, average_qps
from autoscaler.target import NOISE_FRACTION, ScalerState, ScalingConfig, decide_target

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
    state: ScalerState | None = None,
) -> list[int]:
    state = state or ScalerState()
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
    state = ScalerState(target=4)
    targets = run([(t, 1.0) for t in range(0, 1260, 60)], state=state)
    assert targets[-2] == 4 and targets[-1] == 1


def test_scaling_up_from_zero_is_immediate() -> None:
    zero = ScalingConfig(min_replicas=0, max_replicas=3, target_qps_per_replica=1.0)
    assert run([(0, 0.0), (10, 0.5)], zero) == [0, 1]


def test_no_traffic_data_keeps_the_current_target() -> None:
    assert run([(0, None), (500, None)], state=ScalerState(target=3)) == [3, 3]  # type: ignore[list-item]


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


def test_a_low_sample_when_the_upscale_wait_ends_does_not_scale_down() -> None:
    """Target held at 3, demand for 5 for 299 s, then one low sample at 300 s: the
    upscale wait is over, but the low sample must not become a scale-down."""
    config = ScalingConfig(
        min_replicas=1,
        max_replicas=5,
        target_qps_per_replica=1.0,
        upscale_delay_seconds=300,
        downscale_delay_seconds=1200,
    )
    state = ScalerState(target=3)
    samples = [(t, 5.0) for t in range(0, 300, 10)] + [(300, 1.0), (305, 5.0)]
    targets = run(samples, config, state)
    assert targets[:-1] == [3] * 31, "the low sample changes nothing"
    assert targets[-1] == 5, "demand held 5 for the upscale delay (the dip was noise)"


@settings(max_examples=400, deadline=None)
@given(
    phases=st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 3.0, 5.0, 9.0, 12.0]),
            st.integers(1, 400),
            st.integers(1, 15),
        ),
        min_size=1,
        max_size=12,
    ),
    start=st.integers(1, 5),
    down_delay=st.integers(60, 240),
    up_delay=st.integers(60, 240),
)
def test_the_target_never_falls_before_demand_stayed_lower_for_the_downscale_delay(
    phases: list[tuple[float, int, int]], start: int, down_delay: int, up_delay: int
) -> None:
    """A drop from T at time t needs demand below T since at least `downscale_delay`
    before t, where a rise shorter than 10% of the delay (the noise rule) does not count.
    Demand comes in phases (a rate held for a while, sampled every few seconds)."""
    config = ScalingConfig(
        min_replicas=1,
        max_replicas=6,
        target_qps_per_replica=2.0,
        upscale_delay_seconds=up_delay,
        downscale_delay_seconds=down_delay,
    )
    now, samples = 0.0, []
    for qps, duration, every in phases:
        for _ in range(max(1, duration // every)):
            now += every
            samples.append((now, config.wanted(qps), qps))
    state = ScalerState(target=start)
    previous = start
    for i, (t, _, qps) in enumerate(samples):
        target, state = decide_target(config, qps, state, t)
        if target < previous:
            since = _lower_since(samples[: i + 1], previous, NOISE_FRACTION * down_delay)
            assert since is not None and t - since >= down_delay, (
                f"fell {previous} -> {target} at t={t}; demand lower only since {since}"
            )
        previous = target


def _lower_since(
    samples: list[tuple[float, int, float]], level: int, tolerance: float
) -> float | None:
    """When demand last started to stay below `level` up to the last sample, forgiving
    excursions that end within `tolerance` seconds of the low sample before them."""
    if samples[-1][1] >= level:
        return None
    first = len(samples) - 1
    while first > 0:
        k = first - 1
        while k >= 0 and samples[k][1] >= level:
            k -= 1
        if k < 0:
            break
        excursion = samples[k + 1 : first]
        if any(t - samples[k][0] > tolerance for t, _, _ in excursion):
            break
        first = k
    return samples[first][0]


def test_the_scaler_state_survives_a_json_round_trip_mid_wait() -> None:
    """The state is stored with the service; a restart mid-wait continues the wait."""
    config = ScalingConfig(1, 5, 2.0, upscale_delay_seconds=300)
    _, state = decide_target(config, 8.0, ScalerState(target=1), 0.0)
    import json

    restored = ScalerState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    assert decide_target(config, 8.0, restored, 300.0)[0] == 4
