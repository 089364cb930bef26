"""The controller's moving parts wired together: database, provisioners, the reconcile
schedule. Constructing it does no I/O; `start()` upgrades the schema and starts ticking."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from controller.auth import ensure_token
from controller.db import Database, ServiceRow
from controller.db.replica_store import SqlReplicaStore
from controller.db.request_counts import RequestCounts
from controller.leader import leader_lock
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
        self.rates = RequestCounts(self.db, settings.qps_window_seconds)
        self.leader_lock = leader_lock(settings.database_url, settings.home)
        self.is_leader = False
        self._db_failures = 0
        self._resume_at = 0.0
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
                    lambda: self._drive_market(local),
                    "interval",
                    seconds=1.0,
                    id="market",
                )
            self.scheduler.start()

    def tick_all(self) -> None:
        """As the leader, start a tick for every service whose previous tick has finished.
        After a database error, wait 1, 2, 4 ... up to 30 ticks before trying again."""
        if time.monotonic() < self._resume_at or not self._lead():
            return
        try:
            with self.db.session() as session:
                names = list(session.scalars(select(ServiceRow.name)).all())
            self.rates.trim(self.clock.now())
        except OperationalError as exc:
            self._back_off(exc)
            return
        self._db_failures = 0
        with self._lock:
            for name in names:
                running = self._running.get(name)
                if running is None or running.done():
                    self._running[name] = self._pool.submit(self._tick_one, name)

    def _drive_market(self, local: LocalProvisioner) -> None:
        """Only the leader moves the simulated market (moving it preempts replicas)."""
        if self.is_leader:
            local.drive_market(self.clock.now())

    def _lead(self) -> bool:
        assert self.reconciler is not None
        if self.is_leader:
            if self.leader_lock.still_held():
                return True
            log.error("lost the leader lock (database connection gone); standing by")
            self.is_leader = False
            return False
        if self.leader_lock.try_acquire():
            self.is_leader = True
            log.info("this controller is now the leader")
            self.reconciler.rescan_all()
            return True
        return False

    def _back_off(self, exc: OperationalError) -> None:
        self._db_failures += 1
        delay = min(30.0, self.settings.tick_seconds * 2 ** (self._db_failures - 1))
        self._resume_at = time.monotonic() + delay
        log.warning(
            "database unavailable (%s); nothing is launched; next try in %.1fs",
            str(exc.orig).splitlines()[0] if exc.orig else exc,
            delay,
        )

    def _tick_one(self, name: str) -> None:
        assert self.reconciler is not None
        try:
            self.reconciler.tick(name)
        except OperationalError as exc:
            self._back_off(exc)
        except Exception:
            log.exception("reconcile of %s failed; will retry next tick", name)

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.leader_lock.release()
        self._io_pool.shutdown(wait=False, cancel_futures=True)
        if self.prober:
            self.prober.close()
        self.db.dispose()
