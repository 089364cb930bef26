"""Talk to the agents of cloud replicas: hand each its job, follow it, copy its log home.

A VM cannot reach the controller, so the controller reaches the VM's agent each tick
(docs/cloud-replicas.md):
- a replica whose agent has no job yet gets one: the agent first proves it holds the
  replica's token and that the proof is bound to its TLS certificate (`hello`), then
  receives `setup`, `run`, the envs, the secrets and signed URLs for its bucket mounts;
  the certificate is pinned in the replica's row from then on;
- an agent that reports a failed boot step or an exited program ends the replica with that
  reason (`serve status` and events show it); one that saw the cloud's preemption notice
  in the instance metadata has its replica drained;
- new log bytes are appended to the replica's log under SERVE_HOME, where `serve logs`
  reads them, while the replica lives and after it is gone.
An agent that does not answer yet (the VM is booting) is tried again next tick; its
initial delay bounds how long. One that answers but cannot prove it is the replica is
treated as lost, never given secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.clock import Clock
from provisioners.base import PreemptionNotice, Provisioner
from provisioners.errors import ProvisionError
from provisioners.object_store import SignsBucketSources
from replica_manager.agent_client import (
    AgentClient,
    AgentError,
    AgentPhase,
    AgentRefused,
    AgentUntrusted,
)
from replica_manager.records import ReplicaRecord, ReplicaTemplate
from replica_manager.records import ReplicaStatus as S
from replica_manager.store import ReplicaStore

log = logging.getLogger(__name__)

FOLLOWED = frozenset({S.STARTING, S.READY, S.NOT_READY, S.DRAINING})
LOG_BYTES_PER_TICK = 1 << 20
SIGNED_URL_SECONDS = 3600
AGENT_TIMEOUT_SECONDS = 10.0
CONFLICT = 409
BAD_REQUEST = 400


@dataclass(frozen=True)
class AgentVerdict:
    """What the agent said that ends the replica: `lost` (not trusted), a failure, or the
    cloud's `notice` that it will take the instance (drain it)."""

    record: ReplicaRecord
    reason: str
    lost: bool = False
    notice: PreemptionNotice | None = None


@dataclass
class AgentSync:
    store: ReplicaStore
    provisioners: Mapping[str, Provisioner]
    clock: Clock
    pool: ThreadPoolExecutor
    log_path: Callable[[str, int], Path]
    timeout: float = AGENT_TIMEOUT_SECONDS

    def sync(self, template: ReplicaTemplate, records: list[ReplicaRecord]) -> list[AgentVerdict]:
        """Every followed replica with an agent, in parallel; the verdicts to act on."""
        agents = [r for r in records if r.status in FOLLOWED and r.agent_url and r.agent_token]
        results = self.pool.map(lambda r: self._sync_one(template, r), agents)
        return [v for v in results if v is not None]

    def _sync_one(self, template: ReplicaTemplate, record: ReplicaRecord) -> AgentVerdict | None:
        assert record.agent_url
        client = AgentClient(
            record.agent_url, record.agent_token, record.agent_cert_sha256, self.timeout
        )
        try:
            if record.job_sent_at is None:
                record = self._send_job(client, template, record)
            self._copy_log(client, record)
            status = client.status()
        except AgentUntrusted as exc:
            return AgentVerdict(
                record, f"its agent could not prove it is this replica: {exc}", True
            )
        except AgentRefused as exc:
            if exc.status == BAD_REQUEST:  # the job does not fit the replica it booted as
                return AgentVerdict(record, f"its agent refused the job: {exc}", True)
            log.debug("agent of %s replica %s: %s", record.service, record.replica_id, exc)
            return None
        except AgentError as exc:
            log.debug("agent of %s replica %s: %s", record.service, record.replica_id, exc)
            return None
        except Exception:  # one replica's agent must not stop the others' sync
            log.exception("agent sync of %s replica %s", record.service, record.replica_id)
            return None
        if status.notice is not None and record.status != S.DRAINING:
            return AgentVerdict(record, "the cloud announced a preemption", notice=status.notice)
        if status.phase == AgentPhase.FAILED:
            return AgentVerdict(record, f"replica agent: {status.detail}")
        if status.phase == AgentPhase.EXITED:
            return AgentVerdict(record, f"run exited with code {status.exit_code}")
        return None

    def _send_job(
        self, client: AgentClient, template: ReplicaTemplate, record: ReplicaRecord
    ) -> ReplicaRecord:
        fingerprint = client.hello()
        try:
            client.send_job(self._job(template, record))
        except AgentRefused as exc:
            if exc.status != CONFLICT:
                raise
            # It already has a job, and only a holder of this replica's token can have
            # given it one: we did, before a crash kept us from recording it.
        return self.store.update(
            record, job_sent_at=self.clock.now(), agent_cert_sha256=fingerprint
        )

    def _job(self, template: ReplicaTemplate, record: ReplicaRecord) -> dict[str, Any]:
        prov = self.provisioners.get(record.location.cloud)
        mounts = []
        for mount in template.bucket_mounts:
            urls = None
            if isinstance(prov, SignsBucketSources):
                try:
                    urls = prov.sign_source(mount.source, SIGNED_URL_SECONDS)
                except ProvisionError as exc:
                    log.warning("cannot sign %s, the replica tries itself: %s", mount.source, exc)
            listed = [{"url": o.url, "path": o.path} for o in urls] if urls is not None else None
            mounts.append({"target": mount.target, "source": mount.source, "urls": listed})
        return {
            "setup": template.setup,
            "run": template.run,
            "envs": dict(template.envs),
            "secrets": dict(template.secrets),
            "bucket_mounts": mounts,
            "service": template.service,
            "replica_id": record.replica_id,
            "port": template.port,
        }

    def _copy_log(self, client: AgentClient, record: ReplicaRecord) -> None:
        data, _total = client.logs(record.log_offset, LOG_BYTES_PER_TICK)
        if not data:
            return
        path = self.log_path(record.service, record.replica_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as fh:
            fh.write(data)
        self.store.update(record, log_offset=record.log_offset + len(data))
