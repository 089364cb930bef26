"""The REST API's request and response bodies (the HTTP edge of the controller)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from controller.service_status import ServiceStatus
from replica_manager.records import ReplicaStatus

BUNDLE_DIGEST = r"^[0-9a-f]{64}$"


class ServiceCreate(BaseModel):
    """Either `spec` (the parsed YAML mapping) or `yaml` (its text). `bundle`: the SHA-256
    of the workdir and file mounts uploaded to /api/v1/bundles (`serve up` does it); without
    it, the controller packs the paths itself if they are on its own disk."""

    name: str | None = Field(None, max_length=64)
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=256 * 1024)
    bundle: str | None = Field(None, pattern=BUNDLE_DIGEST)


class ServiceUpdate(BaseModel):
    spec: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=256 * 1024)
    bundle: str | None = Field(None, pattern=BUNDLE_DIGEST)
    mode: Literal["rolling", "blue_green"] = "rolling"
    max_surge: int | None = Field(None, ge=0, le=1000)


class ServiceRollback(BaseModel):
    """A new version made of `to_version`, or of the last version before the current one
    that was ever READY."""

    to_version: int | None = Field(None, ge=1)
    mode: Literal["rolling", "blue_green"] = "rolling"


class ReplicaPublic(BaseModel):
    id: int
    version: int
    status: ReplicaStatus
    status_reason: str
    cloud: str
    region: str
    zone: str
    spot: bool
    url: str | None
    instance_type: str
    resources: str
    price_per_hour: float
    launched_at: float | None
    ready_at: float | None
    created_at: float
    drain_deadline: float | None = None
    """DRAINING: when the cloud said it takes the instance (seconds since the epoch)."""


class ReplicaDown(BaseModel):
    """The answer to `DELETE /services/{name}/replicas/{id}`: SHUTTING_DOWN (the controller
    drains and terminates it, then replaces it if the target still wants one) or PURGED
    (forgotten after one terminate attempt; `terminated` says whether the cloud confirmed,
    `tags` find an instance left behind)."""

    service: str
    replica_id: int
    status: str
    detail: str
    instance_id: str | None
    location: str
    terminated: bool | None = None
    tags: dict[str, str] = {}


class CostPublic(BaseModel):
    per_hour: float
    on_demand_per_hour: float
    so_far: float
    on_demand_so_far: float
    savings_fraction: float | None


class MarketTokensPublic(BaseModel):
    """Tokens that answers reported in their OpenAI ``usage`` (read by the load balancers)."""

    tokens_per_second: float
    prompt_tokens_per_second: float
    completion_tokens_per_second: float
    cost_per_hour: float
    usd_per_million_tokens: float | None
    """Cost per hour now over tokens per hour in the window; None while no token came."""
    tokens_so_far: int


class TokensPublic(MarketTokensPublic):
    window_seconds: float
    """The rates' window: the last 5 minutes, or the service's age if it is younger."""
    usd_per_million_tokens_so_far: float | None
    """Cost so far over tokens so far."""
    markets: dict[str, MarketTokensPublic]
    """`spot`, `on_demand` (and `unknown`: answers of replicas the controller does not know)."""


class ServicePublic(BaseModel):
    name: str
    status: ServiceStatus
    status_reason: str
    version: int
    endpoint: str | None
    endpoint_down: str | None = None
    """Why the endpoint does not answer though the service runs (its load balancer cannot
    start), or None."""
    created_at: float
    uptime_seconds: float | None
    target_replicas: int
    ready_replicas: int
    spot_replicas: int
    on_demand_replicas: int
    load_balancing_policy: str
    policy: str
    policy_state: dict[str, Any]
    on_demand_only: str = ""
    """Why the policy serves from on-demand only though spot may be had ("" when it does
    not): the recent outage is above the YAML's availability_target."""
    cost: CostPublic
    tokens: TokensPublic
    replicas: list[ReplicaPublic]
    spec: dict[str, Any]


class ServiceCreated(ServicePublic):
    warnings: list[str] = []


class EventPublic(BaseModel):
    id: int
    service: str
    replica_id: int | None
    kind: str
    message: str
    at: float
    data: dict[str, Any]
    count: int = 1
    last_at: float | None = None
    """Identical consecutive events are one: `count` times, first at `at`, last at `last_at`."""


TokenCount = Annotated[int, Field(ge=0, le=10**15)]


class LbSyncRequest(BaseModel):
    """`request_count` is bounded far above any real report (an unbounded one overflowed the
    rate arithmetic and stopped the service's reconcile until the window passed). The window
    is not: after a long outage a load balancer reports a long one, and must not be refused."""

    request_count: int = Field(0, ge=0, le=10**12)
    window_seconds: float = Field(0.0, ge=0)
    in_flight: int | None = Field(None, ge=0, le=10**9)
    """Requests in flight at the load balancer now (concurrency autoscaling)."""
    lb_id: str | None = Field(None, max_length=64)
    """Which load balancer reports (a service may have several)."""
    seq: int | None = Field(None, ge=0, le=2**62)
    """The load balancer's report number: a report sent again (its answer was lost) carries
    the same number and the same counts, and is recorded once."""
    tokens: dict[str, tuple[TokenCount, TokenCount]] | None = Field(None, max_length=1024)
    """Replica URL -> [prompt, completion] tokens its answers reported since the last sync."""


class LbSyncResponse(BaseModel):
    """`replica_weights` ({url: requests/s}) only when `target_qps_per_replica` is given per
    accelerator; absent, the load balancers weigh every replica alike. `session_header`
    (lowercase) names the header whose value is a request's session key under
    `session_affinity`, sent only under that policy; absent, the load balancers keep theirs."""

    ready_replicas: list[str]
    load_balancing_policy: str
    resume_streams: bool = False
    replica_weights: dict[str, float] | None = None
    session_header: str | None = None
    api_key_hashes: list[str] = []
    """SHA-256 of each API key the load balancer must accept; empty: the endpoint is open."""


class ApiKeyCreate(BaseModel):
    label: str = Field("", max_length=64, pattern=r"^[\w .:@/+-]*$")
    """A note for operators (who uses the key); letters, digits, spaces and ._:@/+-"""


class ApiKeyPublic(BaseModel):
    """A key as listed: never its value."""

    id: int
    prefix: str
    label: str
    created_at: float


class ApiKeyRevoked(ApiKeyPublic):
    keys_left: int
    """0: the service has no keys left, so its endpoint is open again."""


class ApiKeyCreated(ApiKeyPublic):
    key: str
    """The key itself: in this answer only; the controller keeps its hash."""


class ErrorBody(BaseModel):
    error: str
    detail: str
    issues: list[dict[str, str]] = []
