"""The controller's bearer token: created once with mode 0600, compared in constant time."""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path


def ensure_token(path: Path) -> str:
    """Read the token, creating it (0600, never world-readable even briefly) if absent.

    Invariant: only this user can read the token or replace it. Its directory loses any
    group/world write bit (a directory made under umask 000, or by hand), since whoever can
    write there can swap the token file; an existing token file loses group/world bits.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _drop_mode_bits(path.parent, 0o022)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _drop_mode_bits(path, 0o077)
        return read_token(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32))
    return read_token(path)


def _drop_mode_bits(path: Path, bits: int) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & bits:
        return
    try:
        os.chmod(path, mode & ~bits)
    except PermissionError:
        raise RuntimeError(
            f"{path} is open to other users (mode {mode:o}) and not ours to fix; "
            f"run `chmod {mode & ~bits:o} {path}` as its owner or point SERVE_HOME elsewhere"
        ) from None


def read_token(path: Path) -> str:
    return path.read_text().strip()


def token_matches(presented: str | None, expected: str) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())
