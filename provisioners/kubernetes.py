"""Kubernetes replicas through the official client: one pod, one service and (when the
version has a bundle) one bundle Secret per replica (`kubernetes_objects`).

A cluster is one location, `kubernetes/<context>/<namespace>`, and counts as on-demand
(its offers carry no spot price). It is a candidate only where the service YAML names
`cloud: kubernetes`: a kubeconfig on the operator's machine must not silently attract GPU
replicas, and the cluster's hourly price (`SERVE_KUBERNETES_HOURLY_PRICE`, default 0) is not
comparable with list prices.

Connection: an explicit `api_client`, else the in-cluster service account when running in a
pod, else the kubeconfig (`KUBECONFIG` or ~/.kube/config; context from
`SERVE_KUBERNETES_CONTEXT` or the current one). Constructors do no I/O: the cluster is
reached on first use. Every API call carries `_request_timeout=(connect, read)`. The other
settings are listed in `kubernetes_settings`.

The pod is created first, then its bundle Secret and its service, both owned by the pod;
a failure after the pod deletes what was made. A bundle larger than a Secret holds is
refused before anything is created. A pod the scheduler cannot place is accepted and later
reported REFUSED (`kubernetes_state`); `terminate` deletes pod, service and Secret by name
and answers True only once the API server no longer knows any of them (404). `release`
deletes any bundle Secret of the service still left (the garbage collector's work, done
again in case it is paused or slow).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.util.retry import Retry

from policies.types import Location, Offer
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    MANAGED_BY,
    READ_TIMEOUT_SECONDS,
    TAG_LAUNCH_TOKEN,
    TAG_MANAGED_BY,
    TAG_SERVICE,
    CheckResult,
    Instance,
    LaunchRequest,
    ResourceRequest,
    agent_port,
)
from provisioners.errors import InvalidRequest, ProvisionError
from provisioners.kubernetes_errors import (
    CREDENTIALS_HINT,
    KUBE_ERRORS,
    classify,
    kube_calls,
    status_message,
)
from provisioners.kubernetes_nodes import NodeAddressCache, NodeAddresses, endpoint
from provisioners.kubernetes_objects import (
    bundle_secret_manifest,
    bundle_secret_name,
    bundle_url,
    check_bundle_fits,
    check_ports,
    label_value,
    meta,
    pod_manifest,
    service_manifest,
)
from provisioners.kubernetes_placement import UnknownGpuModel
from provisioners.kubernetes_settings import KubernetesSettings
from provisioners.kubernetes_state import (
    annotated_port,
    leftover_instance,
    pod_state,
    to_instance,
)
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_boot_script

CLOUD = "kubernetes"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
Timeout = tuple[float, float]
RETRIES = Retry(total=2, connect=2, read=0, status=0)
"""urllib3 retries a failed connect, never a request already sent: by default it retries
reads three times, so a hung API server would cost four read timeouts instead of one, and
a retried POST may repeat what the first one did."""


@dataclass(frozen=True)
class _Cluster:
    api: k8s.CoreV1Api
    location: Location
    host: str
    timeout: Timeout

    @property
    def namespace(self) -> str:
        return self.location.zone

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One API call with the connect and read timeouts: a hung API server costs a
        bounded wait, never a stuck tick."""
        return method(*args, _request_timeout=self.timeout, **kwargs)


class KubernetesProvisioner:
    """The `Provisioner` for one Kubernetes namespace. Raises only `ProvisionError`s."""

    cloud = CLOUD

    def __init__(
        self,
        *,
        installation: str = "",
        api_client: k8s.ApiClient | None = None,
        kubeconfig: str | None = None,
        context: str | None = None,
        settings: KubernetesSettings | None = None,
        request_timeout: Timeout = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    ):
        self.installation = installation
        env = os.environ
        self._api_client = api_client
        self._kubeconfig = kubeconfig or env.get("KUBECONFIG") or None
        self._context = context or env.get("SERVE_KUBERNETES_CONTEXT") or None
        self._settings = settings or KubernetesSettings.from_env(env)
        self._timeout = request_timeout
        self._cluster: _Cluster | None = None
        self._lock = threading.Lock()
        self._nodes = NodeAddressCache(self._read_node)

    @property
    def service_type(self) -> str:
        return self._settings.service_type or ("ClusterIP" if self._in_cluster() else "NodePort")

    def check(self) -> CheckResult:
        try:
            cluster = self._connect()
            cluster.call(cluster.api.list_namespaced_pod, cluster.namespace, limit=1)
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
        return [Offer(where, self._settings.hourly_price, None, shape)]

    def launch(self, request: LaunchRequest) -> Instance:
        check_bundle_fits(request)
        cluster = self._cluster_for(request.location)
        name = resource_name(request)
        image = (request.resources.image_id or self._settings.image).removeprefix("docker:")
        port = agent_port(os.environ)
        check_ports(request, port)
        script = build_boot_script(
            request, bundle_url=bundle_url(request), cloud=CLOUD, agent_port=port
        )
        try:
            pod = pod_manifest(request, name, image, script, self._settings, port)
        except UnknownGpuModel as exc:
            raise InvalidRequest(str(exc), location=request.location.key) from exc
        bundle = self._bundle_bytes(request)
        with kube_calls(request.location.key):
            created = self._create_pod(cluster, pod, request)
        uid = str(meta(created).uid)
        manifest = service_manifest(request, name, uid, self.service_type, port)
        try:
            with kube_calls(request.location.key):
                if bundle is not None:
                    secret = bundle_secret_manifest(request, name, uid, bundle)
                    self._create(cluster, cluster.api.create_namespaced_secret, secret)
                service = self._create_service(cluster, manifest)
        except ProvisionError:
            self._undo(cluster, name)
            raise
        return self._instance(cluster, created, service)

    @staticmethod
    def _bundle_bytes(request: LaunchRequest) -> bytes | None:
        """The bundle from the controller's disk (at most a Secret's 1 MiB)."""
        if request.bundle is None:
            return None
        try:
            return request.bundle.path.read_bytes()
        except OSError as exc:
            raise InvalidRequest(
                f"cannot read the bundle {request.bundle.path}: {exc}",
                location=request.location.key,
            ) from exc

    def get(self, instance_id: str, location: Location) -> Instance | None:
        cluster = self._cluster_for(location)
        with kube_calls(location.key):
            pod = self._read(cluster, cluster.api.read_namespaced_pod, instance_id)
            if pod is None:
                return None
            service = self._read(cluster, cluster.api.read_namespaced_service, instance_id)
        return self._instance(cluster, pod, service)

    def terminate(self, instance_id: str, location: Location) -> bool:
        """Delete pod, service and bundle Secret by name (a pod gets its grace period to
        stop); True once the API server answers 404 for all three, which is not the same
        as "deletion started": a pod stays, with a deletionTimestamp, until its kubelet
        confirms it stopped."""
        cluster = self._cluster_for(location)
        api = cluster.api
        with kube_calls(location.key):
            pod_gone = self._delete(
                cluster, api.delete_namespaced_pod, api.read_namespaced_pod, instance_id
            )
            service_gone = self._delete(
                cluster, api.delete_namespaced_service, api.read_namespaced_service, instance_id
            )
            secret_gone = self._delete(
                cluster,
                api.delete_namespaced_secret,
                api.read_namespaced_secret,
                bundle_secret_name(instance_id),
            )
        return pod_gone and service_gone and secret_gone

    def release(self, service: str) -> bool:
        """Delete the service's bundle Secrets still left (each goes with its pod, unless
        the garbage collector is behind); True once none is."""
        cluster = self._cluster_for(None)
        selector = f"{TAG_MANAGED_BY}={MANAGED_BY},{TAG_SERVICE}={label_value(service)}"
        api = cluster.api
        with kube_calls(cluster.location.key):
            secrets = cluster.call(
                api.list_namespaced_secret, cluster.namespace, label_selector=selector
            ).items
            gone = [
                self._delete(
                    cluster, api.delete_namespaced_secret, api.read_namespaced_secret, name
                )
                for name in (str(meta(s).name) for s in secrets)
            ]
        return all(gone)

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        """Every owned pod in the namespace whatever its state (an ended pod stays until
        deleted), and every owned service whose pod is gone, as a LOST instance. `regions`
        does not narrow anything: the provisioner's one location is one cluster namespace,
        listed in one call."""
        cluster = self._cluster_for(None)
        selector = f"{TAG_MANAGED_BY}={MANAGED_BY}"
        if service is not None:
            selector += f",{TAG_SERVICE}={label_value(service)}"
        api = cluster.api
        with kube_calls(cluster.location.key):
            pods = cluster.call(
                api.list_namespaced_pod, cluster.namespace, label_selector=selector
            ).items
            services = cluster.call(
                api.list_namespaced_service, cluster.namespace, label_selector=selector
            ).items
        by_name = {meta(s).name: s for s in services}
        listed = [self._instance(cluster, p, by_name.pop(meta(p).name, None)) for p in pods]
        return listed + [leftover_instance(s, cluster.location) for s in by_name.values()]

    def _instance(
        self, cluster: _Cluster, pod: k8s.V1Pod, service: k8s.V1Service | None
    ) -> Instance:
        state = pod_state(pod, cluster.location, self._settings.unschedulable_grace_seconds)
        reach = endpoint(
            pod,
            service,
            self.service_type,
            annotated_port(pod),
            self._nodes.addresses,
            self._settings.node_address,
        )
        if reach.note:
            state = replace(state, detail=f"{state.detail}; {reach.note}")
        where = (reach.address, reach.port)
        return to_instance(pod, state, cluster.location, where, reach.agent_port)

    def _read_node(self, name: str) -> NodeAddresses:
        cluster = self._connect()
        try:
            return NodeAddresses.of(cluster.call(cluster.api.read_node, name))
        except ApiException as exc:
            lasting = exc.status in (401, 403, 404)
            problem = f"cannot read node {name}: {status_message(exc)}"
            return NodeAddresses(problem=problem, lasting=lasting)
        except KUBE_ERRORS as exc:
            return NodeAddresses(problem=f"cannot read node {name}: {exc}", lasting=False)

    def _create_pod(self, cluster: _Cluster, pod: k8s.V1Pod, request: LaunchRequest) -> k8s.V1Pod:
        """Create the pod; a retried launch finds the pod its first attempt made."""
        name = str(meta(pod).name)
        try:
            created: k8s.V1Pod = cluster.call(
                cluster.api.create_namespaced_pod, cluster.namespace, pod
            )
            return created
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing: k8s.V1Pod = cluster.call(cluster.api.read_namespaced_pod, name, cluster.namespace)
        token = (meta(existing).labels or {}).get(TAG_LAUNCH_TOKEN)
        if token != label_value(request.launch_token):
            raise InvalidRequest(
                f"pod {name} already exists in {cluster.namespace} but belongs to another "
                "launch; delete it or use another service name",
                location=cluster.location.key,
            )
        return existing

    def _create(self, cluster: _Cluster, create: Callable[..., Any], obj: Any) -> None:
        """Create an object; one that exists already (a retried launch made it) will do."""
        try:
            cluster.call(create, cluster.namespace, obj)
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _create_service(self, cluster: _Cluster, service: k8s.V1Service) -> k8s.V1Service:
        try:
            created: k8s.V1Service = cluster.call(
                cluster.api.create_namespaced_service, cluster.namespace, service
            )
            return created
        except ApiException as exc:
            if exc.status != 409:
                raise
        found: k8s.V1Service = cluster.call(
            cluster.api.read_namespaced_service, str(meta(service).name), cluster.namespace
        )
        return found

    def _read(self, cluster: _Cluster, read: Callable[..., Any], name: str) -> Any:
        """The object, or None if the API server does not know it (404)."""
        try:
            return cluster.call(read, name, cluster.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _delete(
        self,
        cluster: _Cluster,
        delete: Callable[..., Any],
        read: Callable[..., Any],
        name: str,
    ) -> bool:
        """Ask for the deletion; True if the object is gone (404 to the delete, or to the
        read that follows an accepted delete: a service or an unscheduled pod goes at once,
        a running pod only after its grace period)."""
        try:
            cluster.call(delete, name, cluster.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return self._read(cluster, read, name) is None

    def _undo(self, cluster: _Cluster, name: str) -> None:
        """Delete what a failed launch created; its own error is the one to report, so
        failures here are dropped (the reaper finds the tagged pod later)."""
        api = cluster.api
        for delete, what in (
            (api.delete_namespaced_pod, name),
            (api.delete_namespaced_service, name),
            (api.delete_namespaced_secret, bundle_secret_name(name)),
        ):
            with contextlib.suppress(*KUBE_ERRORS):
                cluster.call(delete, what, cluster.namespace)

    def _cluster_for(self, location: Location | None) -> _Cluster:
        with kube_calls(CLOUD):
            cluster = self._connect()
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
            configuration = _configuration()
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            api_client, context = k8s.ApiClient(configuration), "in-cluster"
            namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
        else:
            api_client, context, namespace = self._from_kubeconfig()
        namespace = self._settings.namespace or namespace or "default"
        host = str(api_client.configuration.host)
        location = Location(CLOUD, context, namespace)
        return _Cluster(k8s.CoreV1Api(api_client), location, host, self._timeout)

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
            config_file=path,
            context=name,
            persist_config=False,
            client_configuration=_configuration(),
        )
        return api_client, str(name), chosen.get("context", {}).get("namespace")

    def _in_cluster(self) -> bool:
        return (
            self._api_client is None
            and self._kubeconfig is None
            and "KUBERNETES_SERVICE_HOST" in os.environ
            and (SERVICE_ACCOUNT / "token").exists()
        )


def _configuration() -> k8s.Configuration:
    configuration = k8s.Configuration()
    configuration.retries = RETRIES
    return configuration
