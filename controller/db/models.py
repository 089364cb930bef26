"""Tables: services, their versions (the spec of each), replicas and events.

Times are epoch seconds (floats) taken from the injected clock, so tests and restarts agree
on them without time zones. Every replica row exists before its instance does: its
`launch_token` is written first and is also the cloud tag that finds the instance again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    ready_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    lb_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lb_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    next_replica_id: Mapped[int] = mapped_column(Integer, default=1)
    target_replicas: Mapped[int] = mapped_column(Integer, default=0)
    policy_name: Mapped[str] = mapped_column(String(32), default="")
    policy_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tick_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """`controller.tick_state.TickState` as JSON: what the tick remembers between ticks."""
    cost_so_far: Mapped[float] = mapped_column(Float, default=0.0)
    on_demand_cost_so_far: Mapped[float] = mapped_column(Float, default=0.0)
    cost_updated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    replicas_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped in the same transaction as every write to one of the service's replicas
    (`SqlReplicaStore`), so a reader knows which services changed without reading them."""

    versions: Mapped[list[ServiceVersionRow]] = relationship(
        back_populates="service", cascade="all, delete-orphan", order_by="ServiceVersionRow.version"
    )
    replicas: Mapped[list[ReplicaRow]] = relationship(
        back_populates="service", cascade="all, delete-orphan", order_by="ReplicaRow.replica_id"
    )
    api_keys: Mapped[list[ApiKeyRow]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ApiKeyRow.id"
    )


class ServiceVersionRow(Base):
    __tablename__ = "service_versions"
    __table_args__ = (UniqueConstraint("service_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    bundle_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # How the version replaces the one before (`serve update --mode`, `--max-surge`), and
    # when one of its replicas was first READY (`serve update --rollback` goes back to it).
    update_mode: Mapped[str] = mapped_column(
        String(16), default="rolling", server_default="rolling"
    )
    max_surge: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ready_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    service: Mapped[ServiceRow] = relationship(back_populates="versions")


class ReplicaRow(Base):
    __tablename__ = "replicas"
    __table_args__ = (UniqueConstraint("service_id", "replica_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    replica_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[float] = mapped_column(Float)
    launch_token: Mapped[str] = mapped_column(String(64), unique=True)
    spot: Mapped[bool] = mapped_column(Boolean)
    cloud: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str] = mapped_column(String(64))
    instance_type: Mapped[str] = mapped_column(String(64), default="")
    price_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    on_demand_price_per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    instance_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    url: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    launched_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ready_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    probe_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_probe_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    terminated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The replica agent (cloud replicas): its token, address, pinned certificate, when it
    # got its job, and how much of its log the controller has copied.
    agent_token: Mapped[str] = mapped_column(String(64), default="", server_default="")
    agent_url: Mapped[str | None] = mapped_column(String(256), nullable=True)
    agent_cert_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job_sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    log_offset: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    drain_deadline: Mapped[float | None] = mapped_column(Float, nullable=True)

    service: Mapped[ServiceRow] = relationship(back_populates="replicas")


class EventRow(Base):
    """An operator-facing event. Keyed by service name, so it outlives `serve down`.

    Identical consecutive events (same kind, message and replica) are one row: `count`
    says how many times it happened, `at` the first time and `last_at` the latest, so a
    service stuck on the same problem writes one row, not one per tick."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(64), index=True)
    replica_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(48))
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[float] = mapped_column(Float, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class InstallationRow(Base):
    """Who this installation is: every controller sharing the database tags the instances it
    launches with this id, and reaps only instances that carry it, so two installations in
    one cloud account never touch each other's VMs."""

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class RequestCountRow(Base):
    """One load balancer sync's request count: the autoscaler's input, shared by every
    controller (a standby may receive the sync; the leader reads it)."""

    __tablename__ = "request_counts"
    __table_args__ = (
        Index("ix_request_counts_service_at", "service_name", "at"),
        # A report sent again after its answer was lost is the same report: recorded once.
        Index("ux_request_counts_report", "service_name", "lb_id", "seq", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_name: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    window_seconds: Mapped[float] = mapped_column(Float)
    # Requests in flight at the load balancer when it synced, and which one it is.
    in_flight: Mapped[float | None] = mapped_column(Float, nullable=True)
    lb_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The load balancer's report number (None from load balancers that do not send one)."""


class TokenCountRow(Base):
    """Tokens one load balancer sync reported for one market of a service (what its answers
    said in their OpenAI ``usage``): the recent tokens/s and $ per million tokens read a
    window of these; older rows are trimmed."""

    __tablename__ = "token_counts"
    __table_args__ = (Index("ix_token_counts_service_at", "service_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    market: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[int] = mapped_column(BigInteger)
    completion: Mapped[int] = mapped_column(BigInteger)


class TokenTotalRow(Base):
    """Tokens since the service was created, per market: the counters `/metrics` shows and
    the $ per million tokens so far (never trimmed; one row per market)."""

    __tablename__ = "token_totals"

    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    market: Mapped[str] = mapped_column(String(16), primary_key=True)
    prompt: Mapped[int] = mapped_column(BigInteger, default=0)
    completion: Mapped[int] = mapped_column(BigInteger, default=0)


class ApiKeyRow(Base):
    """An API key of a service's endpoint (`controller.api_keys`): its SHA-256, never its
    value. Revoking deletes the row; the load balancers drop the hash at their next sync."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    service_id: Mapped[int] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64), default="", server_default="")
    created_at: Mapped[float] = mapped_column(Float)
