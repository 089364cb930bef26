"""Which READY replicas the load balancers get during an update, and when an update keeps
the running replicas (pure functions of controller/updates.py)."""

from __future__ import annotations

from controller.spec import load_spec_text
from controller.updates import runtime_key, serving

SPEC = """
service: {readiness_probe: /health, replicas: 2}
resources: {ports: 8080}
run: python3 app.py
envs: {MODEL_NAME: a}
"""


def _key(text: str, bundle: str | None = "b1") -> str:
    return runtime_key(load_spec_text(text).model_dump(mode="json"), bundle)


def test_blue_green_keeps_the_old_version_until_the_new_one_is_wholly_ready() -> None:
    ready = [("http://old-1", 1), ("http://old-2", 1), ("http://new-3", 2)]
    assert serving(ready, 2, "blue_green", 2) == ["http://old-1", "http://old-2"]
    ready.append(("http://new-4", 2))
    assert serving(ready, 2, "blue_green", 2) == ["http://new-3", "http://new-4"]


def test_blue_green_serves_the_new_version_when_no_old_replica_is_ready() -> None:
    assert serving([("http://new-3", 2)], 2, "blue_green", 2) == ["http://new-3"]


def test_rolling_serves_every_ready_replica() -> None:
    ready = [("http://old-1", 1), ("http://new-3", 2)]
    assert serving(ready, 2, "rolling", 2) == ["http://old-1", "http://new-3"]


def test_only_service_fields_changed_means_the_same_runtime() -> None:
    counts = SPEC.replace("replicas: 2", "replicas: 5").replace("/health", "/v1/models")
    assert _key(counts) == _key(SPEC)
    lb = SPEC.replace("replicas: 2}", "replicas: 2, load_balancing_policy: round_robin}")
    assert _key(lb) == _key(SPEC)


def test_what_a_replica_runs_with_is_a_new_runtime() -> None:
    assert _key(SPEC.replace("MODEL_NAME: a", "MODEL_NAME: b")) != _key(SPEC)
    assert _key(SPEC.replace("python3 app.py", "python3 app2.py")) != _key(SPEC)
    assert _key(SPEC, bundle="b2") != _key(SPEC)
    ports = SPEC.replace("replicas: 2}", "replicas: 2, ports: 9000}")
    assert _key(ports) != _key(SPEC), "the replica port is part of what it runs with"
