"""GCP adapter: google-cloud-compute instances, spot or on-demand, one firewall rule each.

Preemption: a SPOT instance is created with termination action DELETE, so after preemption
the instance is gone. What Compute Engine keeps is the zone operation
`compute.instances.preempted` whose `targetLink` is the instance (the documented way to list
a VM's preemption history). `get` reads that record when the instance is missing (or
stopping), so PREEMPTED is reported from the cloud's own word, not guessed. The replica's
firewall rule, which carries the ownership tags in its description, outlives the instance
until `terminate`; it supplies the identity of a vanished instance and makes leftovers show
up in `list_owned` so that the orphan reaper deletes them.

Constructors do no I/O: credentials, project and clients are resolved on first use.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.cloud import compute_v1

from policies.types import Location, Offer
from provisioners.base import (
    TAG_MANAGED_BY,
    TAG_SERVICE,
    CheckResult,
    Instance,
    LaunchRequest,
    ResourceRequest,
)
from provisioners.catalog import Catalog, default_catalog
from provisioners.errors import CredentialsError, ProvisionError, TransientError
from provisioners.gcp_errors import (
    CREDENTIALS_HINT,
    SDK_ERRORS,
    from_api_error,
    from_operation_error,
)
from provisioners.gcp_resources import (
    DEFAULT_NETWORK,
    FIREWALL_SUFFIX,
    Identity,
    firewall_body,
    firewall_name,
    identity_from_firewall,
    instance_body,
    instance_url,
    label_value,
    to_instance,
    tombstone,
)
from provisioners.replica_names import resource_name
from provisioners.startup_script import build_startup_script

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_STOPPED = {"STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED", "TERMINATED"}
_DONE = compute_v1.Operation.Status.DONE


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
        project: str | None = None,
        catalog: Catalog | None = None,
        api_endpoint: str | None = None,
        credentials: Any = None,
        image: str | None = None,
        network: str | None = None,
        operation_timeout: float = 900.0,
    ) -> None:
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        self.api_endpoint = api_endpoint or os.environ.get("SERVE_GCP_API_ENDPOINT") or None
        self.image = image or os.environ.get("SERVE_GCP_IMAGE") or None
        self.network = network or os.environ.get("SERVE_GCP_NETWORK") or DEFAULT_NETWORK
        self.operation_timeout = operation_timeout
        self._catalog = catalog
        self._credentials = credentials
        self._clients: _Clients | None = None

    def check(self) -> CheckResult:
        try:
            c = self._connect()
            try:
                c.instances.aggregated_list(request=self._owned_query(c, None, max_results=1))
            except SDK_ERRORS as exc:
                raise from_api_error(exc, None) from exc
        except ProvisionError as err:
            hint = CREDENTIALS_HINT if isinstance(err, CredentialsError) else ""
            return CheckResult(self.cloud, usable=False, reason=str(err), hint=hint)
        return CheckResult(self.cloud, usable=True, reason=f"project {c.project} answers")

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return self.catalog.offers(self.cloud, resources)

    def launch(self, request: LaunchRequest) -> Instance:
        c = self._connect()
        name = resource_name(request, max_len=57)
        where = request.location.key
        try:
            self._open_port(c, request, name)
            self._insert(c, request, name)
        except ProvisionError as err:
            if not isinstance(err, TransientError):
                self._remove(c, request.location, name)
            raise
        got = self.get(name, request.location)
        if got is None:
            raise TransientError(f"instance {name} was created but cannot be read", location=where)
        return got

    def get(self, instance_id: str, location: Location) -> Instance | None:
        c = self._connect()
        try:
            gce = c.instances.get(project=c.project, zone=location.zone, instance=instance_id)
        except gexc.NotFound:
            return self._vanished(c, instance_id, location)
        except SDK_ERRORS as exc:
            raise from_api_error(exc, location.key) from exc
        return self._view(c, gce, location)

    def terminate(self, instance_id: str, location: Location) -> None:
        c = self._connect()
        try:
            op = c.instances.delete_unary(
                project=c.project, zone=location.zone, instance=instance_id
            )
            self._raise_if_failed(op, location.key)
        except gexc.NotFound:
            pass
        except SDK_ERRORS as exc:
            raise from_api_error(exc, location.key) from exc
        self._close_port(c, instance_id, location.key)

    def list_owned(self, service: str | None = None) -> list[Instance]:
        c = self._connect()
        found: dict[str, Instance] = {}
        try:
            pages = c.instances.aggregated_list(request=self._owned_query(c, service))
            for scope, listing in pages:
                location = _location_of(scope.rsplit("/", 1)[-1])
                for gce in listing.instances:
                    inst = self._view(c, gce, location)
                    if inst is not None:
                        found[inst.instance_id] = inst
            for rule in c.firewalls.list(project=c.project):
                leftover = self._leftover(c, rule, service, found)
                if leftover is not None:
                    found[leftover.instance_id] = leftover
        except SDK_ERRORS as exc:
            raise from_api_error(exc, None) from exc
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

            try:
                credentials, found = google.auth.default(scopes=list(SCOPES))
            except SDK_ERRORS as exc:
                raise from_api_error(exc, None) from exc
            project = project or found
        if not project:
            raise CredentialsError(f"no GCP project is set; {CREDENTIALS_HINT}", code="no-project")
        return credentials, project

    def _open_port(self, c: _Clients, request: LaunchRequest, name: str) -> None:
        rule = firewall_body(request, name, self.network)
        try:
            op = c.firewalls.insert_unary(project=c.project, firewall_resource=rule)
            self._wait(c, op, request.location.key, zone=None)
        except gexc.Conflict:
            return
        except SDK_ERRORS as exc:
            raise from_api_error(exc, request.location.key) from exc

    def _insert(self, c: _Clients, request: LaunchRequest, name: str) -> None:
        body = instance_body(
            request,
            name,
            build_startup_script(request),
            self._gpu(request),
            self.image,
            self.network,
        )
        zone = request.location.zone
        try:
            insert = compute_v1.InsertInstanceRequest(
                project=c.project,
                zone=zone,
                instance_resource=body,
                request_id=_request_id(request),
            )
            op = c.instances.insert_unary(request=insert)
            self._wait(c, op, request.location.key, zone=zone)
        except gexc.Conflict:
            self._adopt(c, request, name)
        except SDK_ERRORS as exc:
            raise from_api_error(exc, request.location.key) from exc

    def _adopt(self, c: _Clients, request: LaunchRequest, name: str) -> None:
        """An instance of that name exists: it is this launch's only if the token matches."""
        existing = self.get(name, request.location)
        if existing is None or existing.launch_token != label_value(request.launch_token):
            raise from_operation_error(
                [{"code": "RESOURCE_ALREADY_EXISTS", "message": f"instance {name} exists"}],
                request.location.key,
            )

    def _wait(self, c: _Clients, op: compute_v1.Operation, where: str, zone: str | None) -> None:
        deadline = time.monotonic() + self.operation_timeout
        while op.status != _DONE:
            if time.monotonic() > deadline:
                raise TransientError(f"operation {op.name} still running", location=where)
            if zone is None:
                op = c.global_ops.wait(project=c.project, operation=op.name)
            else:
                op = c.zone_ops.wait(project=c.project, zone=zone, operation=op.name)
        self._raise_if_failed(op, where)

    @staticmethod
    def _raise_if_failed(op: compute_v1.Operation, where: str) -> None:
        if op.error.errors:
            errors = [{"code": e.code, "message": e.message} for e in op.error.errors]
            raise from_operation_error(errors, where)

    def _remove(self, c: _Clients, location: Location, name: str) -> None:
        """Best-effort cleanup after a refused launch: nothing of it may stay behind."""
        with contextlib.suppress(ProvisionError):
            self.terminate(name, location)

    def _close_port(self, c: _Clients, name: str, where: str) -> None:
        try:
            op = c.firewalls.delete_unary(project=c.project, firewall=firewall_name(name))
            self._wait(c, op, where, zone=None)
        except gexc.NotFound:
            pass
        except SDK_ERRORS as exc:
            raise from_api_error(exc, where) from exc

    def _view(self, c: _Clients, gce: compute_v1.Instance, location: Location) -> Instance | None:
        spot = gce.scheduling.provisioning_model == "SPOT"
        preempted = spot and gce.status in _STOPPED and self._was_preempted(c, location, gce.name)
        return to_instance(gce, location, preempted)

    def _vanished(self, c: _Clients, name: str, location: Location) -> Instance | None:
        """A missing instance is reported while its firewall rule (our leftover) exists."""
        who = self._firewall_identity(c, name, location.key)
        if who is None:
            return None
        return tombstone(name, location, who, self._was_preempted(c, location, name))

    def _leftover(
        self, c: _Clients, rule: compute_v1.Firewall, service: str | None, seen: dict[str, Instance]
    ) -> Instance | None:
        who = identity_from_firewall(rule)
        name = rule.name.removesuffix(FIREWALL_SUFFIX)
        if who is None or who.location is None or name in seen:
            return None
        if service is not None and who.service != label_value(service):
            return None
        location = Location.parse(who.location)
        return tombstone(name, location, who, self._was_preempted(c, location, name))

    def _firewall_identity(self, c: _Clients, name: str, where: str) -> Identity | None:
        try:
            rule = c.firewalls.get(project=c.project, firewall=firewall_name(name))
        except gexc.NotFound:
            return None
        except SDK_ERRORS as exc:
            raise from_api_error(exc, where) from exc
        return identity_from_firewall(rule)

    def _was_preempted(self, c: _Clients, location: Location, name: str) -> bool:
        target = instance_url(c.project, location.zone, name)
        query = f'operationType="compute.instances.preempted" AND targetLink="{target}"'
        try:
            listing = compute_v1.ListZoneOperationsRequest(
                project=c.project, zone=location.zone, filter=query
            )
            ops = c.zone_ops.list(request=listing)
            return any(op.target_link == target for op in ops)
        except SDK_ERRORS as exc:
            raise from_api_error(exc, location.key) from exc

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
