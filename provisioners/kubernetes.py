"""Kubernetes replicas through the official client: one pod plus one service per replica.

A cluster is one location, `kubernetes/<context>/<namespace>`, and counts as on-demand
(its offers carry no spot price). It is a candidate only where the service YAML names
`cloud: kubernetes`: a kubeconfig on the operator's machine must not silently attract GPU
replicas, and the cluster's hourly price (`SERVE_KUBERNETES_HOURLY_PRICE`, default 0) is not
comparable with list prices.

Connection: an explicit `api_client`, else the in-cluster service account when running in a
pod, else the kubeconfig (`KUBECONFIG` or ~/.kube/config; context from
`SERVE_KUBERNETES_CONTEXT` or the current one). Constructors do no I/O: the cluster is
reached on first use. Environment: `SERVE_KUBERNETES_NAMESPACE` (default: the context's,
else `default`), `SERVE_KUBERNETES_IMAGE` (container image when the YAML gives no
`image_id`; default python:3.11-slim), `SERVE_KUBERNETES_SERVICE_TYPE` (ClusterIP when in
the cluster, else NodePort), `SERVE_KUBERNETES_GPU_RESOURCE` (default nvidia.com/gpu).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from policies.types import Location, Offer
from provisioners.base import (
    MANAGED_BY,
    TAG_LAUNCH_TOKEN,
    TAG_MANAGED_BY,
    TAG_SERVICE,
    CheckResult,
    Instance,
    LaunchRequest,
    ResourceRequest,
)
from provisioners.errors import InvalidRequest
from provisioners.kubernetes_errors import CREDENTIALS_HINT, KUBE_ERRORS, classify
from provisioners.kubernetes_objects import (
    label_value,
    meta,
    pod_manifest,
    service_manifest,
    to_instance,
)
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_startup_script

CLOUD = "kubernetes"
DEFAULT_IMAGE = "python:3.11-slim"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class _Cluster:
    api: k8s.CoreV1Api
    location: Location
    host: str

    @property
    def namespace(self) -> str:
        return self.location.zone


class KubernetesProvisioner:
    """The `Provisioner` for one Kubernetes namespace. Raises only `ProvisionError`s."""

    cloud = CLOUD

    def __init__(
        self,
        *,
        api_client: k8s.ApiClient | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        namespace: str | None = None,
        image: str | None = None,
        service_type: str | None = None,
        hourly_price: float | None = None,
    ):
        env = os.environ
        self._api_client = api_client
        self._kubeconfig = kubeconfig or env.get("KUBECONFIG") or None
        self._context = context or env.get("SERVE_KUBERNETES_CONTEXT") or None
        self._namespace = namespace or env.get("SERVE_KUBERNETES_NAMESPACE") or None
        self._image = image or env.get("SERVE_KUBERNETES_IMAGE") or DEFAULT_IMAGE
        self._service_type = service_type or env.get("SERVE_KUBERNETES_SERVICE_TYPE") or None
        price = env.get("SERVE_KUBERNETES_HOURLY_PRICE") or "0"
        self._price = hourly_price if hourly_price is not None else float(price)
        self._gpu_resource = env.get("SERVE_KUBERNETES_GPU_RESOURCE") or "nvidia.com/gpu"
        self._cluster: _Cluster | None = None
        self._lock = threading.Lock()

    @property
    def service_type(self) -> str:
        return self._service_type or ("ClusterIP" if self._in_cluster() else "NodePort")

    def check(self) -> CheckResult:
        try:
            cluster = self._connect()
            cluster.api.list_namespaced_pod(cluster.namespace, limit=1)
        except KUBE_ERRORS as exc:
            err = classify(exc, CLOUD)
            return CheckResult(self.cloud, False, f"cluster not usable: {err}", CREDENTIALS_HINT)
        where = f"namespace {cluster.namespace} of {cluster.host}"
        return CheckResult(self.cloud, True, f"{where} (location {cluster.location})")

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        if not any(place.cloud == CLOUD for place in resources.places):
            return []
        try:
            where = self._connect().location
        except KUBE_ERRORS:
            return []
        if not resources.allows(where):
            return []
        shape = str(resources.accelerators[0]) if resources.accelerators else "cpu"
        return [Offer(where, self._price, None, shape)]

    def launch(self, request: LaunchRequest) -> Instance:
        cluster = self._cluster_for(request.location)
        name = resource_name(request)
        image = (request.resources.image_id or self._image).removeprefix("docker:")
        script = build_startup_script(request)
        pod = pod_manifest(request, name, image, script, self._gpu_resource)
        try:
            created = self._create_pod(cluster, pod, request)
        except KUBE_ERRORS as exc:
            raise classify(exc, request.location.key) from exc
        manifest = service_manifest(request, name, str(meta(created).uid), self.service_type)
        try:
            service = self._create_service(cluster, manifest)
        except KUBE_ERRORS as exc:
            self._delete(cluster, name)
            raise classify(exc, request.location.key) from exc
        return to_instance(created, service, cluster.location, self.service_type)

    def get(self, instance_id: str, location: Location) -> Instance | None:
        cluster = self._cluster_for(location)
        try:
            pod = cluster.api.read_namespaced_pod(instance_id, cluster.namespace)
            service = self._read_service(cluster, instance_id)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise classify(exc, location.key) from exc
        except KUBE_ERRORS as exc:
            raise classify(exc, location.key) from exc
        return to_instance(pod, service, cluster.location, self.service_type)

    def terminate(self, instance_id: str, location: Location) -> None:
        self._delete(self._cluster_for(location), instance_id, quietly=False)

    def list_owned(self, service: str | None = None) -> list[Instance]:
        """Every owned pod in the namespace, ended ones included (as TERMINATED or PREEMPTED):
        a pod that ran to its end stays until deleted, so the caller can reap it."""
        cluster = self._cluster_for(None)
        selector = f"{TAG_MANAGED_BY}={MANAGED_BY}"
        if service is not None:
            selector += f",{TAG_SERVICE}={label_value(service)}"
        try:
            pods = cluster.api.list_namespaced_pod(cluster.namespace, label_selector=selector)
            services = cluster.api.list_namespaced_service(
                cluster.namespace, label_selector=selector
            )
        except KUBE_ERRORS as exc:
            raise classify(exc, cluster.location.key) from exc
        by_name = {meta(s).name: s for s in services.items}
        return [
            to_instance(p, by_name.get(meta(p).name), cluster.location, self.service_type)
            for p in pods.items
        ]

    def _create_pod(self, cluster: _Cluster, pod: k8s.V1Pod, request: LaunchRequest) -> k8s.V1Pod:
        """Create the pod; a retried launch finds the pod its first attempt made."""
        name = str(meta(pod).name)
        try:
            return cluster.api.create_namespaced_pod(cluster.namespace, pod)
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = cluster.api.read_namespaced_pod(name, cluster.namespace)
        token = (meta(existing).labels or {}).get(TAG_LAUNCH_TOKEN)
        if token != label_value(request.launch_token):
            raise InvalidRequest(
                f"pod {name} already exists in {cluster.namespace} but belongs to another "
                "launch; delete it or use another service name",
                location=cluster.location.key,
            )
        return existing

    def _create_service(self, cluster: _Cluster, service: k8s.V1Service) -> k8s.V1Service:
        try:
            return cluster.api.create_namespaced_service(cluster.namespace, service)
        except ApiException as exc:
            if exc.status != 409:
                raise
        return cluster.api.read_namespaced_service(str(meta(service).name), cluster.namespace)

    def _read_service(self, cluster: _Cluster, name: str) -> k8s.V1Service | None:
        try:
            return cluster.api.read_namespaced_service(name, cluster.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _delete(self, cluster: _Cluster, name: str, *, quietly: bool = True) -> None:
        """Delete pod and service; "not found" is success. `quietly` also drops other errors
        (used while undoing a failed launch, whose own error is the one to report)."""
        for delete in (cluster.api.delete_namespaced_pod, cluster.api.delete_namespaced_service):
            try:
                delete(name, cluster.namespace)
            except ApiException as exc:
                if exc.status != 404 and not quietly:
                    raise classify(exc, cluster.location.key) from exc
            except KUBE_ERRORS as exc:
                if not quietly:
                    raise classify(exc, cluster.location.key) from exc

    def _cluster_for(self, location: Location | None) -> _Cluster:
        try:
            cluster = self._connect()
        except KUBE_ERRORS as exc:
            raise classify(exc, CLOUD) from exc
        if location is not None and location != cluster.location:
            raise InvalidRequest(
                f"this provisioner manages {cluster.location}, not {location}; set "
                "SERVE_KUBERNETES_CONTEXT / SERVE_KUBERNETES_NAMESPACE to use another",
                location=location.key,
            )
        return cluster

    def _connect(self) -> _Cluster:
        with self._lock:
            if self._cluster is None:
                self._cluster = self._load()
            return self._cluster

    def _load(self) -> _Cluster:
        if self._api_client is not None:
            api_client, context, namespace = self._api_client, self._context or "custom", None
        elif self._in_cluster():
            configuration = k8s.Configuration()
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            api_client, context = k8s.ApiClient(configuration), "in-cluster"
            namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
        else:
            api_client, context, namespace = self._from_kubeconfig()
        namespace = self._namespace or namespace or "default"
        host = str(api_client.configuration.host)
        return _Cluster(k8s.CoreV1Api(api_client), Location(CLOUD, context, namespace), host)

    def _from_kubeconfig(self) -> tuple[k8s.ApiClient, str, str | None]:
        path = self._kubeconfig or str(Path("~/.kube/config").expanduser())
        contexts, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path
        )
        name = self._context or (active or {}).get("name")
        chosen = next((c for c in contexts if c["name"] == name), None)
        if chosen is None:
            raise ConfigException(f"context {name!r} is not in the kubeconfig {path}")
        api_client = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path, context=name, persist_config=False
        )
        return api_client, str(name), chosen.get("context", {}).get("namespace")

    def _in_cluster(self) -> bool:
        return (
            self._api_client is None
            and self._kubeconfig is None
            and "KUBERNETES_SERVICE_HOST" in os.environ
            and (SERVICE_ACCOUNT / "token").exists()
        )
