"""The whole service YAML: the `service:` section plus the task it serves.

`ServiceSpec` is what the controller stores per version (as its normalised JSON) and what
the replica manager reads: the port to probe, the resources to ask clouds for, and the
placement knobs the policy needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from controller.spec.capacity import check_per_accelerator_target
from controller.spec.models import (
    BUCKET_SCHEMES,
    ENV_NAME,
    SERVICE_NAME,
    MountSource,
    Place,
    Resources,
    ServiceSection,
    SpecProblem,
    Strict,
)
from controller.spec.resource_values import accelerator_counts
from policies.types import PlacementConfig
from provisioners.base import Accelerator, BucketMount, LocationFilter, ResourceRequest

SECRET_MARKERS = ("_TOKEN", "_KEY", "_SECRET", "PASSWORD")


class ServiceSpec(Strict):
    name: str | None = None
    workdir: str | None = None
    num_nodes: int = 1
    resources: Resources = Field(default_factory=Resources)
    envs: dict[str, str | None] = Field(default_factory=dict)
    secrets: dict[str, str | None] = Field(default_factory=dict)
    file_mounts: dict[str, str | MountSource] | None = None
    setup: str | None = None
    run: str
    service: ServiceSection
    config: dict[str, Any] | None = None

    @field_validator("envs", "secrets", mode="before")
    @classmethod
    def _env_values_are_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key in value:
            if not isinstance(key, str) or not ENV_NAME.match(key):
                raise SpecProblem(
                    f"{key!r} is not a valid environment variable name",
                    "use letters, digits and '_', not starting with a digit",
                )
        return {k: v if v is None or isinstance(v, str) else _text(v) for k, v in value.items()}

    @field_validator("file_mounts", mode="before")
    @classmethod
    def _mount_targets(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for target, source in value.items():
            if not isinstance(target, str) or not target.startswith(("/", "~/")):
                raise SpecProblem(
                    f"mount target {target!r} is not an absolute path",
                    "write the path on the replica, e.g. '/data/model' or '~/data'",
                )
            if isinstance(source, dict) and ("name" in source or "store" in source):
                raise SpecProblem(
                    f"{target}: creating a bucket from file_mounts is not supported",
                    "create the bucket yourself and write '{source: s3://bucket/path}'",
                )
        return value

    @field_validator("name")
    @classmethod
    def _name_is_dns_like(cls, name: str | None) -> str | None:
        if name is not None:
            check_service_name(name)
        return name

    @model_validator(mode="after")
    def _serviceable(self) -> ServiceSpec:
        if self.num_nodes != 1:
            raise SpecProblem(
                "a service replica runs on one node", "remove num_nodes or set it to 1", "num_nodes"
            )
        self._check_ports()
        policy = self.service.policy
        if policy.uses_spot_options and not self.any_spot:
            raise SpecProblem(
                "spot options (base_ondemand_fallback_replicas, dynamic_ondemand_fallback, "
                "spot_placer, num_overprovision, spot_policy, availability_target) need spot "
                "replicas",
                "set resources.use_spot: true",
                "resources",
            )
        check_per_accelerator_target(self.service, self.resource_requests())
        return self

    def _check_ports(self) -> None:
        ports = self.resources.port_numbers
        if self.service.ports is not None:
            return
        if not ports:
            raise SpecProblem(
                "no replica port: the load balancer would not know where to send requests",
                "add resources.ports: 8080 (the port your `run` command listens on)",
                "resources",
            )
        if len(ports) != 1:
            raise SpecProblem(
                f"resources.ports lists {len(ports)} ports; a service replica exposes one",
                "set service.ports to the one the load balancer should use",
                "resources",
            )

    @property
    def port(self) -> int:
        if self.service.ports is not None:
            return self.service.ports
        return self.resources.port_numbers[0]

    @property
    def any_spot(self) -> bool:
        places = self.resources.any_of or self.resources.ordered or []
        return self.resources.use_spot or any(p.use_spot for p in places)

    def placement_config(self) -> PlacementConfig:
        policy = self.service.policy
        return PlacementConfig(
            use_spot=self.any_spot,
            num_overprovision=policy.num_overprovision or 0,
            base_ondemand_fallback_replicas=policy.base_ondemand_fallback_replicas,
            dynamic_ondemand_fallback=policy.dynamic_ondemand_fallback,
            dynamic_placement=policy.spot_placer == "dynamic_fallback",
            availability_target=(
                None if policy.availability_target is None else policy.availability_target / 100
            ),
        )

    def resource_requests(self) -> list[ResourceRequest]:
        """One request per `any_of`/`ordered` candidate (or one for plain resources)."""
        res = self.resources
        candidates = res.any_of or res.ordered or [Place()]
        return [self._request_for(place, ordered=res.ordered is not None) for place in candidates]

    def _request_for(self, place: Place, *, ordered: bool) -> ResourceRequest:
        res = self.resources
        accels = accelerator_counts(place.accelerators) or accelerator_counts(res.accelerators)
        image = res.image_id if isinstance(res.image_id, str) else None
        return ResourceRequest(
            accelerators=tuple(Accelerator(n, c) for n, c in accels.items()),
            instance_type=place.instance_type or res.instance_type,
            cpus=_opt_text(place.cpus if place.cpus is not None else res.cpus),
            memory=_opt_text(place.memory if place.memory is not None else res.memory),
            disk_size=res.disk_size,
            image_id=image,
            use_spot=res.use_spot if place.use_spot is None else place.use_spot,
            places=(
                LocationFilter(
                    cloud=place.cloud or res.cloud,
                    region=place.region or res.region,
                    zone=place.zone or res.zone,
                ),
            ),
            ordered=ordered,
        )

    def replica_envs(self) -> dict[str, str]:
        """The user's envs (a null one is refused before a service is created)."""
        return {k: v for k, v in self.envs.items() if v is not None}

    def replica_secrets(self) -> dict[str, str]:
        """The user's secrets (a null one is refused before a service is created)."""
        return {k: v for k, v in self.secrets.items() if v is not None}

    def missing_values(self) -> list[str]:
        """`envs.KEY` / `secrets.KEY` declared null: SkyPilot's way of saying the value comes
        from `--env KEY` / `--secret KEY` at `serve up`. A service cannot start without them."""
        return [f"envs.{k}" for k, v in self.envs.items() if v is None] + [
            f"secrets.{k}" for k, v in self.secrets.items() if v is None
        ]

    def with_values(self, envs: dict[str, str], secrets: dict[str, str]) -> ServiceSpec:
        """The spec with `--env`/`--secret` values from the command line (they win)."""
        return self.model_copy(
            update={"envs": {**self.envs, **envs}, "secrets": {**self.secrets, **secrets}}
        )

    def local_mounts(self) -> dict[str, str]:
        """`file_mounts` entries copied from the operator's machine: target -> local path."""
        return {
            t: s
            for t, s in (self.file_mounts or {}).items()
            if isinstance(s, str) and not s.startswith(BUCKET_SCHEMES)
        }

    def bucket_mounts(self) -> tuple[BucketMount, ...]:
        """`file_mounts` entries copied from object storage on the replica at boot."""
        out = []
        for target, source in (self.file_mounts or {}).items():
            url = source.source if isinstance(source, MountSource) else source
            if url.startswith(BUCKET_SCHEMES):
                out.append(BucketMount(target=target, source=url))
        return tuple(out)

    def mount_warnings(self) -> list[str]:
        return [
            f"file_mounts.{t}: mode {s.mode} is a copy made at boot here (COPY)"
            for t, s in (self.file_mounts or {}).items()
            if isinstance(s, MountSource) and s.mode != "COPY"
        ]

    def secret_names(self) -> set[str]:
        named = {k for k in self.envs if is_secret_name(k)}
        return named | set(self.secrets)

    def redacted(self) -> dict[str, Any]:
        """The normalised spec as JSON, with secret values replaced."""
        data = self.model_dump(mode="json")
        headers = data["service"]["readiness_probe"].get("headers") or {}
        for key in headers:
            if is_secret_name(key) or key.lower() in ("authorization", "cookie", "x-api-key"):
                headers[key] = "<redacted>"
        for section in ("envs", "secrets"):
            for key in data.get(section) or {}:
                if section == "secrets" or is_secret_name(key):
                    data[section][key] = "<redacted>"
        return data


def is_secret_name(key: str) -> bool:
    upper = key.upper()
    return any(upper.endswith(m) or (m == "PASSWORD" and m in upper) for m in SECRET_MARKERS)


def check_service_name(name: str) -> None:
    if not SERVICE_NAME.match(name):
        raise SpecProblem(
            f"service name {name!r} is not valid",
            "use 1-40 lowercase letters, digits and '-', starting with a letter "
            "(it becomes part of cloud resource names and labels)",
        )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _opt_text(value: Any) -> str | None:
    return None if value is None else str(value)
