"""An in-process controller runtime without its schedule: the test drives the ticks.

Everything under it is real: the database, the local provisioner's processes, HTTP probes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.db import ServiceRow
from controller.lb_process import stop_lb
from controller.runtime import ControllerRuntime
from controller.services import create_service
from controller.settings import Settings
from controller.spec import load_spec_text
from provisioners.errors import ProvisionError
from provisioners.local import LocalProvisioner
from replica_manager.records import ReplicaRecord
from tests.support.processes import lb_port_block

APP = Path(__file__).parents[1] / "support" / "apps" / "probe_target.py"

SPEC = f"""
service:
  readiness_probe:
    path: /health
    initial_delay_seconds: 20
    timeout_seconds: 2
  replicas: 2
resources:
  ports: 8080
run: python3 {APP}
"""


class Harness:
    def __init__(self, runtime: ControllerRuntime):
        self.rt = runtime

    @property
    def local(self) -> LocalProvisioner:
        prov = self.rt.reconciler.provisioners["local"]  # type: ignore[union-attr]
        assert isinstance(prov, LocalProvisioner)
        return prov

    def create(self, name: str = "svc", text: str = SPEC) -> None:
        create_service(self.rt.db, self.rt.settings, self.rt.clock, name, load_spec_text(text))

    def tick(self, name: str = "svc") -> None:
        assert self.rt.reconciler is not None
        self.rt.reconciler.tick(name)

    def replicas(self, name: str = "svc") -> list[ReplicaRecord]:
        assert self.rt.reconciler is not None
        return self.rt.reconciler.store.replicas(name)

    def service(self, name: str = "svc") -> ServiceRow | None:
        with self.rt.db.session() as s:
            return s.scalars(select(ServiceRow).where(ServiceRow.name == name)).one_or_none()

    def tick_until(
        self, check: Callable[[], Any], what: str, name: str = "svc", timeout: float = 30.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tick(name)
            result = check()
            if result:
                return result
            time.sleep(0.2)
        states = [(r.replica_id, r.status.value, r.status_reason) for r in self.replicas(name)]
        raise AssertionError(f"timed out waiting for {what}; replicas: {states}")

    def workdir_of(self, record: ReplicaRecord) -> Path:
        assert record.instance_id
        return self.local.root / "replicas" / record.instance_id / "workdir"


@pytest.fixture
def harness_clouds() -> tuple[str, ...]:
    """The clouds the harness enables; a test module may override this fixture."""
    return ("local",)


@pytest.fixture
def harness_settings() -> dict[str, Any]:
    """Settings the harness overrides; a test module may override this fixture."""
    return {}


@pytest.fixture
def harness(
    db_url: str,
    tmp_path: Path,
    harness_clouds: tuple[str, ...],
    harness_settings: dict[str, Any],
) -> Iterator[Harness]:
    settings = replace(
        Settings.from_env({}),
        home=tmp_path / "home",
        database_url=db_url,
        lb_port_start=lb_port_block(),
        probe_failures_to_not_ready=2,
        not_ready_grace_seconds=1.0,
        orphan_scan_seconds=0.0,
        clouds=harness_clouds,
        **harness_settings,
    )
    runtime = ControllerRuntime(settings)
    runtime.start(schedule=False)
    assert runtime.lead(), "the harness's controller leads (its launches pass the fence)"
    try:
        yield Harness(runtime)
    finally:
        assert runtime.reconciler is not None
        for prov in runtime.reconciler.provisioners.values():
            with contextlib.suppress(ProvisionError):  # a test may have broken credentials
                for inst in prov.list_owned():
                    prov.terminate(inst.instance_id, inst.location)
        with runtime.db.session() as s:
            for row in s.scalars(select(ServiceRow)).all():
                stop_lb(row.lb_pid, row.name)
        runtime.stop()
