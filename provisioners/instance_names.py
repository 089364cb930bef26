"""Cloud resource names for one launch: `<service>-<replica id>-<token piece>`.

Invariant: the name is a valid GCE instance name and Azure VM name (lowercase letters,
digits and hyphens, starting with a letter, at most `max_len` characters), and it is the
same for every retry of one launch (same launch token), so a repeated launch finds the
instance the first attempt created instead of creating a second one.
"""

from __future__ import annotations

import re

from provisioners.base import LaunchRequest

TOKEN_PIECE = 8
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def instance_name(request: LaunchRequest, max_len: int = 57) -> str:
    token = _NOT_NAME.sub("", request.launch_token.lower())[:TOKEN_PIECE] or "0"
    suffix = f"-{request.replica_id}-{token}"
    service = _NOT_NAME.sub("-", request.service.lower()).strip("-") or "svc"
    if not service[0].isalpha():
        service = f"s{service}"
    return service[: max_len - len(suffix)].rstrip("-") + suffix
