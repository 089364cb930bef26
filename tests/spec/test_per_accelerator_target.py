"""`target_qps_per_replica` per accelerator with `instance_aware_least_load`: accepted as
SkyPilot writes it, refused with the field and the fix when a replica could go unweighed."""

from __future__ import annotations

import pytest

from controller.spec import SpecError, load_spec_text

YAML = """
service:
  readiness_probe: /health
  load_balancing_policy: {policy}
  replica_policy:
    min_replicas: 1
    max_replicas: 5
    target_qps_per_replica: {target}
resources:
  ports: 8080
  {resources}
run: python -m server
"""


def spec_text(
    target: str = "{A100: 10, L4: 4}",
    resources: str = "accelerators: {A100: 1, L4: 1}",
    policy: str = "instance_aware_least_load",
) -> str:
    return YAML.format(target=target, resources=resources, policy=policy)


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    return str(err.value)


def test_a_mapping_with_the_instance_aware_policy_is_kept_as_written() -> None:
    spec = load_spec_text(spec_text())
    policy = spec.service.policy
    assert spec.service.load_balancing_policy == "instance_aware_least_load"
    assert policy.qps_per_accelerator == {"A100": 10.0, "L4": 4.0}
    assert policy.autoscaling
    assert spec.redacted()["service"]["replica_policy"]["target_qps_per_replica"] == {
        "A100": 10.0,
        "L4": 4.0,
    }


def test_a_count_in_a_key_is_dropped_as_skypilot_matches_by_name() -> None:
    spec = load_spec_text(spec_text(target="{'A100:1': 10, 'L4:1': 4}"))
    assert spec.service.policy.qps_per_accelerator == {"A100": 10.0, "L4": 4.0}


def test_keys_match_the_resources_in_any_case() -> None:
    spec = load_spec_text(spec_text(target="{a100: 10, l4: 4}"))
    assert spec.service.policy.qps_per_accelerator == {"a100": 10.0, "l4": 4.0}


def test_one_number_is_still_one_number() -> None:
    spec = load_spec_text(spec_text(target="2.5", policy="least_load"))
    assert spec.service.policy.target_qps_per_replica == 2.5
    assert spec.service.policy.qps_per_accelerator is None


def test_the_instance_aware_policy_with_one_number_weighs_every_replica_alike() -> None:
    spec = load_spec_text(spec_text(target="2.5"))
    assert spec.service.load_balancing_policy == "instance_aware_least_load"


def test_a_mapping_without_the_instance_aware_policy_names_the_policy_to_set() -> None:
    msg = error_of(spec_text(policy="least_load"))
    assert msg.startswith("service.load_balancing_policy: ")
    assert "set service.load_balancing_policy: instance_aware_least_load" in msg


def test_an_accelerator_the_resources_can_launch_needs_an_entry() -> None:
    msg = error_of(spec_text(target="{A100: 10}"))
    assert "service.replica_policy.target_qps_per_replica: " in msg
    assert "no entry for L4" in msg and "add 'L4: <requests/s" in msg


def test_an_any_of_candidate_counts_as_launchable() -> None:
    resources = (
        "accelerators: A100\n  any_of:\n    - cloud: aws\n    - cloud: gcp\n      accelerators: L4"
    )
    msg = error_of(spec_text(target="{A100: 10}", resources=resources))
    assert "no entry for L4" in msg


def test_an_unknown_accelerator_is_named_with_the_nearest_known_one() -> None:
    msg = error_of(spec_text(target="{A100: 10, L4: 4, L44: 3}"))
    assert "target_qps_per_replica.L44: 'L44' is not an accelerator" in msg
    assert "did you mean 'L4'?" in msg


def test_an_accelerator_the_catalog_knows_may_have_an_entry_the_resources_do_not_use() -> None:
    spec = load_spec_text(spec_text(target="{A100: 10, L4: 4, H100: 20}"))
    assert spec.service.policy.qps_per_accelerator == {"A100": 10.0, "L4": 4.0, "H100": 20.0}


def test_an_instance_type_stands_for_the_accelerator_it_carries() -> None:
    resources = "cloud: gcp\n  instance_type: a2-highgpu-1g"
    assert load_spec_text(spec_text(target="{A100: 10}", resources=resources))
    assert "no entry for A100" in error_of(spec_text(target="{L4: 4}", resources=resources))


def test_replicas_without_an_accelerator_cannot_be_weighed() -> None:
    msg = error_of(spec_text(resources="cpus: 2+"))
    assert "resources names no accelerator" in msg
    assert "give target_qps_per_replica as one number" in msg


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("{A100: 0, L4: 4}", "target_qps_per_replica.A100: expected a value greater than 0"),
        ("{A100: fast, L4: 4}", "target_qps_per_replica.A100: expected a number, got 'fast'"),
        ("{}", "target_qps_per_replica is an empty mapping"),
        ("0", "target_qps_per_replica: expected a value greater than 0, got 0"),
    ],
)
def test_a_bad_value_names_its_key(target: str, expected: str) -> None:
    msg = error_of(spec_text(target=target))
    assert expected in msg
    assert "problems" not in msg, "one mistake, one message"
