"""A cloud for measuring the controller at fleet scale, behind the same `Provisioner`
interface as the real ones (a plugin: `SERVE_CLOUD_PLUGINS=scale=tests.support.scale_cloud:factory`).

Instances are RUNNING the moment they are launched and every replica answers from one
shared HTTP server (`python -m tests.support.scale_cloud PORT`, a separate process whose URL
comes in `SERVE_SCALE_REPLICA_URL`), so thousands of replicas cost nothing but the
controller's own work: its ticks, database, probes and API. Test-only: it lives in tests/.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Collection
from urllib.parse import urlsplit

from policies.types import Location, Offer
from provisioners.base import (
    CheckResult,
    Instance,
    InstanceState,
    LaunchRequest,
    Provisioner,
    ResourceRequest,
)
from provisioners.registry import Where

ZONES = tuple(Location("scale", "scale-1", f"scale-1{z}") for z in "abc")


class ScaleCloud:
    cloud = "scale"

    def __init__(self, installation: str, replica_url: str) -> None:
        parts = urlsplit(replica_url)
        self._address, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._installation = installation
        self._instances: dict[str, Instance] = {}
        self._by_service: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def check(self) -> CheckResult:
        return CheckResult(self.cloud, True, "instances appear at once; one server answers all")

    def offers(self, resources: ResourceRequest) -> list[Offer]:
        return [Offer(z, 3.0, 1.0, "scale-vm") for z in ZONES if resources.allows(z)]

    def launch(self, request: LaunchRequest) -> Instance:
        inst = Instance(
            instance_id=f"scale-{request.launch_token[:16]}",
            location=request.location,
            spot=request.spot,
            state=InstanceState.RUNNING,
            service=request.service,
            replica_id=request.replica_id,
            launch_token=request.launch_token,
            address=self._address,
            port=self._port,
            controller_id=request.controller_id,
        )
        with self._lock:
            self._instances[inst.instance_id] = inst
            self._by_service.setdefault(inst.service, set()).add(inst.instance_id)
        return inst

    def get(self, instance_id: str, location: Location) -> Instance | None:
        with self._lock:
            return self._instances.get(instance_id)

    def terminate(self, instance_id: str, location: Location) -> bool:
        with self._lock:
            inst = self._instances.pop(instance_id, None)
            if inst is not None:
                self._by_service.get(inst.service, set()).discard(instance_id)
        return True

    def release(self, service: str) -> bool:
        return True

    def list_owned(
        self, service: str | None = None, regions: Collection[str] | None = None
    ) -> list[Instance]:
        with self._lock:
            if service is None:
                return list(self._instances.values())
            return [self._instances[i] for i in self._by_service.get(service, ())]


def factory(where: Where) -> Provisioner:
    url = os.environ.get("SERVE_SCALE_REPLICA_URL", "http://127.0.0.1:1")
    return ScaleCloud(where.installation, url)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Every request gets `200 ok`, keep-alive: the probe of every replica."""
    body = b'{"status": "ok"}'
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    try:
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            if not request:
                break
            writer.write(head + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_answer, "127.0.0.1", port)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
