"""`--env` and `--secret` as `sky serve up` takes them, and the check that nothing is left
without a value before anything is created."""

from __future__ import annotations

import os
from collections.abc import Mapping

from controller.cli.errors import fail
from controller.spec import ServiceSpec
from controller.spec.models import ENV_NAME


def parse_values(
    items: list[str], flag: str, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`KEY=VALUE`, or `KEY` alone for the value of KEY in this shell's environment."""
    env = os.environ if env is None else env
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not ENV_NAME.match(key):
            raise fail(f"{flag} {item!r}: {key!r} is not a variable name; write {flag} KEY=VALUE")
        if not sep:
            if key not in env:
                raise fail(
                    f"{flag} {key}: {key} is not set in your environment; export it or write "
                    f"{flag} {key}=VALUE"
                )
            value = env[key]
        out[key] = value
    return out


def apply_values(
    data: dict[str, object], spec: ServiceSpec, envs: dict[str, str], secrets: dict[str, str]
) -> tuple[dict[str, object], ServiceSpec]:
    """The YAML and spec with command-line values (they win), refusing a value still null."""
    spec = spec.with_values(envs, secrets)
    missing = spec.missing_values()
    if missing:
        flags = ", ".join(f"--{m.split('.')[0].rstrip('s')} {m.split('.', 1)[1]}" for m in missing)
        raise fail(
            f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no value (null in the "
            f"YAML): pass {flags} (the value then comes from your environment) or KEY=VALUE"
        )
    data = {**data}
    if envs:
        data["envs"] = {**(data.get("envs") or {}), **envs}  # type: ignore[dict-item]
    if secrets:
        data["secrets"] = {**(data.get("secrets") or {}), **secrets}  # type: ignore[dict-item]
    return data, spec
