"""Resource flags of `serve up | update | validate` laid over a service YAML, with SkyPilot's
precedence (`sky serve up` parses them in `_parse_override_params`, then
`Task.set_resources_override` copies every resource candidate with them):

- the command line wins over the YAML, field by field; a field no flag names keeps the
  YAML's value (`--cloud aws` keeps the YAML's region, and a region of another cloud is then
  refused where any would be);
- a flag applies to every candidate: the top-level `resources` and each `any_of` /
  `ordered` entry get the flag's value (written into each, so `serve validate --json`
  shows every candidate as it will be launched);
- `none` removes the field (the default applies), and so does `*` for a location;
- `--infra CLOUD[/REGION[/ZONE]]` sets the three together, clearing a part it leaves out or
  gives as `*`; combining it with `--cloud`, `--region` or `--zone` is refused.

The overridden mapping goes through the same validation as a YAML; a problem the flags
brought in names the flag that set the field (or every flag, when the field is not one of
theirs). Pure: mappings in, a new mapping out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.spec.errors import SpecError, SpecIssue
from controller.spec.loader import validate_spec
from controller.spec.service import ServiceSpec

LOCATION = ("cloud", "region", "zone")
CANDIDATE_LISTS = ("any_of", "ordered")


@dataclass(frozen=True)
class Override:
    """One field of every resource candidate, set (or removed, when `value` is None)."""

    field: str
    value: Any
    flag: str
    """The flag as given, e.g. `--gpus A100:4`, for messages."""


@dataclass(frozen=True)
class ResourceFlags:
    """What the resource flags said; None is a flag not given."""

    infra: str | None = None
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    gpus: str | None = None
    cpus: str | None = None
    memory: str | None = None
    use_spot: bool | None = None

    def overrides(self) -> list[Override]:
        """The fields to set, in SkyPilot's reading of each flag's value."""
        located = [f for f in LOCATION if getattr(self, f) is not None]
        if self.infra is not None and located:
            flags = ", ".join(f"--{f}" for f in located)
            raise SpecError(
                [
                    SpecIssue(
                        "",
                        f"--infra cannot be combined with {flags}",
                        "give the place once: --infra CLOUD/REGION/ZONE",
                    )
                ]
            )
        out = self._infra() if self.infra is not None else []
        for name in LOCATION:
            value = getattr(self, name)
            if value is not None:
                out.append(Override(name, _unless_reset(value, "*"), f"--{name} {value}"))
        for name, field in (("gpus", "accelerators"), ("cpus", "cpus"), ("memory", "memory")):
            value = getattr(self, name)
            if value is not None:
                out.append(Override(field, _unless_reset(value), f"--{name} {value}"))
        if self.use_spot is not None:
            flag = "--use-spot" if self.use_spot else "--no-use-spot"
            out.append(Override("use_spot", self.use_spot, flag))
        return out

    def _infra(self) -> list[Override]:
        assert self.infra is not None
        flag = f"--infra {self.infra}"
        if self.infra.strip().lower() == "none":
            return [Override(f, None, flag) for f in LOCATION]
        parts = self.infra.strip().strip("/").split("/")
        if len(parts) > len(LOCATION) or not parts[0]:
            raise SpecError(
                [
                    SpecIssue(
                        "",
                        f"--infra {self.infra!r} is not CLOUD, CLOUD/REGION or CLOUD/REGION/ZONE",
                        "e.g. --infra aws, --infra gcp/us-central1, --infra aws/*/us-east-1a",
                    )
                ]
            )
        parts += [""] * (len(LOCATION) - len(parts))
        return [
            Override(f, None if p in ("", "*") else p, flag)
            for f, p in zip(LOCATION, parts, strict=True)
        ]


def _unless_reset(value: str, *also: str) -> str | None:
    return None if value.strip().lower() == "none" or value.strip() in also else value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """The YAML mapping with `overrides` laid over every resource candidate."""
    out = copy.deepcopy(dict(data))
    if not overrides:
        return out
    resources = out.get("resources")
    if not isinstance(resources, dict):
        resources = out["resources"] = {}
    _lay_over(resources, overrides)
    for key in CANDIDATE_LISTS:
        for entry in resources.get(key) or []:
            if isinstance(entry, dict):
                _lay_over(entry, overrides)
    return out


def _lay_over(candidate: dict[str, Any], overrides: Sequence[Override]) -> None:
    if any(o.field in LOCATION for o in overrides):
        _spell_out_infra(candidate)
    for o in overrides:
        if o.value is None:
            candidate.pop(o.field, None)
        else:
            candidate[o.field] = o.value


def _spell_out_infra(candidate: dict[str, Any]) -> None:
    """`infra: gcp/us-central1` as `cloud:` and `region:`, so one flag can replace one part.
    A key the candidate sets itself wins over its `infra`, as in the YAML models."""
    infra = candidate.pop("infra", None)
    if not isinstance(infra, str):
        return
    for field, part in zip(LOCATION, infra.strip("/").split("/"), strict=False):
        if candidate.get(field) is None and part and part != "*":
            candidate[field] = part


def validate_with_flags(
    data: Mapping[str, Any], flags: ResourceFlags, source: str = ""
) -> tuple[dict[str, Any], ServiceSpec]:
    """The overridden mapping and its spec. The YAML is checked on its own first, so its own
    problems name the YAML; what is wrong only with the flags names the flags."""
    overrides = flags.overrides()
    spec = validate_spec(dict(data), source)
    if not overrides:
        return dict(data), spec
    merged = apply_overrides(data, overrides)
    try:
        return merged, validate_spec(merged, source)
    except SpecError as exc:
        once: dict[tuple[str, str], SpecIssue] = {}  # not once per candidate it reached
        for issue in exc.issues:
            blamed = _blame(issue, overrides)
            once.setdefault((blamed.message, blamed.hint), blamed)
        raise SpecError(list(once.values()), source) from None


def _blame(issue: SpecIssue, overrides: Sequence[Override]) -> SpecIssue:
    field = issue.path.rsplit(".", 1)[-1]
    named = [o.flag for o in overrides if o.field == field] or [o.flag for o in overrides]
    flags = " ".join(dict.fromkeys(named))
    return SpecIssue(issue.path, f"{issue.message}, set by {flags}", issue.hint)
