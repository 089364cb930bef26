"""Metric names: those a PromQL expression reads, and those a /metrics page exposes."""

from __future__ import annotations

import re

# Prometheus makes `up` itself for every scrape target.
SYNTHETIC = frozenset({"up"})
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS |= frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"(?<![\w:])\d[\w.]*")  # 0.9, 1e3, and durations such as 5m
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def names_in_query(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers left once strings, label matchers,
    ranges, grouping clauses and numbers are cut out, that are neither functions nor keywords."""
    rest = _STRINGS.sub('""', expr)
    rest = _MATCHERS.sub(" ", rest)
    rest = _RANGES.sub(" ", rest)
    rest = _GROUPING.sub(" ", rest)
    rest = _NUMBERS.sub(" ", rest)
    found = set()
    for match in _NAME.finditer(rest):
        name = match.group()
        followed_by_call = rest[match.end() :].lstrip().startswith("(")
        if not followed_by_call and name.lower() not in _KEYWORDS:
            found.add(name)
    return found


def exposed_names(text: str) -> set[str]:
    """Sample names of a text exposition, with every series a declared family may carry
    (a histogram's _bucket/_sum/_count, a counter's _total) even when it has no sample yet."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names |= _family_series(name, kind)
        elif line and not line.startswith("#"):
            names.add(_NAME.match(line).group())  # type: ignore[union-attr]
    return names


def _family_series(name: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count"}
    if kind == "counter" and not name.endswith("_total"):
        return {f"{name}_total", f"{name}_created"}
    return {name}
