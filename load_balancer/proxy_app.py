"""Per-process state shared by every client connection of one worker."""

from __future__ import annotations

from load_balancer.balancing import ReplicaSet
from load_balancer.config import LBConfig
from load_balancer.telemetry import Telemetry, WorkerCounters, render_prometheus


class ProxyApp:
    """Config, ready replicas and telemetry of one worker process (constructed without I/O)."""

    def __init__(self, config: LBConfig, telemetry: Telemetry, worker_index: int) -> None:
        self.config = config
        self.telemetry = telemetry
        self.counters: WorkerCounters = telemetry.worker(worker_index)
        self.replicas = ReplicaSet(config.policy, self.counters, config.connect_timeout)
        self.open_connections = 0

    def admit_connection(self) -> bool:
        """Take a client connection slot; False when ``--max-connections`` are all taken."""
        if self.open_connections >= self.config.max_connections:
            return False
        self.open_connections += 1
        return True

    def release_connection(self) -> None:
        self.open_connections -= 1

    def metrics_text(self) -> str:
        return render_prometheus(self.telemetry, self.config.service_label, self.replicas.slots())
