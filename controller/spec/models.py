"""Pydantic models of SkyPilot's service YAML, with SkyPilot's defaults filled in.

The models are the YAML edge: they accept what `sky serve up` accepts and normalise it
(a probe path becomes a probe object, `replicas: N` becomes a fixed replica policy,
accelerators become an ordered `{name: count}` mapping). Cross-field rules raise
`SpecProblem`, which the loader turns into a path-and-hint message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from controller.spec.errors import SpecProblem
from controller.spec.resource_values import (
    Accelerators,
    Scalar,
    check_amount,
    parse_accelerators,
    port_list,
)

CLOUDS = ("aws", "gcp", "azure", "kubernetes", "local")
CLOUD_ALIASES = {"k8s": "kubernetes", "amazon": "aws", "google": "gcp"}
SERVICE_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # a token, RFC 9110 section 5.1
# Replica counts are stored in INTEGER columns and multiplied by prices; a bound far above
# any real fleet keeps a typo'd or hostile count a clear 422 instead of a database overflow.
MAX_REPLICAS = 1000
PositiveQps = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# A number, or SkyPilot's per-accelerator form; the YAML's shape picks the branch, so an error
# speaks of that branch only.
QpsTarget = Annotated[
    Annotated[PositiveQps, Tag("number")] | Annotated[dict[str, PositiveQps], Tag("mapping")],
    Discriminator(lambda v: "mapping" if isinstance(v, dict) else "number"),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadinessProbe(Strict):
    path: str
    initial_delay_seconds: float = Field(1200, ge=0)
    timeout_seconds: float = Field(15, gt=0)
    post_data: str | dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise SpecProblem(f"path {path!r} must start with '/'", f"write '/{path}'")
        return path


class ReplicaPolicy(Strict):
    min_replicas: int = Field(1, ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(None, ge=0, le=MAX_REPLICAS)
    # One number, or SkyPilot's per-accelerator form `{A100: 10, L4: 4}` (checked against
    # the resources in `controller/spec/capacity.py`).
    target_qps_per_replica: QpsTarget | None = None
    # Our extension, as Ray Serve and Knative scale: requests in flight one replica should
    # carry; with target_qps_per_replica too, the larger count wanted wins.
    target_concurrency_per_replica: float | None = Field(None, gt=0)
    upscale_delay_seconds: float = Field(300, ge=0)
    downscale_delay_seconds: float = Field(1200, ge=0)
    base_ondemand_fallback_replicas: int = Field(0, ge=0, le=MAX_REPLICAS)
    dynamic_ondemand_fallback: bool = False
    num_overprovision: int | None = Field(None, ge=0, le=MAX_REPLICAS)
    # SkyPilot's SpotHedge placer: spread spot replicas, leave locations that preempt
    # (policies/placement.py); unset, every spot replica goes to the cheapest location.
    spot_placer: Literal["dynamic_fallback"] | None = None
    # Our extension of SkyPilot's format: which spot policy places the replicas
    # (policies/registry.py). SpotHedge is SkyPilot's; adaptive_hedge sizes the hedge from
    # recent preemptions (policies/adaptive_hedge.py) and always spreads like the placer.
    spot_policy: Literal["spothedge", "adaptive_hedge"] = "spothedge"
    # Our extension, read by adaptive_hedge: the availability in percent (99.5) to keep by
    # serving from on-demand while recent outage is above what it allows
    # (policies/outage_budget.py). Unset: no target, cost first.
    availability_target: float | None = Field(None, gt=0, lt=100)

    @field_validator("spot_placer", "spot_policy", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("target_qps_per_replica")
    @classmethod
    def _accelerator_names(cls, value: Any) -> Any:
        """`A100:1` keys mean `A100`, as SkyPilot's matching by base name does."""
        if not isinstance(value, dict):
            return value
        if not value:
            raise SpecProblem(
                "target_qps_per_replica is an empty mapping",
                "give one number, or '{A100: 10, L4: 4}': requests/s per replica by accelerator",
            )
        out: dict[str, float] = {}
        for key, qps in value.items():
            name = str(key).partition(":")[0].strip()
            if not name or name.upper() in {k.upper() for k in out}:
                raise SpecProblem(f"accelerator {key!r} is empty or named twice", "")
            out[name] = qps
        return out

    @model_validator(mode="after")
    def _target_needs_adaptive_hedge(self) -> ReplicaPolicy:
        if self.availability_target is None:
            return self
        if self.spot_policy != "adaptive_hedge":
            raise SpecProblem(
                "availability_target is read by spot_policy: adaptive_hedge only",
                "add spot_policy: adaptive_hedge, or remove availability_target",
                "availability_target",
            )
        if not self.dynamic_ondemand_fallback:
            raise SpecProblem(
                "availability_target needs dynamic_ondemand_fallback: true (on-demand must "
                "cover while spot replicas come back after on-demand-only stretches)",
                "add dynamic_ondemand_fallback: true",
                "availability_target",
            )
        return self

    @model_validator(mode="after")
    def _bounds(self) -> ReplicaPolicy:
        if self.max_replicas is None:
            object.__setattr__(self, "max_replicas", self.min_replicas)
        assert self.max_replicas is not None
        if self.min_replicas > self.max_replicas:
            raise SpecProblem(
                f"min_replicas ({self.min_replicas}) is greater than "
                f"max_replicas ({self.max_replicas})",
                "make max_replicas at least min_replicas",
                "max_replicas",
            )
        targets = (self.target_qps_per_replica, self.target_concurrency_per_replica)
        if self.max_replicas != self.min_replicas and targets == (None, None):
            raise SpecProblem(
                "autoscaling between min_replicas and max_replicas needs target_qps_per_replica",
                "add target_qps_per_replica (or target_concurrency_per_replica), or set "
                "max_replicas equal to min_replicas",
                "target_qps_per_replica",
            )
        if self.num_overprovision is None:
            # SkyPilot keeps one extra spot replica when the dynamic_fallback placer is on.
            default = 1 if self.spot_placer == "dynamic_fallback" else 0
            object.__setattr__(self, "num_overprovision", default)
        return self

    @property
    def autoscaling(self) -> bool:
        targets = (self.target_qps_per_replica, self.target_concurrency_per_replica)
        return targets != (None, None) and self.max_replicas != self.min_replicas

    @property
    def qps_per_accelerator(self) -> dict[str, float] | None:
        """The per-accelerator target, or None when the target is one number (or unset)."""
        target = self.target_qps_per_replica
        return dict(target) if isinstance(target, dict) else None

    @property
    def uses_spot_options(self) -> bool:
        return bool(
            self.base_ondemand_fallback_replicas
            or self.dynamic_ondemand_fallback
            or self.spot_placer
            or self.num_overprovision
            or self.spot_policy != "spothedge"
            or self.availability_target is not None
        )


BUCKET_SCHEMES = ("s3://", "gs://", "https://", "http://")


class MountSource(Strict):
    """A `file_mounts` entry written as a mapping: SkyPilot's `{source: URL, mode: ...}`.
    Every mode is a copy made at boot here (COPY); MOUNT and MOUNT_CACHED are accepted so
    SkyPilot YAMLs load, with a warning. Creating buckets (`name:`, `store:`) is not done."""

    source: str
    mode: Literal["COPY", "MOUNT", "MOUNT_CACHED"] = "COPY"

    @field_validator("mode", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("source")
    @classmethod
    def _is_bucket_url(cls, source: str) -> str:
        if not source.startswith(BUCKET_SCHEMES):
            raise SpecProblem(
                f"source {source!r} is not a bucket URL",
                "write s3://, gs://, https:// (Azure Blob URLs too), or give a local path "
                "directly: '/remote/path: ./local/path'",
            )
        return source


class TLS(Strict):
    keyfile: str
    certfile: str


class ServiceSection(Strict):
    # SkyPilot's `sky serve up` accepts a service without a probe and probes `/` with the
    # usual defaults; so do we.
    readiness_probe: ReadinessProbe = Field(default_factory=lambda: ReadinessProbe(path="/"))
    replicas: int | None = Field(None, ge=0, le=MAX_REPLICAS)
    replica_policy: ReplicaPolicy | None = None
    # session_affinity is our extension of SkyPilot's format (load_balancer/affinity.py).
    load_balancing_policy: Literal[
        "least_load", "round_robin", "instance_aware_least_load", "session_affinity"
    ] = "least_load"
    ports: int | None = Field(None, ge=1, le=65535)
    tls: TLS | None = None
    # Our extension of SkyPilot's format: a streamed OpenAI-compatible answer cut off by a
    # dying replica continues on another (load_balancer/, README "Preemptions").
    resume_streams: bool = False
    # Our extension: the request header whose value keeps a session on one replica under
    # load_balancing_policy: session_affinity.
    session_header: str = "X-Session-Id"

    @field_validator("readiness_probe", mode="before")
    @classmethod
    def _probe_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("load_balancing_policy", mode="before")
    @classmethod
    def _lb_lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("session_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not HEADER_NAME.match(value):
            raise SpecProblem(
                f"{value!r} is not a header name",
                "use letters, digits and '-', e.g. X-Session-Id",
            )
        return value

    @model_validator(mode="after")
    def _one_replica_count(self) -> ServiceSection:
        if self.replicas is not None and self.replica_policy is not None:
            raise SpecProblem(
                "both 'replicas' and 'replica_policy' are set",
                "keep one: 'replicas: N' is short for replica_policy.min_replicas: N",
                "replicas",
            )
        if self.replica_policy is None:
            count = 1 if self.replicas is None else self.replicas
            policy = ReplicaPolicy(min_replicas=count, max_replicas=count)
            object.__setattr__(self, "replica_policy", policy)
        object.__setattr__(self, "replicas", None)
        return self

    @property
    def policy(self) -> ReplicaPolicy:
        assert self.replica_policy is not None
        return self.replica_policy


class Place(Strict):
    """One candidate in `resources.any_of` / `resources.ordered`."""

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    infra: str | None = None
    accelerators: Accelerators | None = None
    instance_type: str | None = None
    use_spot: bool | None = None
    cpus: Scalar | None = None
    memory: Scalar | None = None

    @model_validator(mode="after")
    def _normalise_place(self) -> Place:
        _normalise_location(self)
        return self


class Resources(Strict):
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    infra: str | None = None
    accelerators: Accelerators | None = None
    accelerator_args: dict[str, Any] | None = None
    instance_type: str | None = None
    cpus: Scalar | None = None
    memory: Scalar | None = None
    disk_size: int | None = Field(None, gt=0)
    disk_tier: str | None = None
    image_id: str | dict[str, str] | None = None
    use_spot: bool = False
    job_recovery: str | dict[str, Any] | None = None
    ports: int | str | list[int | str] | None = None
    labels: dict[str, str] | None = None
    any_of: list[Place] | None = None
    ordered: list[Place] | None = None
    network_tier: str | None = None
    autostop: Any = None

    @property
    def port_numbers(self) -> list[int]:
        """`ports` after validation, which turns every accepted form into a list of ints."""
        return [int(p) for p in self.ports] if isinstance(self.ports, list) else []

    @model_validator(mode="after")
    def _normalise_resources(self) -> Resources:
        _normalise_location(self)
        if self.any_of is not None and self.ordered is not None:
            raise SpecProblem(
                "both 'any_of' and 'ordered' are set",
                "use any_of (cheapest first) or ordered (your order), not both",
                "ordered",
            )
        object.__setattr__(self, "ports", port_list(self.ports))
        return self


def _normalise_location(obj: Place | Resources) -> None:
    if obj.infra:
        parts = obj.infra.strip("/").split("/")
        for key, value in zip(("cloud", "region", "zone"), parts, strict=False):
            if getattr(obj, key) is None and value and value != "*":
                object.__setattr__(obj, key, value)
        object.__setattr__(obj, "infra", None)
    if obj.cloud is not None:
        cloud = CLOUD_ALIASES.get(obj.cloud.lower(), obj.cloud.lower())
        if cloud not in CLOUDS:
            from controller.spec.errors import suggest

            raise SpecProblem(f"unknown cloud {obj.cloud!r}", suggest(cloud, CLOUDS), "cloud")
        object.__setattr__(obj, "cloud", cloud)
    if obj.accelerators is not None:
        object.__setattr__(obj, "accelerators", parse_accelerators(obj.accelerators))
    for field in ("cpus", "memory"):
        check_amount(field, getattr(obj, field))
