"""The controller's moving parts wired together: database, provisioners, the reconcile
schedule. Constructing it does no I/O; `start()` upgrades the schema and starts ticking."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from common.clock import Clock, SystemClock
from controller.api.service_listing import ServiceListing
from controller.auth import ensure_token
from controller.bundle_store import BundleStore
from controller.db import Database, InstallationRow, ServiceRow
from controller.db.replica_store import SqlReplicaStore
from controller.db.request_counts import RequestCounts
from controller.db.token_counts import trim_token_counts
from controller.leader import leader_lock
from controller.reconcile import Reconciler
from controller.settings import Settings
from controller.timings import Round, Timings
from provisioners.local import LocalProvisioner
from provisioners.registry import make_provisioners
from replica_manager.agent_sync import AgentSync
from replica_manager.cleanup import Cleaner
from replica_manager.execute import Executor
from replica_manager.observe import Observer, ProbePolicy
from replica_manager.probe import ProbeBoard

log = logging.getLogger(__name__)


@dataclass
class TickCounters:
    """What the schedule has done since start, for `/healthz`: tests wait on these to know
    that ticks happened instead of sleeping and hoping they did."""

    attempts: int = 0
    leading: int = 0
    service_ticks: int = 0
    database_errors: int = 0


def installation_id(db: Database, settings: Settings, now: float) -> str:
    """This installation's id, shared by every controller on the database: the tag value
    that says an instance is ours to adopt or reap. Made once; an older installation keeps
    the id it kept in `SERVE_HOME/controller_id`, so its running instances stay its own."""
    with db.session() as s:
        found = s.scalars(select(InstallationRow.id)).first()
        if found is not None:
            return found
    legacy = settings.home / "controller_id"
    new = legacy.read_text().strip() if legacy.exists() else f"ctrl-{secrets.token_hex(4)}"
    try:
        with db.session() as s:
            s.add(InstallationRow(id=new, created_at=now))
    except IntegrityError:
        pass  # another controller made it first: use theirs
    with db.session() as s:
        return s.scalars(select(InstallationRow.id)).one()


class ControllerRuntime:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock = clock or SystemClock()
        self.db = Database(settings.database_url)
        self.rates = RequestCounts(self.db, settings.qps_window_seconds)
        self.listing = ServiceListing(self.db, settings)
        self.leader_lock = leader_lock(settings.database_url, settings.home)
        self.is_leader = False
        self.installation_id = ""
        self.counters = TickCounters()
        self.timings = Timings()
        self._db_failures = 0
        self._resume_at = 0.0
        self.token = ""
        self.scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        self._pool = ThreadPoolExecutor(
            max_workers=settings.tick_workers, thread_name_prefix="service"
        )
        self._io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="cloud")
        self._agent_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="agent")
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self.reconciler: Reconciler | None = None
        self.bundles = BundleStore(settings.bundle_dir, settings.max_bundle_bytes + (1 << 20))
        self.prober: ProbeBoard | None = None

    def start(self, *, schedule: bool = True) -> None:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.token = ensure_token(s.token_path)
        self.db.upgrade()
        self.installation_id = installation_id(self.db, s, self.clock.now())
        provisioners = make_provisioners(
            s.clouds, s.local_root, s.log_dir / "services", self.installation_id
        )
        store = SqlReplicaStore(self.db, self.clock)
        self.prober = ProbeBoard(s.tick_seconds, on_probe=self.timings.probed)
        self.prober.start()
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
                provisioning_deadline=s.provisioning_deadline_seconds,
                visibility_grace=s.visibility_grace_seconds,
                agents=AgentSync(
                    store,
                    provisioners,
                    self.clock,
                    self._agent_pool,
                    lambda service, replica: s.service_log_dir(service) / f"replica-{replica}.log",
                ),
            ),
            executor=Executor(
                store,
                provisioners,
                self.clock,
                self.installation_id,
                self._io_pool,
                fence=self.still_leading,
                wait_seconds=s.launch_wait_seconds,
            ),
            cleaner=Cleaner(
                store,
                provisioners,
                self.clock,
                self._io_pool,
                s.terminal_retention_seconds,
                s.drain,
                controller_id=self.installation_id,
                fence=self.still_leading,
                wait_seconds=s.launch_wait_seconds,
                visibility_grace=s.visibility_grace_seconds,
            ),
            bundles=self.bundles,
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
            self.scheduler.add_job(
                self.sweep_installation, "interval", seconds=s.sweep_seconds, id="sweep"
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
        self.counters.attempts += 1
        if time.monotonic() < self._resume_at or not self.lead():
            return
        self.counters.leading += 1
        try:
            with self.db.session() as session:
                names = list(session.scalars(select(ServiceRow.name)).all())
                trim_token_counts(session, self.clock.now())
            self.rates.trim(self.clock.now())
        except OperationalError as exc:
            self._back_off(exc)
            return
        self._db_failures = 0
        with self._lock:
            due = [n for n in names if n not in self._running or self._running[n].done()]
            round_ = self.timings.round_started(len(due))
            for name in due:
                self._running[name] = self._pool.submit(self._tick_one, name, round_)

    def still_leading(self) -> bool:
        """The fence checked before every provider mutation: a controller that lost the
        lock since its tick began launches and terminates nothing more."""
        return self.is_leader and self.leader_lock.still_held()

    def sweep_installation(self) -> None:
        """As the leader, terminate this installation's instances of deleted services."""
        if not self.is_leader or self.reconciler is None:
            return
        try:
            found = self.reconciler.sweep_installation()
        except OperationalError as exc:
            self._back_off(exc)
            return
        if found:
            log.warning("installation sweep: %d instances of deleted services terminated", found)

    def _drive_market(self, local: LocalProvisioner) -> None:
        """Only the leader moves the simulated market (moving it preempts replicas)."""
        if self.is_leader:
            local.drive_market(self.clock.now())

    def lead(self) -> bool:
        """Whether this controller leads now, taking the lock if it is free."""
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
        self.counters.database_errors += 1
        delay = min(30.0, self.settings.tick_seconds * 2 ** (self._db_failures - 1))
        self._resume_at = time.monotonic() + delay
        log.warning(
            "database unavailable (%s); nothing is launched; next try in %.1fs",
            str(exc.orig).splitlines()[0] if exc.orig else exc,
            delay,
        )

    def _tick_one(self, name: str, round_: Round | None = None) -> None:
        assert self.reconciler is not None
        started = self.timings.tick_started(name)
        try:
            self.reconciler.tick(name)
            self.counters.service_ticks += 1
            self.timings.tick_done(started)
        except OperationalError as exc:
            self._back_off(exc)
        except Exception:
            log.exception("reconcile of %s failed; will retry next tick", name)
        finally:
            if round_ is not None:
                round_.ticked()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.leader_lock.release()
        self._io_pool.shutdown(wait=False, cancel_futures=True)
        self._agent_pool.shutdown(wait=False, cancel_futures=True)
        if self.prober:
            self.prober.close()
        self.db.dispose()
