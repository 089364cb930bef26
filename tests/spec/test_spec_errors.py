"""Bad YAML is refused with the field's path, what was expected, and what to do."""

from __future__ import annotations

import pytest

from controller.spec import SpecError, load_spec_file, load_spec_text

OK = "service:\n  readiness_probe: /health\nresources:\n  ports: 8080\nrun: python app.py\n"


def error_of(text: str) -> str:
    with pytest.raises(SpecError) as err:
        load_spec_text(text)
    return str(err.value)


def test_typo_key_names_the_path_and_suggests_the_real_key() -> None:
    msg = error_of(OK.replace("readiness_probe", "readiness_prob"))
    assert "service.readiness_prob: unknown key" in msg
    assert "did you mean 'readiness_probe'?" in msg


def test_nested_typo_is_found_under_its_section() -> None:
    text = OK.replace("ports: 8080", "ports: 8080\n  use_spto: true")
    msg = error_of(text)
    assert "resources.use_spto" in msg and "did you mean 'use_spot'?" in msg


def test_wrong_type_says_what_was_expected() -> None:
    msg = error_of(
        OK.replace("readiness_probe: /health", "readiness_probe: /health\n  replicas: two")
    )
    assert "service.replicas: expected a whole number, got 'two'" in msg


def test_replicas_and_replica_policy_together_are_refused() -> None:
    msg = error_of(
        OK.replace("/health", "/health\n  replicas: 2\n  replica_policy: {min_replicas: 1}")
    )
    assert "both 'replicas' and 'replica_policy'" in msg


def test_min_above_max_is_refused() -> None:
    msg = error_of(
        OK.replace("/health", "/health\n  replica_policy: {min_replicas: 3, max_replicas: 2}")
    )
    assert "min_replicas (3) is greater than max_replicas (2)" in msg


def test_autoscaling_without_target_qps_is_refused() -> None:
    msg = error_of(
        OK.replace("/health", "/health\n  replica_policy: {min_replicas: 1, max_replicas: 3}")
    )
    assert "target_qps_per_replica" in msg


def test_spot_options_without_use_spot_are_refused() -> None:
    text = OK.replace(
        "/health", "/health\n  replica_policy: {min_replicas: 1, dynamic_ondemand_fallback: true}"
    )
    assert "set resources.use_spot: true" in error_of(text)


def test_missing_port_is_refused_with_a_hint() -> None:
    assert "add resources.ports" in error_of(OK.replace("resources:\n  ports: 8080\n", ""))


def test_two_ports_without_service_ports_are_refused() -> None:
    assert "exposes one" in error_of(OK.replace("ports: 8080", "ports: [8080, 9090]"))


def test_unknown_cloud_gets_a_suggestion() -> None:
    assert "did you mean 'gcp'?" in error_of(OK.replace("ports: 8080", "ports: 8080\n  cloud: gpc"))


def test_probe_path_must_be_absolute() -> None:
    assert "write '/health'" in error_of(OK.replace("/health", "health"))


def test_every_problem_is_listed_at_once() -> None:
    msg = error_of(OK.replace("readiness_probe", "readines_probe").replace("ports", "prots"))
    assert "service.readines_probe" in msg and "resources.prots" in msg


def test_missing_file_says_so(tmp_path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec_file(tmp_path / "nope.yaml")


def test_not_yaml_points_at_the_line() -> None:
    assert "line 3, column 1" in error_of("service:\n  readiness_probe: [\n")


def test_deeply_nested_document_is_refused_before_it_is_built() -> None:
    assert "nested deeper" in error_of("a: " + "[" * 50 + "]" * 50)


def test_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, k in zip("abcdefghi", "bcdefghij", strict=True)
    )
    assert "aliases repeated too often" in error_of(bomb)


def test_huge_document_is_refused(tmp_path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(OK + "envs:\n" + "".join(f"  K{i}: {'v' * 100}\n" for i in range(5000)))
    with pytest.raises(SpecError, match="limit"):
        load_spec_file(big)


def test_python_tags_are_not_executed() -> None:
    assert "not valid YAML" in error_of(OK + "x: !!python/object/apply:os.system ['echo hi']\n")


def test_bad_service_name_explains_the_rule() -> None:
    assert "lowercase letters" in error_of(OK + "name: My_Service\n")


@pytest.mark.parametrize("field", ["cpus", "memory"])
def test_cpus_and_memory_must_be_a_number_or_at_least_a_number(field: str) -> None:
    msg = error_of(OK.replace("ports: 8080", f"ports: 8080\n  {field}: four"))
    assert f"resources.{field}: {field} 'four' is not a positive number" in msg
    assert "8+" in msg
