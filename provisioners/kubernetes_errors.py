"""One table from Kubernetes API answers to the provisioning error vocabulary.

The API server answers a refusal with an HTTP status and a `Status` object
(`{"kind": "Status", "reason": "Forbidden", "message": ..., "code": 403}`). 403 means two
different things: RBAC forbids the call (a person must grant it), or the ResourceQuota
admission plugin refused the pod (try elsewhere). The quota plugin's messages
(k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go, CheckRequest) are
`pods "x" is forbidden: exceeded quota: <quota>, requested: ..., used: ..., limited: ...`,
`... failed quota: <quota>: must specify limits.cpu,limits.memory` (a quota on a resource
the pod does not declare) and `... insufficient quota to consume: ...`. A pod the cluster
cannot place is not refused at all: it is accepted and stays Pending (see
`kubernetes_state`: reported REFUSED).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager

from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError

from provisioners.errors import (
    CredentialsError,
    ProvisionError,
    QuotaExceeded,
    TransientError,
    kind_for_status,
    mapped_errors,
    with_hint,
)

KUBE_ERRORS = (ApiException, ConfigException, HTTPError)
CREDENTIALS_HINT = (
    "point KUBECONFIG (or ~/.kube/config) at the cluster, or run the controller in the "
    "cluster with a service account; it needs create/get/list/delete on pods, services "
    "and secrets in the namespace (SERVE_KUBERNETES_NAMESPACE, default: the context's), and get on "
    "nodes (a ClusterRole) to reach NodePort services at a node's external address"
)

QUOTA_MARKERS = ("exceeded quota:", "failed quota:", "insufficient quota to consume")


def kube_calls(location: str | None) -> AbstractContextManager[None]:
    """Every Kubernetes client error raised in the block leaves it as the vocabulary error."""
    return mapped_errors(KUBE_ERRORS, _classify_any, location)


def _classify_any(exc: BaseException, location: str | None) -> ProvisionError:
    assert isinstance(exc, KUBE_ERRORS)
    return classify(exc, location or "kubernetes")


def classify(exc: ApiException | ConfigException | HTTPError, location: str) -> ProvisionError:
    """The vocabulary error for an exception raised by a Kubernetes client call."""
    if isinstance(exc, ConfigException):
        return CredentialsError(f"{exc}; {CREDENTIALS_HINT}", location=location)
    if isinstance(exc, HTTPError):
        return TransientError(f"could not reach the Kubernetes API: {exc}", location=location)
    status = int(exc.status or 0)
    message = status_message(exc)
    reason = str(exc.reason or "")
    if status == 403 and any(marker in message for marker in QUOTA_MARKERS):
        return QuotaExceeded(
            f"{message}; raise the namespace's ResourceQuota or free capacity",
            location=location,
            code=reason,
        )
    kind = kind_for_status(status)
    hint = CREDENTIALS_HINT if kind is CredentialsError else None
    return kind(with_hint(message, hint), location=location, code=reason or None)


def status_message(exc: ApiException) -> str:
    """The `message` of the Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    text = body.get("message") if isinstance(body, dict) else None
    return str(text or exc.reason or f"HTTP {exc.status}")
