"""The provisioning error vocabulary.

Adapters map their SDK's exceptions onto these types at the edge (one table per cloud); no
SDK exception leaves `provisioners/`. What the replica manager does next is part of the type:

    ProvisionError
    ├── CapacityUnavailable   no capacity in that location: try the next location now
    ├── QuotaExceeded         the account's quota is used up there: try the next location now
    ├── SpotUnavailable       spot refused (price, availability): try the next location now
    ├── LaunchTimedOut        accepted but still not running after the provisioning
    │                         deadline: terminate it, try the next location now
    ├── CredentialsError      missing or rejected credentials: tell the operator, do not retry
    ├── InvalidRequest        the cloud refused the request itself: tell the operator, do not retry
    └── TransientError        throttled or a 5xx: retry the same call on a later tick
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Base of every provisioning failure.

    `try_elsewhere`: another location may succeed now. `retry_later`: the same call may
    succeed later. Neither: a person has to act.
    """

    try_elsewhere = False
    retry_later = False
    kind = "error"

    def __init__(self, message: str, *, location: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.code = code

    def __str__(self) -> str:
        where = f" in {self.location}" if self.location else ""
        code = f" [{self.code}]" if self.code else ""
        return f"{self.kind}{where}{code}: {self.message}"


class CapacityUnavailable(ProvisionError):
    try_elsewhere = True
    kind = "no capacity"


class QuotaExceeded(ProvisionError):
    try_elsewhere = True
    kind = "quota exceeded"


class SpotUnavailable(ProvisionError):
    try_elsewhere = True
    kind = "spot refused"


class LaunchTimedOut(ProvisionError):
    try_elsewhere = True
    kind = "not running in time"


class CredentialsError(ProvisionError):
    kind = "credentials"


class InvalidRequest(ProvisionError):
    kind = "invalid request"


class TransientError(ProvisionError):
    retry_later = True
    kind = "transient"
