"""The local provisioner: replicas as process groups in simulated zones with a spot market.

A real provisioner in every respect the controller can see: launches are refused when a
zone's spot capacity is used up, spot replicas are preempted (their processes killed) when
capacity drops, instances are recorded on disk with their ownership tags so a restarted
controller finds them, and terminate tolerates what is already gone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from common.processes import is_alive, kill_group
from policies.types import Location, Offer
from provisioners.base import (
    TAG_CONTROLLER_ID,
    CheckResult,
    Instance,
    InstanceState,
    LaunchRequest,
    PreemptionNotice,
    ResourceRequest,
)
from provisioners.bundle_unpack import unpack
from provisioners.errors import CapacityUnavailable, InvalidRequest
from provisioners.local_market import REGION, MarketFile
from provisioners.local_market_driver import capacities as driver_capacities
from provisioners.local_process import free_port, spawn, write_scripts
from provisioners.startup_script import replica_environment

CLOUD = "local"
INSTANCE_TYPE = "local-process"
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "node_modules")


@dataclass(frozen=True)
class LocalRecord:
    instance_id: str
    service: str
    replica_id: int
    launch_token: str
    zone: str
    spot: bool
    pid: int
    port: int
    tags: dict[str, str]
    log_path: str
    created_at: float
    state: str = InstanceState.RUNNING.value
    detail: str = ""
    boot_until: float = 0.0
    noticed_at: float = 0.0
    preempt_at: float = 0.0
    """Set by a preemption notice: the instance is taken at `preempt_at`."""


@dataclass
class LocalProvisioner:
    """`root` holds instance records, replica directories and the market file."""

    root: Path
    log_root: Path
    host: str = "127.0.0.1"
    cloud: str = CLOUD
    _children: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def market(self) -> MarketFile:
        return MarketFile(self.root / "market.json")

    def check(self) -> CheckResult:
        return CheckResult(CLOUD, True, "replicas run as local processes in simulated zones")

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        out = []
        for zone in self.market.read().zones:
            loc = Location(CLOUD, REGION, zone.zone)
            if resources.allows(loc):
                out.append(Offer(loc, zone.on_demand_price, zone.spot_price, INSTANCE_TYPE))
        if not resources.ordered:
            spot = resources.use_spot
            out.sort(key=lambda o: o.spot_price if spot and o.spot_price else o.on_demand_price)
        return out

    def launch(self, request: LaunchRequest) -> Instance:
        zone = request.location.zone
        self._api_delay(zone)
        with self._lock:
            self.enforce_market()
            market = self.market.read().zone(zone)
            if market is None:
                raise InvalidRequest(f"no local zone {zone!r}", location=str(request.location))
            if request.spot and market.spot_capacity is not None:
                used = sum(1 for r in self._records() if r.zone == zone and self._holds_spot(r))
                if used >= market.spot_capacity:
                    raise CapacityUnavailable(
                        f"no spot capacity left in {zone} ({used}/{market.spot_capacity} in use)",
                        location=str(request.location),
                        code="InsufficientInstanceCapacity",
                    )
            record = self._start(request, market.boot_seconds)
        return self._instance(record)

    def _start(self, request: LaunchRequest, boot_seconds: float = 0.0) -> LocalRecord:
        instance_id = f"local-{request.service}-{request.replica_id}-{request.launch_token[:8]}"
        directory = self.root / "replicas" / instance_id
        workdir = directory / "workdir"
        mounts = directory / "mounts"
        self._place_files(request, workdir, mounts)
        port = free_port(self.host)
        env = {
            **os.environ,
            **request.secrets,
            **replica_environment(request),
            "SERVE_REPLICA_PORT": str(port),
            "PORT": str(port),
            "SERVE_MOUNT_ROOT": str(mounts),
        }
        script = write_scripts(
            directory, request.service, request.replica_id, request.setup, request.run, workdir
        )
        log_path = self.log_root / request.service / f"replica-{request.replica_id}.log"
        child = spawn(script, env, log_path)
        self._children[child.pid] = child
        record = LocalRecord(
            instance_id=instance_id,
            service=request.service,
            replica_id=request.replica_id,
            launch_token=request.launch_token,
            zone=request.location.zone,
            spot=request.spot,
            pid=child.pid,
            port=port,
            tags=request.ownership_tags(),
            log_path=str(log_path),
            created_at=time.time(),
            boot_until=time.time() + boot_seconds,
        )
        self._save(record)
        return record

    @staticmethod
    def _place_files(request: LaunchRequest, workdir: Path, mounts: Path) -> None:
        """The version's bundle, unpacked: the workdir, and each file mount under `mounts`
        at its target's path (`/data/x` -> `mounts/data/x`, `~/x` -> `mounts/~/x`): a
        local replica must not write into the operator's own `/` or home."""
        if request.bundle is not None:
            unpack(request.bundle.path, workdir, lambda target: mounts / target.lstrip("/"))
        elif request.workdir:  # a version stored before bundles existed
            shutil.copytree(request.workdir, workdir, ignore=COPY_IGNORE, dirs_exist_ok=True)
        workdir.mkdir(parents=True, exist_ok=True)
        mounts.mkdir(parents=True, exist_ok=True)

    def get(self, instance_id: str, location: Location) -> Instance | None:
        with self._lock:
            self.enforce_market()
            record = self._load(instance_id)
            return self._instance(self._refresh(record)) if record else None

    def terminate(self, instance_id: str, location: Location) -> bool:
        self._api_delay(location.zone)
        with self._lock:
            record = self._load(instance_id)
            if record is None:
                return True
            kill_group(record.pid)
            self._reap(record.pid)
            self._path(instance_id).unlink(missing_ok=True)
            shutil.rmtree(self.root / "replicas" / instance_id, ignore_errors=True)
            return True

    def release(self, service: str) -> bool:
        """Nothing to release: local replicas read their bundle from the controller's disk."""
        return True

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        with self._lock:
            self.enforce_market()
            records = [r for r in self._records() if service is None or r.service == service]
            return [self._instance(self._refresh(r)) for r in records]

    def preempt(self, instance_id: str, reason: str) -> None:
        """Take a spot instance away the way a cloud does: its processes die at once."""
        with self._lock:
            record = self._load(instance_id)
            if record is None or not self._live(record):
                return
            kill_group(record.pid, grace_seconds=0)
            self._reap(record.pid)
            self._save(replace(record, state=InstanceState.PREEMPTED.value, detail=reason))

    def enforce_market(self) -> None:
        """Take the newest spot instances of any zone running over its spot capacity: at
        once, or, where the zone gives notice, warn them and take them when it runs out."""
        with self._lock:
            now = time.time()
            for record in self._records():
                if record.preempt_at and now >= record.preempt_at:
                    self.preempt(record.instance_id, record.detail)
            state = self.market.read()
            for zone in state.zones:
                if zone.spot_capacity is None:
                    continue
                live = [r for r in self._records() if r.zone == zone.zone and self._holds_spot(r)]
                live.sort(key=lambda r: r.created_at, reverse=True)
                excess = len(live) - zone.spot_capacity
                lead = state.notice_seconds(zone)
                reason = f"spot capacity in {zone.zone} dropped to {zone.spot_capacity}"
                for record in live[: max(0, excess)]:
                    if lead > 0:
                        self._save(
                            replace(record, noticed_at=now, preempt_at=now + lead, detail=reason)
                        )
                    else:
                        self.preempt(record.instance_id, reason)

    def _holds_spot(self, record: LocalRecord) -> bool:
        """A running spot instance not yet warned: what counts against the zone's capacity
        (a warned one is already being taken back)."""
        return record.spot and not record.preempt_at and self._live(record)

    def drive_market(self, now: float) -> None:
        """Apply the market driver's capacities for `now`, then preempt what no longer fits."""
        with self._lock:
            state = self.market.read()
            wanted = driver_capacities(state.driver, [z.zone for z in state.zones], now)
            updated = state
            for zone, capacity in wanted.items():
                current = updated.zone(zone)
                if current is not None and current.spot_capacity != capacity:
                    updated = updated.with_zone(replace(current, spot_capacity=capacity))
            if updated is not state:
                self.market.write(updated)
            self.enforce_market()

    def spot_in_use(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._records():
            if record.spot and self._live(record):
                counts[record.zone] = counts.get(record.zone, 0) + 1
        return counts

    def _api_delay(self, zone: str) -> None:
        market = self.market.read().zone(zone)
        if market is not None and market.api_delay_seconds > 0:
            time.sleep(market.api_delay_seconds)

    def _refresh(self, record: LocalRecord) -> LocalRecord:
        if record.state != InstanceState.RUNNING.value or is_alive(
            record.pid, self._children.get(record.pid)
        ):
            return record
        code = self._reap(record.pid)
        kill_group(record.pid, grace_seconds=0)
        detail = "replica process exited" + (f" with code {code}" if code is not None else "")
        updated = replace(record, state=InstanceState.TERMINATED.value, detail=detail)
        self._save(updated)
        return updated

    def _live(self, record: LocalRecord) -> bool:
        return self._refresh(record).state == InstanceState.RUNNING.value

    def _reap(self, pid: int) -> int | None:
        child = self._children.pop(pid, None)
        if child is None:
            return None
        try:
            return child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _instance(self, record: LocalRecord) -> Instance:
        state = InstanceState(record.state)
        if state == InstanceState.RUNNING and time.time() < record.boot_until:
            state = InstanceState.PENDING
        notice = None
        if record.preempt_at and state == InstanceState.RUNNING:
            notice = PreemptionNotice(record.preempt_at, record.detail, record.noticed_at)
        return Instance(
            instance_id=record.instance_id,
            location=Location(CLOUD, REGION, record.zone),
            spot=record.spot,
            state=state,
            service=record.service,
            replica_id=record.replica_id,
            launch_token=record.launch_token,
            address=self.host,
            port=record.port,
            detail=record.detail,
            controller_id=record.tags.get(TAG_CONTROLLER_ID, ""),
            notice=notice,
        )

    def tags_of(self, instance_id: str) -> dict[str, str]:
        record = self._load(instance_id)
        return dict(record.tags) if record else {}

    def _path(self, instance_id: str) -> Path:
        return self.root / "instances" / f"{instance_id}.json"

    def _save(self, record: LocalRecord) -> None:
        path = self._path(record.instance_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, path)

    def _load(self, instance_id: str) -> LocalRecord | None:
        try:
            return LocalRecord(**json.loads(self._path(instance_id).read_text()))
        except FileNotFoundError:
            return None

    def _records(self) -> list[LocalRecord]:
        folder = self.root / "instances"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.json")):
            record = self._load(path.stem)
            if record:
                out.append(record)
        return out
