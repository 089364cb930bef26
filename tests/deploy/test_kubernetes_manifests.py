"""Every manifest in deploy/kubernetes/ is valid against the Kubernetes schema (the schemas
ship inside kubernetes-validate: no cluster and no network needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
VERSION = "1.30.0"


def resources(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(manifest: Path) -> None:
    docs = resources(manifest.read_text())
    assert docs, f"{manifest.name} holds no resource"
    validate_all(docs)


def test_the_load_balancer_template_stays_valid_for_a_real_service_name() -> None:
    """The README tells operators to sed the placeholder: what they apply must be valid."""
    text = (KUBERNETES / "load-balancer.yaml").read_text().replace("service-name", "hello")
    docs = resources(text)
    validate_all(docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["metadata"]["name"] == "spotserve-lb-hello"
    assert deployment["spec"]["replicas"] == 2
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--service=hello" in args


def test_load_balancers_use_the_controllers_image_and_secret() -> None:
    controller = resources((KUBERNETES / "controller.yaml").read_text())
    balancer = resources((KUBERNETES / "load-balancer.yaml").read_text())

    def pod(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
        return dict(next(d for d in docs if d["kind"] == kind)["spec"]["template"]["spec"])

    controller_pod, lb_pod = pod(controller, "StatefulSet"), pod(balancer, "Deployment")
    assert lb_pod["containers"][0]["image"] == controller_pod["containers"][0]["image"]
    secret = {v["secret"]["secretName"] for v in lb_pod["volumes"]}
    assert secret == {v["secret"]["secretName"] for v in controller_pod["volumes"]}
    env = {e["name"]: e.get("value") for e in controller_pod["containers"][0]["env"]}
    assert env["SERVE_START_LOAD_BALANCERS"] == "0", "the LB pods are the service's only ones"


def test_the_validator_rejects_a_misspelt_field() -> None:
    """The check above can fail: a typo in a pod spec is caught, not ignored."""
    doc = resources((KUBERNETES / "load-balancer.yaml").read_text())[0]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSION, strict=True)
