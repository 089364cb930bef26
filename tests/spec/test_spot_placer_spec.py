"""`spot_placer` reaches the placement policy, and changes nothing else, as in SkyPilot."""

from __future__ import annotations

from controller.spec import load_spec_text
from policies.types import PlacementConfig

YAML = """
service:
  readiness_probe: /health
  replica_policy:
    min_replicas: 2
    max_replicas: 2
    dynamic_ondemand_fallback: true
{extra}
resources: {{ports: 8080, use_spot: true}}
run: python3 app.py
"""


def config_of(extra: str = "") -> PlacementConfig:
    return load_spec_text(YAML.format(extra=extra)).placement_config()


def test_the_dynamic_fallback_placer_turns_on_dynamic_placement() -> None:
    assert config_of("    spot_placer: dynamic_fallback").dynamic_placement


def test_without_a_placer_spot_replicas_are_placed_cheapest_first() -> None:
    assert not config_of().dynamic_placement


def test_the_placer_adds_no_overprovisioned_replica_of_its_own() -> None:
    assert config_of("    spot_placer: dynamic_fallback").num_overprovision == 0
    assert config_of().num_overprovision == 0


def test_an_explicit_overprovision_is_kept_with_or_without_the_placer() -> None:
    both = "    num_overprovision: 1\n    spot_placer: DYNAMIC_FALLBACK"
    assert config_of(both).num_overprovision == 1
    assert config_of("    num_overprovision: 1").num_overprovision == 1
