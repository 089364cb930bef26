"""SkyPilot's resource values as the YAML writes them (accelerators, cpus/memory amounts,
ports), checked and normalised for the models in `controller.spec.models`."""

from __future__ import annotations

import re

from controller.spec.errors import SpecProblem

Accelerators = str | list[str] | dict[str, int | None]
Scalar = str | int | float

AMOUNT = re.compile(r"^\d+(\.\d+)?\+?$")


def check_amount(field: str, value: Scalar | None) -> None:
    """SkyPilot's `cpus`/`memory` syntax as the catalog reads it: '8' exactly, '8+' at
    least (memory in GiB)."""
    if value is None:
        return
    text = str(value).strip()
    if not isinstance(value, bool) and AMOUNT.match(text) and float(text.rstrip("+")) > 0:
        return
    unit = " GiB" if field == "memory" else ""
    raise SpecProblem(
        f"{field} {value!r} is not a positive number, optionally followed by '+'",
        f"write e.g. 8 (exactly 8{unit}) or 8+ (at least 8{unit})",
        field,
    )


def parse_accelerators(value: Accelerators) -> dict[str, int]:
    """'A100:4', ['A100:4', 'L4:8'] or {'A100': 4} -> ordered {'A100': 4, ...}."""
    items: list[tuple[str, int | None]]
    if isinstance(value, str):
        items = [_split_accelerator(value)]
    elif isinstance(value, list):
        items = [_split_accelerator(v) for v in value]
    else:
        # `{L4:8, A100:4}` in flow style parses as keys 'L4:8' with null values.
        items = [
            _split_accelerator(k) if v is None else (_split_accelerator(k)[0], v)
            for k, v in value.items()
        ]
    out: dict[str, int] = {}
    for name, count in items:
        if count is not None and count <= 0:
            raise SpecProblem(f"accelerator count for {name} must be positive", "", "accelerators")
        out[name] = int(count or 1)
    return out


def _split_accelerator(text: str) -> tuple[str, int]:
    name, _, count = text.strip().partition(":")
    if not name:
        raise SpecProblem(
            f"accelerator {text!r} has no name", "write e.g. 'A100:4'", "accelerators"
        )
    try:
        return name, int(float(count)) if count else 1
    except ValueError:
        raise SpecProblem(
            f"accelerator {text!r} has a count that is not a number",
            "write e.g. 'A100:4'",
            "accelerators",
        ) from None


def port_list(ports: int | str | list[int | str] | None) -> list[int] | None:
    if ports is None:
        return None
    raw = ports if isinstance(ports, list) else [ports]
    out: list[int] = []
    for item in raw:
        text = str(item)
        low, _, high = text.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise SpecProblem(f"port {text!r} is not a number or range", "", "ports") from None
        if not 1 <= first <= last <= 65535:
            raise SpecProblem(f"port {text!r} is out of range 1-65535", "", "ports")
        out.extend(range(first, last + 1))
    return out


def accelerator_counts(value: Accelerators | None) -> dict[str, int]:
    """Validated accelerators (always a `{name: count}` mapping after validation)."""
    return {k: int(v or 1) for k, v in value.items()} if isinstance(value, dict) else {}
