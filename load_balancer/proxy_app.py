"""Per-process state shared by every client connection of one worker."""

from __future__ import annotations

from load_balancer.api_keys import ApiKeys
from load_balancer.balancing import AffinitySettings, ReplicaSet
from load_balancer.config import LBConfig
from load_balancer.controller_sync import SyncUpdate
from load_balancer.structured_log import log_event
from load_balancer.telemetry import Telemetry, WorkerCounters, render_prometheus
from load_balancer.tls import ServerCertificate
from load_balancer.wake import WakeQueue


class ProxyApp:
    """Config, ready replicas and telemetry of one worker process (constructed without I/O)."""

    def __init__(
        self,
        config: LBConfig,
        telemetry: Telemetry,
        worker_index: int,
        certificate: ServerCertificate | None = None,
    ) -> None:
        self.config = config
        self.telemetry = telemetry
        self.counters: WorkerCounters = telemetry.worker(worker_index)
        affinity = AffinitySettings(
            config.session_header.encode("latin-1"), config.affinity_balance_factor
        )
        self.replicas = ReplicaSet(config.policy, self.counters, config.connect_timeout, affinity)
        self.open_connections = 0
        self.resume_streams = config.resume_streams
        self.wake = WakeQueue(config.wake_queue, config.wake_wait)
        self.api_keys = ApiKeys()
        self.certificate = certificate
        self.forwarded_proto = b"https" if certificate is not None else b"http"
        self.syncs_applied = 0
        """Updates taken (one per successful sync): tests and operators wait on it."""

    def apply(self, update: SyncUpdate) -> None:
        """Take a sync's ready list and settings (requests already started keep theirs)."""
        self.syncs_applied += 1
        self.replicas.update(update.assignments, update.policy, update.weights)
        self.wake.replicas_changed(bool(self.replicas.ready))
        if update.api_key_hashes is not None:
            if len(update.api_key_hashes) != len(self.api_keys):
                log_event("info", "api_keys_changed", api_keys=len(update.api_key_hashes))
            self.api_keys.replace(update.api_key_hashes)
        resume = update.resume_streams
        if resume is not None and resume != self.resume_streams:
            self.resume_streams = resume
            log_event("info", "resume_streams_changed", resume_streams=resume)
        header = update.session_header
        if header is not None and header.lower().encode() != self.replicas.affinity.header:
            self.replicas.set_session_header(header)
            log_event("info", "session_header_changed", session_header=header.lower())

    def admit_connection(self) -> bool:
        """Take a client connection slot; False when ``--max-connections`` are all taken."""
        if self.open_connections >= self.config.max_connections:
            return False
        self.open_connections += 1
        return True

    def release_connection(self) -> None:
        self.open_connections -= 1

    def metrics_text(self) -> str:
        return render_prometheus(
            self.telemetry,
            self.config.service_label,
            self.replicas.slots(),
            follows_controller=not self.config.standalone,
        )
