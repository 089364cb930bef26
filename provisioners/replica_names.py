"""Cloud resource names for one launch: `<service>-<replica id>-<launch token piece>`.

Invariant: the same launch (same launch token) always gets the same name, so a retried
launch finds what its first attempt created; the name is a valid DNS-1123 label (lowercase
letters, digits, hyphens, starting with a letter) of at most `max_len` characters, which
also makes it a valid EC2 security-group name and Kubernetes pod/service name.
"""

from __future__ import annotations

import re

from provisioners.base import LaunchRequest

TOKEN_PIECE = 8
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


def resource_name(request: LaunchRequest, max_len: int = 63) -> str:
    token = _NOT_NAME.sub("", request.launch_token.lower())[:TOKEN_PIECE] or "0"
    suffix = f"-{request.replica_id}-{token}"
    service = _NOT_NAME.sub("-", request.service.lower()).strip("-") or "svc"
    if not service[0].isalpha():
        service = f"s-{service}"
    return service[: max_len - len(suffix)].rstrip("-") + suffix
