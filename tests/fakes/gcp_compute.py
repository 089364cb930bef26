"""A fake of the Compute Engine v1 REST calls the GCP adapter makes, over real HTTP.

Covers instances (insert, get, delete, aggregatedList), zone and global operations (get,
list with a filter, wait) and firewalls (insert, get, delete, list). Like the real API, an
insert answers with a RUNNING operation and its outcome (success, or `error.errors[]` such as
`ZONE_RESOURCE_POOL_EXHAUSTED`) shows when the operation is waited on; preempting a SPOT
instance with termination action DELETE removes it and records a
`compute.instances.preempted` zone operation. It checks what the SDK sends: label syntax,
spot scheduling, a bearer token.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from policies.types import Location
from tests.fakes import gcp_errors_bodies as bodies
from tests.fakes.json_http import JsonHTTPFake, Reply, Request, serve_until_interrupted

API = "https://www.googleapis.com/compute/v1"
_P = r"/compute/v1/projects/(?P<project>[^/]+)"
_LABEL = re.compile(r"^[a-z]([a-z0-9_-]{0,62})$|^$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_FILTER_TERM = re.compile(r'([\w.\-]+)\s*=\s*"([^"]*)"')


class FakeGCPCompute(JsonHTTPFake):
    """In-memory Compute Engine; the knobs below are what tests program."""

    def __init__(self, project: str = "test-project") -> None:
        super().__init__()
        self.project = project
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.insert_failures: dict[str, dict[str, Any]] = {}
        self.http_failures: dict[str, tuple[int, dict[str, Any]]] = {}
        self.auth_rejected = False
        self._outcomes: dict[str, dict[str, Any] | None] = {}
        self._by_request_id: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1000)
        self.route("POST", _P + r"/zones/(?P<zone>[^/]+)/instances", self._insert_instance)
        self.route(
            "GET", _P + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)", self._get_instance
        )
        self.route(
            "DELETE",
            _P + r"/zones/(?P<zone>[^/]+)/instances/(?P<name>[^/]+)",
            self._delete_instance,
        )
        self.route("GET", _P + r"/aggregated/instances", self._aggregated_instances)
        self.route("GET", _P + r"/zones/(?P<zone>[^/]+)/operations", self._list_zone_ops)
        self.route("POST", _P + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)/wait", self._wait)
        self.route("GET", _P + r"/zones/(?P<zone>[^/]+)/operations/(?P<op>[^/]+)", self._wait)
        self.route("POST", _P + r"/global/operations/(?P<op>[^/]+)/wait", self._wait)
        self.route("GET", _P + r"/global/operations/(?P<op>[^/]+)", self._wait)
        self.route("POST", _P + r"/global/firewalls", self._insert_firewall)
        self.route("GET", _P + r"/global/firewalls", self._list_firewalls)
        self.route("GET", _P + r"/global/firewalls/(?P<name>[^/]+)", self._get_firewall)
        self.route("DELETE", _P + r"/global/firewalls/(?P<name>[^/]+)", self._delete_firewall)

    # ---- knobs (tests call these) -------------------------------------------------------

    def refuse_capacity(self, location: Location, with_details: bool = False) -> None:
        make = bodies.zone_exhausted_with_details if with_details else bodies.zone_exhausted
        self.insert_failures[location.zone] = make(self.project, location.zone)

    def exceed_quota(self, location: Location) -> None:
        self.insert_failures[location.zone] = bodies.quota_exceeded(location.region)

    def fail_insert_http(self, location: Location, status: int, body: dict[str, Any]) -> None:
        """The insert call itself answers `status` with `body` (no operation is started)."""
        self.http_failures[location.zone] = (status, body)

    def reject_credentials(self) -> None:
        self.auth_rejected = True

    def preempt(self, instance_id: str) -> None:
        with self.lock:
            zone, inst = self._find(instance_id)
            scheduling = inst.get("scheduling", {})
            assert scheduling.get("provisioningModel") == "SPOT", (
                "only SPOT instances are preempted"
            )
            if scheduling.get("instanceTerminationAction") == "DELETE":
                del self.instances[(zone, instance_id)]
            else:
                inst["status"] = "TERMINATED"
            self._operation(
                zone,
                "compute.instances.preempted",
                inst["selfLink"],
                user="system",
                status_message="Instance was preempted.",
            )

    def tags_of(self, instance_id: str) -> dict[str, str]:
        return dict(self._find(instance_id)[1].get("labels", {}))

    def instance(self, instance_id: str) -> dict[str, Any]:
        return copy.deepcopy(self._find(instance_id)[1])

    def _find(self, name: str) -> tuple[str, dict[str, Any]]:
        for (zone, inst_name), inst in self.instances.items():
            if inst_name == name:
                return zone, inst
        raise KeyError(f"no instance {name}")

    # ---- routes ---------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Reply:
        if self.auth_rejected or not request.headers.get("authorization", "").startswith("Bearer "):
            with self.lock:
                self.requests.append(request)
            return Reply(401, bodies.UNAUTHENTICATED)
        return super().dispatch(request)

    def unknown_route(self, request: Request) -> Reply:
        return Reply(404, bodies.not_found(request.path))

    def _insert_instance(self, m: re.Match[str], req: Request) -> Reply:
        zone, body = m["zone"], req.body or {}
        if zone in self.http_failures:
            return Reply(*self.http_failures[zone])
        request_id = req.query.get("requestId")
        if request_id and request_id in self._by_request_id:
            return Reply(200, self._by_request_id[request_id])
        invalid = self._validate_instance(zone, body)
        if invalid:
            return Reply(400, bodies.http_error(400, invalid, "invalid", "INVALID_ARGUMENT"))
        name = body["name"]
        link = f"{API}/projects/{self.project}/zones/{zone}/instances/{name}"
        if (zone, name) in self.instances:
            return Reply(
                409, bodies.already_exists(f"projects/{self.project}/zones/{zone}/instances/{name}")
            )
        failure = self.insert_failures.get(zone)
        op = self._operation(zone, "insert", link, running=True)
        self._outcomes[op["name"]] = failure
        if failure is None:
            self.instances[(zone, name)] = self._new_instance(zone, body, link)
        if request_id:
            self._by_request_id[request_id] = op
        return Reply(200, op)

    def _validate_instance(self, zone: str, body: dict[str, Any]) -> str | None:
        for key, value in body.get("labels", {}).items():
            if not _LABEL.match(key) or not _LABEL_VALUE.match(value):
                return f"Invalid value for field 'resource.labels': '{key}={value}'."
        if not str(body.get("machineType", "")).startswith(f"zones/{zone}/machineTypes/"):
            return f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'."
        scheduling = body.get("scheduling", {})
        if scheduling.get("provisioningModel") == "SPOT" and scheduling.get("automaticRestart"):
            return (
                "Invalid value for field 'resource.scheduling.automaticRestart': 'true'. "
                "Spot VMs cannot be restarted automatically."
            )
        if not body.get("disks") or not body.get("networkInterfaces"):
            return "Invalid value for field 'resource': disks and networkInterfaces are required."
        return None

    def _new_instance(self, zone: str, body: dict[str, Any], link: str) -> dict[str, Any]:
        inst = copy.deepcopy(body)
        n = next(self._ids)
        inst.update(
            id=str(n),
            kind="compute#instance",
            status="PROVISIONING",
            selfLink=link,
            zone=f"{API}/projects/{self.project}/zones/{zone}",
        )
        for i, nic in enumerate(inst.get("networkInterfaces", [])):
            nic["networkIP"] = f"10.128.0.{n % 250 + 2}"
            for access in nic.get("accessConfigs", []):
                access["natIP"] = f"203.0.113.{(n + i) % 250 + 2}"
        return inst

    def _get_instance(self, m: re.Match[str], req: Request) -> Reply:
        inst = self.instances.get((m["zone"], m["name"]))
        if inst is None:
            return Reply(
                404,
                bodies.not_found(
                    f"projects/{self.project}/zones/{m['zone']}/instances/{m['name']}"
                ),
            )
        return Reply(200, inst)

    def _delete_instance(self, m: re.Match[str], req: Request) -> Reply:
        inst = self.instances.pop((m["zone"], m["name"]), None)
        if inst is None:
            return Reply(
                404,
                bodies.not_found(
                    f"projects/{self.project}/zones/{m['zone']}/instances/{m['name']}"
                ),
            )
        return Reply(200, self._operation(m["zone"], "delete", inst["selfLink"]))

    def _aggregated_instances(self, m: re.Match[str], req: Request) -> Reply:
        terms = _FILTER_TERM.findall(req.query.get("filter", ""))
        items: dict[str, Any] = {}
        for (zone, _), inst in sorted(self.instances.items()):
            if all(_field(inst, key) == value for key, value in terms):
                items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(inst)
        return Reply(
            200,
            {
                "kind": "compute#instanceAggregatedList",
                "id": f"projects/{self.project}/aggregated/instances",
                "items": items,
            },
        )

    def _list_zone_ops(self, m: re.Match[str], req: Request) -> Reply:
        terms = _FILTER_TERM.findall(req.query.get("filter", ""))
        ops = [
            op
            for op in self.operations.values()
            if op.get("zone", "").endswith(f"/zones/{m['zone']}")
            and all(_field(op, key) == value for key, value in terms)
        ]
        return Reply(200, {"kind": "compute#operationList", "items": ops})

    def _wait(self, m: re.Match[str], req: Request) -> Reply:
        op = self.operations.get(m["op"])
        if op is None:
            return Reply(404, bodies.not_found(f"operations/{m['op']}"))
        if op["status"] != "DONE":
            self._finish(op)
        return Reply(200, op)

    def _finish(self, op: dict[str, Any]) -> None:
        op.update(status="DONE", progress=100, endTime="2025-01-01T00:00:05.000-07:00")
        failure = self._outcomes.pop(op["name"], None)
        if failure is not None:
            status, message = bodies.OPERATION_HTTP_STATUS.get(
                failure["code"], (400, "BAD REQUEST")
            )
            op.update(
                error={"errors": [failure]}, httpErrorStatusCode=status, httpErrorMessage=message
            )
            return
        for inst in self.instances.values():
            if inst["selfLink"] == op.get("targetLink") and inst["status"] == "PROVISIONING":
                inst["status"] = "RUNNING"

    def _insert_firewall(self, m: re.Match[str], req: Request) -> Reply:
        body = req.body or {}
        link = f"{API}/projects/{self.project}/global/firewalls/{body.get('name')}"
        if body.get("name") in self.firewalls:
            return Reply(
                409,
                bodies.already_exists(f"projects/{self.project}/global/firewalls/{body['name']}"),
            )
        if not body.get("allowed") or not body.get("targetTags"):
            return Reply(
                400, bodies.http_error(400, "Firewall rule needs allowed and targetTags", "invalid")
            )
        self.firewalls[body["name"]] = {
            **copy.deepcopy(body),
            "selfLink": link,
            "id": str(next(self._ids)),
        }
        return Reply(200, self._operation(None, "insert", link, running=True))

    def _list_firewalls(self, m: re.Match[str], req: Request) -> Reply:
        return Reply(200, {"kind": "compute#firewallList", "items": list(self.firewalls.values())})

    def _get_firewall(self, m: re.Match[str], req: Request) -> Reply:
        rule = self.firewalls.get(m["name"])
        if rule is None:
            return Reply(
                404, bodies.not_found(f"projects/{self.project}/global/firewalls/{m['name']}")
            )
        return Reply(200, rule)

    def _delete_firewall(self, m: re.Match[str], req: Request) -> Reply:
        rule = self.firewalls.pop(m["name"], None)
        if rule is None:
            return Reply(
                404, bodies.not_found(f"projects/{self.project}/global/firewalls/{m['name']}")
            )
        return Reply(200, self._operation(None, "delete", rule["selfLink"], running=True))

    def _operation(
        self,
        zone: str | None,
        kind: str,
        target: str,
        *,
        running: bool = False,
        user: str = "fake@test-project.iam.gserviceaccount.com",
        status_message: str | None = None,
    ) -> dict[str, Any]:
        n = next(self._ids)
        name = f"operation-{n}-{kind.rsplit('.', 1)[-1]}"
        scope = f"zones/{zone}" if zone else "global"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(n),
            "name": name,
            "operationType": kind,
            "targetLink": target,
            "status": "RUNNING" if running else "DONE",
            "progress": 0 if running else 100,
            "user": user,
            "insertTime": "2025-01-01T00:00:00.000-07:00",
            "selfLink": f"{API}/projects/{self.project}/{scope}/operations/{name}",
        }
        if zone:
            op["zone"] = f"{API}/projects/{self.project}/zones/{zone}"
        if status_message:
            op["statusMessage"] = status_message
        self.operations[name] = op
        return op


def _field(doc: dict[str, Any], dotted: str) -> str | None:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return str(value)


if __name__ == "__main__":
    serve_until_interrupted(FakeGCPCompute())
