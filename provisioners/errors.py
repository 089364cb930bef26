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

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


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


HTTP_STATUS_TYPES: dict[int, type[ProvisionError]] = {
    400: InvalidRequest,
    401: CredentialsError,
    403: CredentialsError,
    404: InvalidRequest,
    409: InvalidRequest,
    412: InvalidRequest,
    422: InvalidRequest,
    429: TransientError,
}
"""What an HTTP status means when a cloud's own code is not in its adapter's table: the
same on every REST API we call (EC2 answers with codes, the others with statuses)."""


def kind_for_status(status: int) -> type[ProvisionError]:
    """A 5xx may succeed later; any other unknown refusal (or none given, 0) goes to the
    operator rather than being retried blindly."""
    if status >= 500:
        return TransientError
    return HTTP_STATUS_TYPES.get(status, InvalidRequest)


def with_hint(message: str, hint: str | None) -> str:
    """`message; hint`, the shape every adapter's errors take."""
    return f"{message}; {hint}" if hint else message


Classifier = Callable[[BaseException, str | None], ProvisionError]


@contextmanager
def mapped_errors(
    sdk_errors: tuple[type[BaseException], ...], classify: Classifier, location: str | None
) -> Iterator[None]:
    """Inside the block, an SDK exception becomes the adapter's vocabulary error (the shape
    of httpx's `map_httpcore_exceptions`): one place per adapter instead of a hand-written
    `except ...: raise classify(...)` around every call. A block that handles some SDK
    errors itself (a 404 meaning "gone") catches them inside and re-raises the rest."""
    try:
        yield
    except ProvisionError:
        raise
    except sdk_errors as exc:
        raise classify(exc, location) from exc


def mapped_methods(
    sdk_errors: tuple[type[BaseException], ...], classify: Callable[[BaseException], ProvisionError]
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator for an object's public methods: no SDK exception leaves them, each
    becomes the vocabulary error (what `mapped_errors` does for a block)."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except ProvisionError:
                raise
            except sdk_errors as exc:
                raise classify(exc) from exc

        return wrapper

    return decorate
