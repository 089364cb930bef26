"""`service.replica_policy.spot_policy`: our extension of SkyPilot's format choosing the spot
policy of a live service (SpotHedge unless the YAML says otherwise)."""

from __future__ import annotations

import pytest

from controller.spec import SpecError, load_spec_text

SPOT = (
    "service:\n  readiness_probe: /health\n  replica_policy:\n    min_replicas: 2\n"
    "    dynamic_ondemand_fallback: true\n{extra}"
    "resources:\n  ports: 8080\n  use_spot: true\nrun: python app.py\n"
)


def test_spothedge_is_the_default() -> None:
    spec = load_spec_text(SPOT.format(extra=""))
    assert spec.service.policy.spot_policy == "spothedge"


def test_adaptive_hedge_is_accepted_in_any_case() -> None:
    spec = load_spec_text(SPOT.format(extra="    spot_policy: Adaptive_Hedge\n"))
    assert spec.service.policy.spot_policy == "adaptive_hedge"


def test_unknown_policy_is_refused_naming_the_field_and_the_choices() -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(SPOT.format(extra="    spot_policy: hedgehog\n"))
    msg = str(err.value)
    assert "service.replica_policy.spot_policy" in msg
    assert "spothedge" in msg and "adaptive_hedge" in msg


def test_an_availability_target_in_percent_reaches_the_policy_as_a_fraction() -> None:
    extra = "    spot_policy: adaptive_hedge\n    availability_target: 99.5\n"
    spec = load_spec_text(SPOT.format(extra=extra))
    assert spec.placement_config().availability_target == 0.995


def test_no_availability_target_by_default() -> None:
    assert load_spec_text(SPOT.format(extra="")).placement_config().availability_target is None


def test_an_availability_target_without_adaptive_hedge_is_refused_saying_what_to_add() -> None:
    with pytest.raises(SpecError) as err:
        load_spec_text(SPOT.format(extra="    availability_target: 99.5\n"))
    msg = str(err.value)
    assert "availability_target" in msg and "spot_policy: adaptive_hedge" in msg


def test_an_availability_target_needs_the_dynamic_fallback() -> None:
    text = SPOT.format(extra="    spot_policy: adaptive_hedge\n    availability_target: 99.5\n")
    with pytest.raises(SpecError) as err:
        load_spec_text(text.replace("    dynamic_ondemand_fallback: true\n", ""))
    assert "dynamic_ondemand_fallback: true" in str(err.value)


@pytest.mark.parametrize("value", ["100", "0", "0.995x", "-3"])
def test_an_availability_target_outside_0_to_100_percent_is_refused(value: str) -> None:
    extra = f"    spot_policy: adaptive_hedge\n    availability_target: {value}\n"
    with pytest.raises(SpecError) as err:
        load_spec_text(SPOT.format(extra=extra))
    assert "service.replica_policy.availability_target" in str(err.value)


def test_an_availability_target_without_spot_is_refused() -> None:
    text = SPOT.format(extra="    spot_policy: adaptive_hedge\n    availability_target: 99.5\n")
    with pytest.raises(SpecError) as err:
        load_spec_text(text.replace("  use_spot: true\n", ""))
    assert "availability_target" in str(err.value) and "use_spot: true" in str(err.value)
