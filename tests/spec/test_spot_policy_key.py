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
