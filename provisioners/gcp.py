"""GCP adapter: google-cloud-compute instances, spot or on-demand, two firewall rules each.

No call waits for an operation. `launch` puts the version's bundle in the installation's GCS
bucket (`gcs_store`, once per digest) and signs a URL for the boot script, then starts the
firewall-rule inserts (service port to `SERVE_INGRESS_CIDR`, agent port to
`SERVE_CONTROLLER_CIDR`) and the instance insert, and returns the PENDING instance. A store
that fails fails the launch before anything is created. An insert that later ends in an
error (ZONE_RESOURCE_POOL_EXHAUSTED, QUOTA_EXCEEDED) is reported by `get` and `list_owned` as
REFUSED, read from the instance's zone operations (`gcp_history`). `terminate` starts the
instance delete, then (once the instance is gone) the rules' deletes, and says True once
all are gone; the operations it started are remembered between calls so that a repeat polls
them instead of deleting again (after a restart it simply deletes again: not found is gone).

Preemption: a SPOT instance is created with termination action DELETE, so after preemption
the instance is gone. What Compute Engine keeps is the zone operation
`compute.instances.preempted` whose `targetLink` is the instance (the documented way to list
a VM's preemption history). `get` reads that record when the instance is missing or on its
way down, so PREEMPTED is reported from the cloud's own word, not guessed. The replica's
firewall rules, which carry the ownership tags in their description, outlive the instance
until `terminate`; the service-port rule supplies the identity of a vanished instance, and
either rule makes leftovers show up in `list_owned` so that the orphan reaper deletes them.
A vanished instance without a preemption record is LOST.

`release(service)` empties the service's prefix in the bucket; `sign_source` hands a replica
signed URLs for a `gs://` bucket mount.

Every call has the shared connect and read timeouts. Constructors do no I/O: credentials,
project, clients and the bucket store are resolved on first use.
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import compute_v1

from policies.types import Location, Offer
from provisioners.base import (
    CONNECT_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    TAG_MANAGED_BY,
    TAG_SERVICE,
    CheckResult,
    Instance,
    LaunchRequest,
    ResourceRequest,
)
from provisioners.base import agent_port as configured_agent_port
from provisioners.base import controller_cidr as configured_controller_cidr
from provisioners.base import ingress_cidr as configured_ingress_cidr
from provisioners.catalog import Catalog, default_catalog
from provisioners.errors import CredentialsError, ProvisionError, TransientError
from provisioners.gcp_errors import (
    CREDENTIALS_HINT,
    SDK_ERRORS,
    from_api_error,
    from_operation_error,
    gcp_calls,
)
from provisioners.gcp_history import InstanceHistory
from provisioners.gcp_resources import (
    DEFAULT_NETWORK,
    PREEMPTION_STATUSES,
    Identity,
    agent_firewall_body,
    firewall_body,
    firewall_name,
    identity_from_firewall,
    instance_body,
    instance_of_rule,
    instance_url,
    label_value,
    pending_instance,
    rule_names,
    to_instance,
    tombstone,
)
from provisioners.gcs_store import GCSBundleStore
from provisioners.object_store import ObjectStore, SignedObject, stage_bundle
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_boot_script

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_DONE = compute_v1.Operation.Status.DONE


class ConnectAndReadTimeout:
    """A google-api-core timeout that hands the REST transport a `(connect, read)` pair,
    which `requests` applies separately (a plain float would be used for both)."""

    def __init__(self, connect: float, read: float) -> None:
        self.pair = (connect, read)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def with_timeouts(*args: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = self.pair
            return func(*args, **kwargs)

        return with_timeouts


@dataclass(frozen=True)
class _Clients:
    project: str
    instances: compute_v1.InstancesClient
    zone_ops: compute_v1.ZoneOperationsClient
    firewalls: compute_v1.FirewallsClient
    global_ops: compute_v1.GlobalOperationsClient


class GCPProvisioner:
    """Compute Engine through google-cloud-compute; raises only `ProvisionError`s."""

    cloud = "gcp"

    def __init__(
        self,
        *,
        installation: str = "",
        project: str | None = None,
        catalog: Catalog | None = None,
        api_endpoint: str | None = None,
        credentials: Any = None,
        image: str | None = None,
        network: str | None = None,
        ingress_cidr: str | None = None,
        controller_cidr: str | None = None,
        store: ObjectStore | None = None,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
    ) -> None:
        self.installation = installation
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        self.api_endpoint = api_endpoint or os.environ.get("SERVE_GCP_API_ENDPOINT") or None
        self.image = image or os.environ.get("SERVE_GCP_IMAGE") or None
        self.network = network or os.environ.get("SERVE_GCP_NETWORK") or DEFAULT_NETWORK
        self.ingress_cidr = ingress_cidr or configured_ingress_cidr(os.environ)
        self.controller_cidr = controller_cidr or configured_controller_cidr(os.environ)
        self.agent_port = configured_agent_port(os.environ)
        self._timeout = ConnectAndReadTimeout(*timeouts)
        self._catalog = catalog
        self._credentials = credentials
        self._store = store
        self._clients: _Clients | None = None
        self._deleting: dict[str, str] = {}
        """Delete operations started by `terminate`, by resource URL, until seen DONE."""
        self._lock = threading.Lock()

    def check(self) -> CheckResult:
        try:
            c = self._connect()
            with gcp_calls(None):
                c.instances.aggregated_list(
                    request=self._owned_query(c, None, max_results=1), timeout=self._timeout
                )
        except ProvisionError as err:
            hint = CREDENTIALS_HINT if isinstance(err, CredentialsError) else ""
            return CheckResult(self.cloud, usable=False, reason=str(err), hint=hint)
        return CheckResult(self.cloud, usable=True, reason=f"project {c.project} answers")

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return self.catalog.offers(self.cloud, resources)

    def launch(self, request: LaunchRequest) -> Instance:
        c = self._connect()
        name = resource_name(request, max_len=57)
        bundle_url = stage_bundle(self.bundles, request)  # fails before anything is created
        opened: list[str] = []
        try:
            opened = self._open_ports(c, request, name)
            self._insert(c, request, name, bundle_url)
        except ProvisionError as err:
            if not isinstance(err, TransientError):
                self._start_closing(c, opened)
            raise
        return pending_instance(request, name, self.agent_port)

    def get(self, instance_id: str, location: Location) -> Instance | None:
        c = self._connect()
        with gcp_calls(location.key):
            try:
                gce = c.instances.get(
                    project=c.project,
                    zone=location.zone,
                    instance=instance_id,
                    timeout=self._timeout,
                )
            except gexc.NotFound:
                return self._vanished(c, instance_id, location)
        return self._view(c, gce, location)

    def terminate(self, instance_id: str, location: Location) -> bool:
        """Starts the instance delete; once the instance is gone, the firewall-rule delete.
        True once both are gone, False while either is under way."""
        c = self._connect()
        url = instance_url(c.project, location.zone, instance_id)
        instance_gone = self._deleted(
            url,
            start=lambda: c.instances.delete_unary(
                project=c.project,
                zone=location.zone,
                instance=instance_id,
                timeout=self._timeout,
            ),
            poll=lambda op: c.zone_ops.get(
                project=c.project, zone=location.zone, operation=op, timeout=self._timeout
            ),
            where=location.key,
            # Early in its insert Compute Engine may answer 404 for an instance it is
            # about to create: not found is gone only once no insert is running.
            still_coming=lambda: self._history(c, location, instance_id).insert_pending,
        )
        if not instance_gone:
            return False
        rules_gone = [self._rule_deleted(c, rule, location) for rule in rule_names(instance_id)]
        return all(rules_gone)

    def release(self, service: str) -> bool:
        """Empties the service's `bundles/<service>/` prefix in the installation's bucket."""
        return self.bundles.delete_service(service)

    def sign_source(self, source: str, seconds: int) -> list[SignedObject] | None:
        """Signed URLs for a `gs://` bucket mount, so the VM needs no credentials of its own."""
        return self.bundles.sign_source(source, seconds)

    @property
    def bundles(self) -> ObjectStore:
        """The installation's GCS bucket store, made on first use (reads the environment)."""
        if self._store is None:
            self._store = GCSBundleStore(self.installation)
        return self._store

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        """Owned instances (aggregated over every zone in one call, then narrowed to
        `regions`) and the leftovers of gone ones: firewall rules whose instance is missing,
        reported as refused, pending, preempted or lost from the zone operations."""
        c = self._connect()
        wanted = None if regions is None else set(regions)
        found: dict[str, Instance] = {}
        with gcp_calls(None):
            pages = c.instances.aggregated_list(
                request=self._owned_query(c, service), timeout=self._timeout
            )
            for scope, listing in pages:
                location = _location_of(scope.rsplit("/", 1)[-1])
                if wanted is not None and location.region not in wanted:
                    continue
                for gce in listing.instances:
                    inst = self._view(c, gce, location)
                    if inst is not None:
                        found[inst.instance_id] = inst
            for rule in c.firewalls.list(project=c.project, timeout=self._timeout):
                leftover = self._leftover(c, rule, service, wanted, found)
                if leftover is not None:
                    found[leftover.instance_id] = leftover
        return list(found.values())

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = default_catalog()
        return self._catalog

    def _connect(self) -> _Clients:
        if self._clients is None:
            credentials, project = self._resolve_credentials()
            options = ClientOptions(api_endpoint=self.api_endpoint) if self.api_endpoint else None
            kwargs: dict[str, Any] = {"credentials": credentials, "client_options": options}
            self._clients = _Clients(
                project=project,
                instances=compute_v1.InstancesClient(**kwargs),
                zone_ops=compute_v1.ZoneOperationsClient(**kwargs),
                firewalls=compute_v1.FirewallsClient(**kwargs),
                global_ops=compute_v1.GlobalOperationsClient(**kwargs),
            )
        return self._clients

    def _resolve_credentials(self) -> tuple[Any, str]:
        credentials, project = self._credentials, self.project
        if credentials is None and self.api_endpoint and self.api_endpoint.startswith("http://"):
            # A plain-http endpoint is a local fake: never send real credentials to it.
            from google.oauth2.credentials import Credentials

            credentials = Credentials(token="local-endpoint")  # type: ignore[no-untyped-call]
        if credentials is None:
            import google.auth

            with gcp_calls(None):
                credentials, found = google.auth.default(scopes=list(SCOPES))
            project = project or found
        if not project:
            raise CredentialsError(f"no GCP project is set; {CREDENTIALS_HINT}", code="no-project")
        return credentials, project

    def _open_ports(self, c: _Clients, request: LaunchRequest, name: str) -> list[str]:
        """Starts inserting the service-port and agent-port rules; returns the names of
        those it created (a rule of that name that exists already is a repeat's)."""
        rules = [
            firewall_body(request, name, self.ingress_cidr, self.network),
            agent_firewall_body(request, name, self.controller_cidr, self.agent_port, self.network),
        ]
        opened: list[str] = []
        for rule in rules:
            try:
                c.firewalls.insert_unary(
                    project=c.project, firewall_resource=rule, timeout=self._timeout
                )
            except gexc.Conflict:
                continue
            except SDK_ERRORS as exc:
                err = from_api_error(exc, request.location.key)
                if not isinstance(err, TransientError):  # a retry reuses what was made
                    self._start_closing(c, opened)
                raise err from exc
            opened.append(rule.name)
        return opened

    def _insert(
        self, c: _Clients, request: LaunchRequest, name: str, bundle_url: str | None
    ) -> None:
        script = build_boot_script(
            request, bundle_url=bundle_url, cloud=self.cloud, agent_port=self.agent_port
        )
        body = instance_body(
            request, name, script, self._gpu(request), self.agent_port, self.image, self.network
        )
        with gcp_calls(request.location.key):
            try:
                insert = compute_v1.InsertInstanceRequest(
                    project=c.project,
                    zone=request.location.zone,
                    instance_resource=body,
                    request_id=_request_id(request),
                )
                c.instances.insert_unary(request=insert, timeout=self._timeout)
            except gexc.Conflict:
                self._adopt(request, name)

    def _adopt(self, request: LaunchRequest, name: str) -> None:
        """An instance of that name exists: it is this launch's only if the token matches."""
        existing = self.get(name, request.location)
        if existing is None or existing.launch_token != label_value(request.launch_token):
            raise from_operation_error(
                [{"code": "RESOURCE_ALREADY_EXISTS", "message": f"instance {name} exists"}],
                request.location.key,
            )

    def _start_closing(self, c: _Clients, rules: list[str]) -> None:
        """After a refused launch, start deleting the rules it made (best effort: a rule
        left behind is listed by `list_owned` and reaped)."""
        for rule in rules:
            try:
                c.firewalls.delete_unary(project=c.project, firewall=rule, timeout=self._timeout)
            except SDK_ERRORS:
                continue

    def _rule_deleted(self, c: _Clients, rule: str, location: Location) -> bool:
        return self._deleted(
            f"global/firewalls/{rule}",
            start=lambda: c.firewalls.delete_unary(
                project=c.project, firewall=rule, timeout=self._timeout
            ),
            poll=lambda op: c.global_ops.get(
                project=c.project, operation=op, timeout=self._timeout
            ),
            where=location.key,
        )

    def _deleted(
        self,
        key: str,
        start: Callable[[], Any],
        poll: Callable[[str], compute_v1.Operation],
        where: str,
        still_coming: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Whether the resource is gone: polls the delete this adapter started, else
        starts one. Not found (at delete, or as the operation's error) means gone, unless
        `still_coming`; `resourceNotReady` (still being created) means not yet."""
        with self._lock:
            running = self._deleting.get(key)
        try:
            op = poll(running) if running else start()
        except gexc.NotFound:
            if running is None:
                return not still_coming()
            with self._lock:
                self._deleting.pop(key, None)
            return self._deleted(key, start, poll, where, still_coming)
        except SDK_ERRORS as exc:
            err = from_api_error(exc, where)
            if err.code == "resourceNotReady":
                return False
            raise err from exc
        if op.status != _DONE:
            with self._lock:
                self._deleting[key] = op.name
            return False
        with self._lock:
            self._deleting.pop(key, None)
        errors = [
            {"code": e.code, "message": e.message}
            for e in op.error.errors
            if e.code != "RESOURCE_NOT_FOUND"
        ]
        if errors:
            raise from_operation_error(errors, where)
        return True

    def _view(self, c: _Clients, gce: compute_v1.Instance, location: Location) -> Instance | None:
        spot = gce.scheduling.provisioning_model == "SPOT"
        preempted = (
            spot
            and gce.status in PREEMPTION_STATUSES
            and self._history(c, location, gce.name).preempted
        )
        return to_instance(gce, location, preempted)

    def _vanished(self, c: _Clients, name: str, location: Location) -> Instance | None:
        """A missing instance is reported while its service-port rule (our leftover) exists."""
        who = self._firewall_identity(c, name, location.key)
        if who is None:
            return None
        return tombstone(name, location, who, self._history(c, location, name))

    def _leftover(
        self,
        c: _Clients,
        rule: compute_v1.Firewall,
        service: str | None,
        regions: set[str] | None,
        seen: dict[str, Instance],
    ) -> Instance | None:
        who = identity_from_firewall(rule)
        name = instance_of_rule(rule.name)
        if who is None or who.location is None or name is None or name in seen:
            return None
        if service is not None and who.service != label_value(service):
            return None
        location = Location.parse(who.location)
        if regions is not None and location.region not in regions:
            return None
        return tombstone(name, location, who, self._history(c, location, name))

    def _firewall_identity(self, c: _Clients, name: str, where: str) -> Identity | None:
        with gcp_calls(where):
            try:
                rule = c.firewalls.get(
                    project=c.project, firewall=firewall_name(name), timeout=self._timeout
                )
            except gexc.NotFound:
                return None
        return identity_from_firewall(rule)

    def _history(self, c: _Clients, location: Location, name: str) -> InstanceHistory:
        """The instance's zone operations (insert, preemption), in one list call."""
        target = instance_url(c.project, location.zone, name)
        with gcp_calls(location.key):
            listing = compute_v1.ListZoneOperationsRequest(
                project=c.project, zone=location.zone, filter=f'targetLink="{target}"'
            )
            ops = c.zone_ops.list(request=listing, timeout=self._timeout)
            return InstanceHistory.of(op for op in ops if op.target_link == target)

    def _owned_query(
        self, c: _Clients, service: str | None, max_results: int | None = None
    ) -> compute_v1.AggregatedListInstancesRequest:
        query = f'(labels.{TAG_MANAGED_BY} = "spotserve")'
        if service is not None:
            query += f' (labels.{TAG_SERVICE} = "{label_value(service)}")'
        return compute_v1.AggregatedListInstancesRequest(
            project=c.project, filter=query, max_results=max_results
        )

    def _gpu(self, request: LaunchRequest) -> tuple[str, int] | None:
        for entry in self.catalog.for_cloud(self.cloud):
            if entry.instance_type == request.offer.instance_type and entry.accelerator:
                return entry.accelerator, entry.accelerator_count
        wanted = request.resources.accelerators
        return (wanted[0].name, wanted[0].count) if len(wanted) == 1 else None


def _location_of(zone: str) -> Location:
    """GCE zones are `<region>-<letter>`."""
    return Location("gcp", zone.rsplit("-", 1)[0], zone)


def _request_id(request: LaunchRequest) -> str:
    """The launch token as the UUID Compute Engine uses to deduplicate a repeated insert."""
    try:
        return str(uuid.UUID(hex=request.launch_token))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"spotserve:{request.launch_token}"))
