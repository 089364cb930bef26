"""Which files of a packed directory stay home, as SkyPilot decides it.

SkyPilot's rule (its docs, "Exclude uploading files"): a `.skyignore` at the top of the
directory, if present, is the only list used; otherwise the directory's `.gitignore` files
(each applying below its own folder, later and deeper patterns winning, `!` re-including)
and `.git/info/exclude`. Patterns are git's (gitwildmatch), read with `pathspec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec


@dataclass(frozen=True)
class _Scope:
    """One ignore file's patterns, applying to paths below `base`."""

    base: Path
    spec: GitIgnoreSpec


@dataclass
class IgnoreRules:
    root: Path
    scopes: list[_Scope] = field(default_factory=list)

    @classmethod
    def for_root(cls, root: Path) -> IgnoreRules:
        rules = cls(root)
        skyignore = root / ".skyignore"
        if skyignore.is_file():
            rules._add(root, skyignore)
            return rules
        exclude = root / ".git" / "info" / "exclude"
        if exclude.is_file():
            rules._add(root, exclude)
        for gitignore in sorted(root.rglob(".gitignore")):
            if ".git" not in gitignore.relative_to(root).parts:
                rules._add(gitignore.parent, gitignore)
        return rules

    def ignored(self, path: Path, *, is_dir: bool) -> bool:
        """Whether `path` (under the root) is left out; the deepest deciding rule wins."""
        verdict = False
        for scope in self.scopes:
            if scope.base != path and scope.base not in path.parents:
                continue
            rel = path.relative_to(scope.base).as_posix() + ("/" if is_dir else "")
            result = scope.spec.check_file(rel)
            if result.include is not None:
                verdict = result.include
        return verdict

    def _add(self, base: Path, source: Path) -> None:
        lines = source.read_text(errors="replace").splitlines()
        self.scopes.append(_Scope(base, GitIgnoreSpec.from_lines(lines)))
