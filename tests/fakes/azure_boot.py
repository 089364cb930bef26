"""Boot mode for the Azure ARM fake: every VM it creates really runs its custom data.

A VM that reaches provisioningState Succeeded gets a new empty directory under the farm's
root and its custom data (base64 of the boot script, as `osProfile.customData` carries it)
run with bash as a local process in a process group of its own, as cloud-init would run it.
The process gets an explicit environment, never the caller's (so a test's SERVE_* variables
cannot leak into a "VM"):

    HOME                 <vm dir>/home
    SERVE_AGENT_DIR      <vm dir>/agent
    SERVE_REPLICA_LOG    <vm dir>/replica.log
    SERVE_REPLICA_HOST   the VM's own loopback address, 127.78.x.y, which the fake also
                         gives its public IP address resource as `ipAddress`
    SERVE_METADATA_URL   the fake's Instance Metadata Service for this VM (`scheduled_events`)
    PATH                 <root>/bin (python3 -> the "image's" interpreter) then /usr/bin:/bin

The boot script and the agent write everything else inside the VM directory; its stdout and
stderr (the serial console) go to <vm dir>/console.out. Killing a VM kills its process
group, the way a VM's power going off ends everything in it; `stop` kills every one left.

Linux routes all of 127.0.0.0/8 to the loopback interface, so each VM can bind its own
address without any setup, and several VMs can use the same ports.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import os
import random
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.boot_process import power_off, run_boot_script

SCHEDULED_EVENTS_API_VERSIONS = ("2017-03-01", "2017-08-01", "2017-11-01", "2019-01-01",
                                 "2019-08-01", "2020-07-01")  # fmt: skip
"""The api-versions Scheduled Events answers ("Azure Metadata Service: Scheduled Events for
Linux VMs", Version and Region Availability)."""
PREEMPT_NOTICE_SECONDS = 30
"""A Spot eviction's Preempt event comes at least 30 s before it (same page, Event
Properties: NotBefore)."""


@dataclass
class BootedVM:
    """One VM's process and the directory it lives in."""

    name: str
    address: str
    root: Path
    process: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)
    incarnation: int = 1

    @property
    def log(self) -> Path:
        return self.root / "replica.log"

    @property
    def console(self) -> Path:
        return self.root / "console.out"

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """Power off: the whole process group ends."""
        power_off(self.process)

    def scheduled_events(self) -> dict[str, Any]:
        return {"DocumentIncarnation": self.incarnation, "Events": list(self.events)}

    def post_preempt(self, notice_seconds: float) -> None:
        """The Preempt event Azure posts before evicting a Spot VM."""
        not_before = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=notice_seconds
        )
        self.events.append(
            {
                "EventId": f"{self.name}-preempt-{len(self.events) + 1}",
                "EventType": "Preempt",
                "ResourceType": "VirtualMachine",
                "Resources": [self.name],
                "EventStatus": "Scheduled",
                "NotBefore": not_before.strftime("%a, %d %b %Y %H:%M:%S GMT"),
                "Description": "",
                "EventSource": "Platform",
                "DurationInSeconds": -1,
            }
        )
        self.incarnation += 1


class BootFarm:
    """The VMs' processes. Constructor does no I/O: the root is made on the first boot."""

    def __init__(self, root: Path | None = None, python: str | None = None) -> None:
        self._root = root
        self._made_root: tempfile.TemporaryDirectory[str] | None = None
        self.python = python or os.environ.get("SERVE_TEST_AGENT_PYTHON") or sys.executable
        self.vms: dict[str, BootedVM] = {}
        self._lock = threading.Lock()
        start = random.randrange(0, 200 * 250)  # two farms on one machine rarely overlap
        self._addresses = (f"127.78.{n // 250 + 1}.{n % 250 + 2}" for n in itertools.count(start))
        self._serial = itertools.count(1)

    @property
    def root(self) -> Path:
        if self._root is None:
            self._made_root = tempfile.TemporaryDirectory(prefix="azure-boot-")
            self._root = Path(self._made_root.name)
        return self._root

    def next_address(self) -> str:
        with self._lock:
            return next(self._addresses)

    def boot(self, name: str, custom_data: str, address: str, metadata_url: str) -> BootedVM:
        """Run `custom_data` (base64) with bash in a new empty directory for VM `name`."""
        vm_dir = self.root / f"{name}-{next(self._serial)}"
        process = run_boot_script(
            vm_dir,
            base64.b64decode(custom_data),
            script_name="boot.sh",
            console_name="console.out",
            address=address,
            metadata_url=metadata_url,
            python=self.python,
        )
        vm = BootedVM(name, address, vm_dir, process)
        with self._lock:
            self.vms[name.lower()] = vm
        return vm

    def find(self, name: str) -> BootedVM | None:
        with self._lock:
            return self.vms.get(name.lower())

    def kill(self, name: str) -> None:
        """Power the VM off (its deletion or eviction); the record goes too."""
        with self._lock:
            vm = self.vms.pop(name.lower(), None)
        if vm is not None:
            vm.kill()

    def stop(self) -> None:
        """Kill every VM's process; remove the root if the farm made it."""
        with self._lock:
            vms, self.vms = list(self.vms.values()), {}
        for vm in vms:
            vm.kill()
        if self._made_root is not None:
            self._made_root.cleanup()
            self._made_root, self._root = None, None
