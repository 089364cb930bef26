"""The controller's moving parts wired together: database, provisioners, the reconcile
schedule. Constructing it does no I/O; `start()` upgrades the schema and starts ticking."""

from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from autoscaler.rate import RequestRates
from controller.auth import ensure_token
from controller.db import Database, ServiceRow
from controller.db.replica_store import SqlReplicaStore
from controller.reconcile import Reconciler
from controller.settings import Settings
from provisioners.local import LocalProvisioner
from provisioners.registry import make_provisioners
from replica_manager.cleanup import Cleaner
from replica_manager.clock import Clock, SystemClock
from replica_manager.execute import Executor
from replica_manager.observe import Observer, ProbePolicy
from replica_manager.probe import Prober

log = logging.getLogger(__name__)


def controller_id(settings: Settings) -> str:
    path = settings.home / "controller_id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"ctrl-{secrets.token_hex(4)}")
    return path.read_text().strip()


class ControllerRuntime:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.database_url)
        self.rates = RequestRates(settings.qps_window_seconds)
        self.token = ""
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="service")
        self._io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cloud")
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self.reconciler: Reconciler | None = None
        self.prober: Prober | None = None

    def start(self, *, schedule: bool = True) -> None:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.token = ensure_token(s.token_path)
        self.db.upgrade()
        provisioners = make_provisioners(s.clouds, s.local_root, s.log_dir / "services")
        store = SqlReplicaStore(self.db, self.clock)
        self.prober = Prober()
        self.reconciler = Reconciler(
            settings=s,
            db=self.db,
            store=store,
            clock=self.clock,
            provisioners=provisioners,
            observer=Observer(
                store,
                provisioners,
                self.prober,
                self.clock,
                ProbePolicy(s.probe_failures_to_not_ready, s.not_ready_grace_seconds),
            ),
            executor=Executor(store, provisioners, self.clock, controller_id(s), self._io_pool),
            cleaner=Cleaner(
                store,
                provisioners,
                self.clock,
                self._io_pool,
                s.terminal_retention_seconds,
                s.drain,
            ),
            request_rate=self.rates,
        )
        if schedule:
            self.scheduler.add_job(
                self.tick_all,
                "interval",
                seconds=s.tick_seconds,
                id="reconcile",
                next_run_time=datetime.now(UTC),
            )
            local = provisioners.get("local")
            if isinstance(local, LocalProvisioner):
                self.scheduler.add_job(
                    lambda: local.drive_market(self.clock.now()),
                    "interval",
                    seconds=1.0,
                    id="market",
                )
            self.scheduler.start()

    def tick_all(self) -> None:
        """Start a tick for every service whose previous tick has finished."""
        try:
            with self.db.session() as session:
                names = list(session.scalars(select(ServiceRow.name)).all())
        except OperationalError as exc:
            log.warning("database unavailable, skipping this tick: %s", exc.orig)
            return
        with self._lock:
            for name in names:
                running = self._running.get(name)
                if running is None or running.done():
                    self._running[name] = self._pool.submit(self._tick_one, name)

    def _tick_one(self, name: str) -> None:
        assert self.reconciler is not None
        try:
            self.reconciler.tick(name)
        except OperationalError as exc:
            log.warning("database unavailable during the tick of %s: %s", name, exc.orig)
        except Exception:
            log.exception("reconcile of %s failed; will retry next tick", name)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._io_pool.shutdown(wait=False, cancel_futures=True)
        if self.prober:
            self.prober.close()
        self.db.dispose()
