"""Spec errors that name the YAML path, what was expected, and what to do."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecIssue:
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


class SpecError(ValueError):
    """A service YAML that cannot be served. `issues` lists every problem found."""

    def __init__(self, issues: Sequence[SpecIssue], source: str = ""):
        self.issues = list(issues)
        self.source = source
        super().__init__(self.summary())

    def summary(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        if len(self.issues) == 1:
            return f"{prefix}{self.issues[0]}"
        lines = [f"{prefix}{len(self.issues)} problems in the service YAML:"]
        lines += [f"  - {issue}" for issue in self.issues]
        return "\n".join(lines)

    def as_json(self) -> list[dict[str, str]]:
        return [{"path": i.path, "message": i.message, "hint": i.hint} for i in self.issues]


def suggest(word: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for the closest valid key, or a list of valid keys."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid keys here: " + ", ".join(options)


class SpecProblem(ValueError):
    """A rule across fields was broken; `field` is the offending key under the model."""

    def __init__(self, message: str, hint: str = "", field: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
