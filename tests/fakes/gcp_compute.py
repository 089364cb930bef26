"""A fake of the Compute Engine v1 REST calls the GCP adapter makes, over real HTTP.

Covers instances (insert, get, delete, aggregatedList), zone and global operations (get,
list with a filter, wait) and firewalls (insert, get, delete, list). It checks what the SDK
sends: label syntax, spot scheduling, a bearer token.

Operations run on their own, as in Compute Engine ("Handling API responses": a mutating
call answers with an Operation whose status is PENDING or RUNNING, and its outcome shows
once the operation is DONE): an insert or delete answers RUNNING, and the operation becomes
DONE `operation_seconds` later (0 by default: on the next request), or at once when waited
on, or when a test calls `finish_operations()`. Only then does its effect land: the instance
becomes RUNNING or is refused (`error.errors[]` such as `ZONE_RESOURCE_POOL_EXHAUSTED`, with
no instance), a deleted instance disappears (it shows STOPPING meanwhile), a firewall rule
appears or disappears.

Preempting a SPOT instance records the `compute.instances.preempted` zone operation at once
(the documented way to list a VM's preemptions, "Detect if a Spot VM was preempted"), then
walks it through the statuses a reclaimed VM passes ("Spot VMs", "Preemption process": the
VM gets a preemption notice and up to 30 s to shut down, then is stopped or deleted per its
termination action; `Instance.Status`: PENDING_STOP "gracefully shutting down", STOPPING,
DEPROVISIONING "tear down tasks"): one step per observation of the instance, so successive
GETs see PENDING_STOP, STOPPING, DEPROVISIONING, then 404 (action DELETE) or TERMINATED
(action STOP).

Boot mode (`boot=True`, or `--boot` on the command line; `tests/fakes/gcp_boot.py`): every
instance that becomes RUNNING runs its startup script as a local process with its own
loopback address as `natIP`, and a metadata server that says when it is preempted. A
delete, a preemption or a stop ends the process; a process that ends by itself is a VM whose
OS halted, shown TERMINATED.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policies.types import Location
from tests.fakes import gcp_errors_bodies as bodies
from tests.fakes.gcp_boot import BootedInstance, InstanceBooter
from tests.fakes.json_http import JsonHTTPFake, Reply, Request

API = "https://www.googleapis.com/compute/v1"
_P = r"/compute/v1/projects/(?P<project>[^/]+)"
_LABEL = re.compile(r"^[a-z]([a-z0-9_-]{0,62})$|^$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_FILTER_TERM = re.compile(r'([\w.\-]+)\s*=\s*"([^"]*)"')
_PREEMPTION_WALK = ("PENDING_STOP", "STOPPING", "DEPROVISIONING")

Outcome = Callable[[], dict[str, Any] | None]
"""What lands when an operation finishes; returns its error item, or None for success."""


class FakeGCPCompute(JsonHTTPFake):
    """In-memory Compute Engine; the knobs below are what tests program."""

    def __init__(
        self,
        project: str = "test-project",
        *,
        boot: bool = False,
        boot_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.booter = InstanceBooter(boot_root) if boot else None
        """Boot mode: runs each RUNNING instance's startup script (None: it never runs)."""
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.insert_failures: dict[str, dict[str, Any]] = {}
        self.http_failures: dict[str, tuple[int, dict[str, Any]]] = {}
        self.auth_rejected = False
        self.operation_seconds = 0.0
        """How long an insert/delete operation stays RUNNING (0: until the next request)."""
        self.stall_seconds = 0.0
        """Every answer is this late (a hung API, for the callers' timeouts)."""
        self.hide_inserting = False
        """While its insert runs, an instance is not shown yet (GET and delete answer 404),
        as Compute Engine may do early in a creation (GoogleCloudPlatform/compute-image-
        tools#542: "the instance is not even on PROVISIONING state"). Otherwise a delete
        during the insert answers 400 `resourceNotReady` ("The resource ... is not ready")."""
        self.observed: dict[str, list[str]] = {}
        """The statuses each instance was seen in by GET or aggregatedList, in order."""
        self._running: dict[str, tuple[float, Outcome]] = {}
        self._walks: dict[tuple[str, str], list[str]] = {}
        self._creating_firewalls: dict[str, dict[str, Any]] = {}
        self._inserting: set[tuple[str, str]] = set()
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

    def start(self, port: int = 0) -> str:
        if self.booter is not None:
            self.booter.start()
        return super().start(port)

    def stop(self) -> None:
        """Stops serving; in boot mode every instance's processes end too."""
        super().stop()
        if self.booter is not None:
            self.booter.stop()

    def booted(self, instance_id: str) -> BootedInstance:
        """Boot mode: the instance's process and folder."""
        assert self.booter is not None, "boot mode is off"
        return self.booter.instances[instance_id]

    def finish_operations(self) -> None:
        """Every running operation ends now, whatever `operation_seconds` says."""
        with self.lock:
            self._settle(float("inf"))

    def preempt(self, instance_id: str) -> None:
        with self.lock:
            zone, inst = self._find(instance_id)
            scheduling = inst.get("scheduling", {})
            assert scheduling.get("provisioningModel") == "SPOT", (
                "only SPOT instances are preempted"
            )
            self._operation(
                zone,
                "compute.instances.preempted",
                inst["selfLink"],
                user="system",
                status_message="Instance was preempted.",
            )
            end = "DELETED" if scheduling.get("instanceTerminationAction") == "DELETE" else None
            if self.booter is not None:
                self.booter.notice_preemption(instance_id)
            inst["status"] = _PREEMPTION_WALK[0]
            self._walks[(zone, instance_id)] = [*_PREEMPTION_WALK[1:], end or "TERMINATED"]

    def shut_down_from_inside(self, instance_id: str) -> None:
        """The guest ran `shutdown -h`: Compute Engine shows the VM TERMINATED (stopped)."""
        with self.lock:
            self._find(instance_id)[1]["status"] = "TERMINATED"
            self._end(instance_id)

    def delete_outside_spotserve(self, instance_id: str) -> None:
        """Someone else deleted the instance (its firewall rule stays)."""
        with self.lock:
            zone, inst = self._find(instance_id)
            del self.instances[(zone, instance_id)]
            self._end(instance_id)
            self._operation(zone, "delete", inst["selfLink"], user="someone@example.com")

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
        if self.stall_seconds:
            time.sleep(self.stall_seconds)
        with self.lock:
            self._settle(time.monotonic())
            self._halt_ended_processes()
            if self.auth_rejected or not request.headers.get("authorization", "").startswith(
                "Bearer "
            ):
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
        if failure is None:
            self.instances[(zone, name)] = self._new_instance(zone, body, link)
        self._inserting.add((zone, name))
        op = self._operation(
            zone, "insert", link, outcome=lambda: self._inserted(zone, name, failure)
        )
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
                access["natIP"] = (
                    self.booter.new_address()
                    if self.booter is not None
                    else f"203.0.113.{(n + i) % 250 + 2}"
                )
        return inst

    def _inserted(
        self, zone: str, name: str, failure: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        self._inserting.discard((zone, name))
        inst = self.instances.get((zone, name))
        if inst is not None and inst["status"] == "PROVISIONING":
            inst["status"] = "RUNNING"
            self._boot(name, inst)
        return failure

    def _boot(self, name: str, inst: dict[str, Any]) -> None:
        """Boot mode: the startup script runs, at the instance's external address."""
        if self.booter is None:
            return
        items = {i.get("key"): i.get("value") for i in inst.get("metadata", {}).get("items", [])}
        script = items.get("startup-script")
        if script:
            self.booter.boot(name, _external_ip(inst), str(script))

    def _end(self, name: str) -> None:
        if self.booter is not None:
            self.booter.end(name)

    def _halt_ended_processes(self) -> None:
        """A RUNNING instance whose process ended by itself: the OS halted, and Compute
        Engine shows such a VM TERMINATED ("VM instance life cycle")."""
        if self.booter is None:
            return
        for (_, name), inst in self.instances.items():
            if inst["status"] == "RUNNING" and self.booter.halted(name):
                inst["status"] = "TERMINATED"

    def _shown(self, zone: str, name: str) -> dict[str, Any] | None:
        if self.hide_inserting and (zone, name) in self._inserting:
            return None
        return self.instances.get((zone, name))

    def _get_instance(self, m: re.Match[str], req: Request) -> Reply:
        inst = self._shown(m["zone"], m["name"])
        if inst is None:
            return Reply(
                404,
                bodies.not_found(
                    f"projects/{self.project}/zones/{m['zone']}/instances/{m['name']}"
                ),
            )
        return Reply(200, self._observe(m["zone"], m["name"], inst))

    def _delete_instance(self, m: re.Match[str], req: Request) -> Reply:
        zone, name = m["zone"], m["name"]
        inst = self._shown(zone, name)
        what = f"projects/{self.project}/zones/{zone}/instances/{name}"
        if inst is None:
            return Reply(404, bodies.not_found(what))
        if (zone, name) in self._inserting:
            return Reply(400, bodies.not_ready(what))
        inst["status"] = "STOPPING"
        self._walks.pop((zone, name), None)
        self._end(name)

        def deleted() -> None:
            self.instances.pop((zone, name), None)

        return Reply(200, self._operation(zone, "delete", inst["selfLink"], outcome=deleted))

    def _observe(self, zone: str, name: str, inst: dict[str, Any]) -> dict[str, Any]:
        """The instance as seen now; a preempted one then moves one step down its walk."""
        seen = copy.deepcopy(inst)
        self.observed.setdefault(name, []).append(inst["status"])
        walk = self._walks.get((zone, name))
        if walk:
            step = walk.pop(0)
            if step != "PENDING_STOP":  # the 30 s shutdown grace is over
                self._end(name)
            if step == "DELETED":
                del self.instances[(zone, name)]
            else:
                inst["status"] = step
            if not walk:
                del self._walks[(zone, name)]
        return seen

    def _aggregated_instances(self, m: re.Match[str], req: Request) -> Reply:
        terms = _FILTER_TERM.findall(req.query.get("filter", ""))
        items: dict[str, Any] = {}
        for (zone, name), inst in sorted(self.instances.items()):
            if self._shown(zone, name) is None:
                continue
            if all(_field(inst, key) == value for key, value in terms):
                seen = self._observe(zone, name, inst)
                items.setdefault(f"zones/{zone}", {"instances": []})["instances"].append(seen)
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
        """GET answers the operation as it is; POST .../wait returns once it is DONE."""
        op = self.operations.get(m["op"])
        if op is None:
            return Reply(404, bodies.not_found(f"operations/{m['op']}"))
        if req.method == "POST" and op["status"] != "DONE":
            self._finish(op["name"])
        return Reply(200, op)

    def _settle(self, now: float) -> None:
        for name, (done_at, _) in list(self._running.items()):
            if done_at <= now:
                self._finish(name)

    def _finish(self, name: str) -> None:
        _, outcome = self._running.pop(name)
        op = self.operations[name]
        op.update(status="DONE", progress=100, endTime="2025-01-01T00:00:05.000-07:00")
        failure = outcome()
        if failure is not None:
            status, message = bodies.OPERATION_HTTP_STATUS.get(
                failure["code"], (400, "BAD REQUEST")
            )
            op.update(
                error={"errors": [failure]}, httpErrorStatusCode=status, httpErrorMessage=message
            )

    def _insert_firewall(self, m: re.Match[str], req: Request) -> Reply:
        body = req.body or {}
        name = str(body.get("name"))
        link = f"{API}/projects/{self.project}/global/firewalls/{name}"
        if name in self.firewalls or name in self._creating_firewalls:
            return Reply(
                409, bodies.already_exists(f"projects/{self.project}/global/firewalls/{name}")
            )
        if not body.get("allowed") or not body.get("targetTags"):
            return Reply(
                400, bodies.http_error(400, "Firewall rule needs allowed and targetTags", "invalid")
            )
        rule = {**copy.deepcopy(body), "selfLink": link, "id": str(next(self._ids))}
        self._creating_firewalls[name] = rule

        def created() -> None:
            self.firewalls[name] = self._creating_firewalls.pop(name)

        return Reply(200, self._operation(None, "insert", link, outcome=created))

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
        name = m["name"]
        rule = self.firewalls.get(name)
        if rule is None:
            return Reply(404, bodies.not_found(f"projects/{self.project}/global/firewalls/{name}"))

        def deleted() -> None:
            self.firewalls.pop(name, None)

        return Reply(200, self._operation(None, "delete", rule["selfLink"], outcome=deleted))

    def _operation(
        self,
        zone: str | None,
        kind: str,
        target: str,
        *,
        outcome: Callable[[], dict[str, Any] | None] | None = None,
        user: str = "fake@test-project.iam.gserviceaccount.com",
        status_message: str | None = None,
    ) -> dict[str, Any]:
        """A recorded operation: DONE now if it has no `outcome`, else RUNNING until it
        finishes and its outcome lands."""
        running = outcome is not None
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
        if outcome is not None:
            self._running[name] = (time.monotonic() + self.operation_seconds, outcome)
        return op


def _external_ip(inst: dict[str, Any]) -> str:
    for nic in inst.get("networkInterfaces", []):
        for access in nic.get("accessConfigs", []):
            if access.get("natIP"):
                return str(access["natIP"])
    raise ValueError(f"instance {inst.get('name')} has no external address to boot at")


def _field(doc: dict[str, Any], dotted: str) -> str | None:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return str(value)


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.gcp_compute [PORT] [--boot] [--boot-root DIR]`: serve on
    127.0.0.1 until Ctrl-C or SIGTERM (which also end every booted instance's processes);
    prints the URL to give SERVE_GCP_API_ENDPOINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.gcp_compute")
    parser.add_argument("port", nargs="?", type=int, default=0)
    parser.add_argument("--project", default="test-project")
    parser.add_argument("--boot", action="store_true", help="instances run their startup script")
    parser.add_argument("--boot-root", type=Path, help="where instances' folders go")
    args = parser.parse_args(argv)
    fake = FakeGCPCompute(args.project, boot=args.boot, boot_root=args.boot_root)
    print(fake.start(args.port), flush=True)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
