"""Resource flags over a YAML, with SkyPilot's precedence (the pure half; the CLI's is in
tests/cli/test_resource_flags.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from controller.spec import SpecError
from controller.spec.overrides import ResourceFlags, validate_with_flags

YAML = """
service:
  readiness_probe: /health
  replicas: 1
resources:
  ports: 8080
  accelerators: {L4: 1}
  cpus: 4+
  any_of:
    - infra: gcp/us-central1
      accelerators: A100:1
    - cloud: aws
      region: us-east-1
      use_spot: true
run: python3 app.py
"""


def resources(flags: ResourceFlags, text: str = YAML) -> dict[str, Any]:
    _, spec = validate_with_flags(yaml.safe_load(text), flags)
    return spec.model_dump(mode="json")["resources"]


def where(candidate: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    return candidate["cloud"], candidate["region"], candidate["zone"]


def test_no_flags_keep_the_yaml() -> None:
    res = resources(ResourceFlags())
    assert [where(c) for c in res["any_of"]] == [
        ("gcp", "us-central1", None),
        ("aws", "us-east-1", None),
    ]
    assert res["accelerators"] == {"L4": 1} and res["cpus"] == "4+"


def test_a_flag_replaces_its_field_in_every_candidate_and_leaves_the_others() -> None:
    res = resources(ResourceFlags(gpus="H100:8", use_spot=False))
    assert res["accelerators"] == {"H100": 8}
    assert [c["accelerators"] for c in res["any_of"]] == [{"H100": 8}] * 2
    assert res["use_spot"] is False and [c["use_spot"] for c in res["any_of"]] == [False] * 2
    assert [where(c) for c in res["any_of"]] == [
        ("gcp", "us-central1", None),
        ("aws", "us-east-1", None),
    ]
    assert res["cpus"] == "4+"


def test_infra_sets_cloud_region_and_zone_together_clearing_what_it_leaves_out() -> None:
    res = resources(ResourceFlags(infra="aws"))
    assert where(res) == ("aws", None, None)
    assert [where(c) for c in res["any_of"]] == [("aws", None, None), ("aws", None, None)]


def test_infra_star_leaves_a_part_to_any_place() -> None:
    res = resources(ResourceFlags(infra="gcp/*/us-central1-a"))
    assert [where(c) for c in res["any_of"]] == [("gcp", None, "us-central1-a")] * 2


def test_region_alone_keeps_each_candidates_cloud() -> None:
    res = resources(ResourceFlags(region="eu-west-1"))
    assert [where(c) for c in res["any_of"]] == [
        ("gcp", "eu-west-1", None),
        ("aws", "eu-west-1", None),
    ]


def test_none_removes_the_yamls_value() -> None:
    res = resources(ResourceFlags(gpus="none", cpus="none", region="*"))
    assert res["accelerators"] is None and res["cpus"] is None
    assert [c["accelerators"] for c in res["any_of"]] == [None, None]
    assert [where(c) for c in res["any_of"]] == [("gcp", None, None), ("aws", None, None)]


def test_flags_apply_to_ordered_candidates_too() -> None:
    res = resources(ResourceFlags(infra="aws/us-west-2"), YAML.replace("any_of", "ordered"))
    assert [where(c) for c in res["ordered"]] == [("aws", "us-west-2", None)] * 2


def test_a_yaml_without_resources_gets_them_from_the_flags() -> None:
    text = "service: {readiness_probe: /, ports: 8080}\nrun: x\n"
    assert resources(ResourceFlags(gpus="L4:2", cloud="gcp"), text)["accelerators"] == {"L4": 2}


def test_infra_with_cloud_region_or_zone_is_refused() -> None:
    with pytest.raises(SpecError, match="--infra cannot be combined with --cloud, --zone"):
        resources(ResourceFlags(infra="aws", cloud="gcp", zone="a"))


def test_a_flag_that_breaks_the_spec_is_named() -> None:
    with pytest.raises(SpecError) as err:
        resources(ResourceFlags(gpus="A100:x", cloud="aws"))
    assert len(err.value.issues) == 1
    assert (
        "accelerators: accelerator 'A100:x' has a count that is not a number, set by --gpus "
        in str(err.value)
    )
    assert "--cloud" not in str(err.value)


def test_a_spec_rule_broken_by_a_flag_names_the_flag() -> None:
    text = YAML.replace("replicas: 1", "replica_policy: {min_replicas: 1, num_overprovision: 1}")
    with pytest.raises(SpecError, match="need spot replicas, set by --no-use-spot"):
        resources(ResourceFlags(use_spot=False), text)


def test_a_problem_of_the_yaml_itself_names_the_yaml_not_the_flags() -> None:
    with pytest.raises(SpecError) as err:
        resources(ResourceFlags(gpus="L4"), YAML.replace("cpus: 4+", "cpus: four"))
    assert "cpus 'four'" in str(err.value) and "set by" not in str(err.value)


def test_a_bad_infra_is_refused_with_its_shape() -> None:
    with pytest.raises(SpecError, match="not CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE"):
        resources(ResourceFlags(infra="aws/a/b/c"))
