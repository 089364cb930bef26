"""Read a service YAML safely and turn every problem into a `SpecError`.

Safe loading only (no Python tags); documents that are too large, too deep or full of
aliases are refused before they are built, so a hostile file cannot exhaust the controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from controller.spec.errors import SpecError, SpecIssue, suggest
from controller.spec.models import SpecProblem
from controller.spec.service import ServiceSpec

MAX_BYTES = 256 * 1024
MAX_DEPTH = 20
MAX_EXPANDED_NODES = 20_000

# Fields SkyPilot accepts that have no effect here; accepted so SkyPilot YAMLs load as-is.
IGNORED_FIELDS = {
    "resources.accelerator_args": "accelerator arguments are TPU-specific",
    "resources.disk_tier": "disk tiers are not chosen by this controller",
    "resources.job_recovery": "replica recovery is the controller's job",
    "resources.labels": "instances carry the controller's own ownership tags",
    "resources.network_tier": "network tiers are not chosen by this controller",
    "resources.autostop": "service replicas are never auto-stopped",
    "config": "per-task config overrides are not supported",
}


def load_spec_file(path: str | Path) -> ServiceSpec:
    return load_spec_text(read_spec_file(path), source=str(path))


def read_spec_file(path: str | Path) -> str:
    """The file's text, refusing what is not a regular file, too large, or not UTF-8 (the
    one text a YAML loader, the controller and the replica see the same way)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError([SpecIssue("", f"no such file: {p}", "check the path")], str(p))
    if p.stat().st_size > MAX_BYTES:
        raise SpecError([_too_big(p.stat().st_size)], str(p))
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte {raw[exc.start]:#04x} at offset {exc.start}"
        issue = SpecIssue("", f"not UTF-8 text ({where})", "save it as UTF-8")
        raise SpecError([issue], str(p)) from None


def load_spec_text(text: str, source: str = "") -> ServiceSpec:
    return validate_spec(parse_yaml(text, source), source)


def parse_yaml(text: str, source: str = "") -> dict[str, Any]:
    if len(text.encode()) > MAX_BYTES:
        raise SpecError([_too_big(len(text.encode()))], source)
    try:
        _check_depth(text, source)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_shape(node, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecIssue("", f"not valid YAML: {where}{problem}")], source) from None
    if not isinstance(data, dict):
        raise SpecError(
            [SpecIssue("", "expected a mapping with a 'service:' section", "see examples/")], source
        )
    return data


def validate_spec(data: dict[str, Any], source: str = "") -> ServiceSpec:
    try:
        return ServiceSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(issues_from(exc, data), source) from None
    except SpecProblem as exc:
        raise SpecError([SpecIssue(exc.field, exc.message, exc.hint)], source) from None


def ignored_fields(data: dict[str, Any]) -> list[str]:
    """Warnings for fields that are accepted for compatibility but have no effect."""
    out = []
    for dotted, why in IGNORED_FIELDS.items():
        node: Any = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            out.append(f"{dotted} is ignored: {why}")
    return out


def issues_from(exc: ValidationError, data: dict[str, Any]) -> list[SpecIssue]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for err in exc.errors():
        path = _clean_path(err["loc"], data)
        grouped.setdefault(".".join(path), []).append({**err, "path": path})
    return [_issue(path, errs) for path, errs in grouped.items()]


def _issue(path: str, errs: list[dict[str, Any]]) -> SpecIssue:
    custom = next((e for e in errs if isinstance(e.get("ctx", {}).get("error"), SpecProblem)), None)
    if custom is not None:
        problem: SpecProblem = custom["ctx"]["error"]
        full = ".".join(p for p in (path, problem.field) if p)
        return SpecIssue(full, problem.message, problem.hint)
    first = errs[0]
    if first["type"] == "extra_forbidden":
        keys = _valid_keys(first["path"][:-1])
        return SpecIssue(path, "unknown key", suggest(str(first["path"][-1]), keys))
    if first["type"] == "missing":
        return SpecIssue(path, "is required", _required_hint(path))
    expected = sorted({_expected(e) for e in errs})
    got = first.get("input")
    shown = f", got {got!r}" if not isinstance(got, dict | list) else ""
    return SpecIssue(path, f"expected {' or '.join(expected)}{shown}")


def _expected(err: dict[str, Any]) -> str:
    kind = err["type"]
    names = {
        "int": "a whole number",
        "float": "a number",
        "bool": "true or false",
        "string": "a string",
        "dict": "a mapping",
        "model": "a mapping",
        "list": "a list",
        "literal": "one of " + str(err.get("ctx", {}).get("expected", "")),
    }
    for prefix, text in names.items():
        if kind.startswith(prefix):
            return text
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return str(err["msg"]).replace("Input should be", "a value").strip()
    return str(err["msg"]).removeprefix("Value error, ")


def _required_hint(path: str) -> str:
    hints = {
        "service": "add a 'service:' section, e.g. 'service: {readiness_probe: /health}'",
        "run": "add 'run:' with the command that starts your server",
    }
    return hints.get(path, "")


def _clean_path(loc: tuple[Any, ...], data: Any) -> list[str]:
    """Keep the parts of a pydantic location that are keys in the YAML (drop union tags)."""
    out: list[str] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            out.append(str(part))
        elif isinstance(node, dict) and _is_model_key(out, str(part)):
            out.append(str(part))
            node = None
    return out


def _is_model_key(path: list[str], key: str) -> bool:
    model = _model_at(path)
    return model is not None and key in model.model_fields


def _valid_keys(path: list[str]) -> list[str]:
    model = _model_at([str(p) for p in path])
    return list(model.model_fields) if model else []


def _model_at(path: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ServiceSpec
    for key in path:
        if model is None:
            return None
        if key.isdigit():
            continue
        field = model.model_fields.get(key)
        model = _model_in(field.annotation) if field else None
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _check_depth(text: str, source: str) -> None:
    """Refuse deep nesting from the parser's flat event stream, before the composer (which
    recurses once per level and would hit Python's recursion limit) builds anything."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(source)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep(source: str) -> SpecError:
    return SpecError(
        [SpecIssue("", f"nested deeper than {MAX_DEPTH} levels", "flatten the document")], source
    )


def _check_shape(node: yaml.Node | None, source: str) -> None:
    """Refuse deep nesting, and alias bombs: count nodes as they would be once expanded."""
    sizes: dict[int, int] = {}

    def expanded(current: yaml.Node, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _too_deep(source)
        if id(current) in sizes:
            return sizes[id(current)]
        children: list[yaml.Node] = []
        if isinstance(current, yaml.MappingNode):
            children = [n for pair in current.value for n in pair]
        elif isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        total = 1 + sum(expanded(child, depth + 1) for child in children)
        if total > MAX_EXPANDED_NODES:
            raise SpecError(
                [
                    SpecIssue(
                        "",
                        f"the YAML expands to over {MAX_EXPANDED_NODES} values "
                        "(aliases repeated too often)",
                        "write the values out once",
                    )
                ],
                source,
            )
        sizes[id(current)] = total
        return total

    if node is not None:
        expanded(node, 1)


def _too_big(size: int) -> SpecIssue:
    return SpecIssue("", f"the YAML is {size} bytes; the limit is {MAX_BYTES}", "trim it")
