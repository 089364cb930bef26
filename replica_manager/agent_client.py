"""The controller's side of a replica agent's TLS port (docs/cloud-replicas.md, "The agent").

Trust. The agent's certificate is self-signed, so TLS alone proves nothing. `hello()` sends
a fresh nonce, without the token, and checks the answer against the certificate the same
connection presented: HMAC-SHA256(token, nonce || SHA-256(certificate DER)) can only come
from a holder of the token that also holds that certificate's key. The fingerprint it
returns is pinned: the caller keeps it (in the replica's row) and passes it back as
`pinned_sha256`, and every request that carries the token is sent only after the peer has
shown that certificate. An unpinned client refuses such requests, so neither the token nor
the envs and secrets of `send_job` can reach an impostor.

Errors (all `AgentError`; what to do next is the type):

    AgentError
    ├── AgentUnreachable   no connection, a timeout, a reset or a failed TLS handshake:
    │                      ask again on a later tick
    ├── AgentUntrusted     the certificate is not the pinned one, or the hello proof is
    │                      wrong: send it nothing; the replica is not ours to trust
    └── AgentRefused       the agent answered an error status (`status`): 401 our token is
                           not its token, 409 it already has a job, 400 a malformed request

Constructors do no I/O; every call opens one connection and closes it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import http.client
import json
import secrets
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from provisioners.base import PreemptionNotice

NONCE_BYTES = 32
MAX_REPLY_BYTES = 8 << 20


class AgentError(Exception):
    """Any failure talking to an agent; the message names the agent and what happened."""


class AgentUnreachable(AgentError):
    pass


class AgentUntrusted(AgentError):
    pass


class AgentRefused(AgentError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AgentPhase(enum.StrEnum):
    BOOTING = "booting"
    WAITING_FOR_JOB = "waiting_for_job"
    MOUNTING = "mounting"
    SETUP = "setup"
    RUNNING = "running"
    EXITED = "exited"
    FAILED = "failed"


@dataclass(frozen=True)
class AgentStatus:
    phase: AgentPhase
    detail: str
    exit_code: int | None
    since: float
    """When the agent entered the phase (its clock, seconds since the epoch)."""
    notice: PreemptionNotice | None = None
    """The cloud's preemption notice, once the agent has seen one."""


def _notice(raw: dict[str, Any]) -> PreemptionNotice:
    seen = float(raw.get("seen_at") or 0.0)
    detail = json.dumps(raw.get("detail"))[:200]
    return PreemptionNotice(float(raw.get("deadline") or seen), f"{raw['cloud']}: {detail}", seen)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class AgentClient:
    """One replica's agent at `url` (`https://host:port`)."""

    def __init__(
        self, url: str, token: str, pinned_sha256: str | None = None, timeout: float = 10.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or not parts.port:
            raise ValueError(f"an agent URL is https://host:port, not {url!r}")
        self.url = url
        self._host, self._port = parts.hostname, parts.port
        self._token = token
        self._pinned = pinned_sha256.lower() if pinned_sha256 else None
        self._timeout = timeout

    @property
    def pinned_sha256(self) -> str | None:
        return self._pinned

    def hello(self) -> str:
        """Checks the agent's proof and pins its certificate; returns the certificate's
        SHA-256 (hex) to keep and pass as `pinned_sha256` next time."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        body = {"nonce": nonce.hex()}
        reply, fingerprint = self._exchange("POST", "/v1/hello", body, with_token=False)
        proof = str(self._json(reply).get("proof", ""))
        mac = hmac.new(self._token.encode(), nonce + bytes.fromhex(fingerprint), hashlib.sha256)
        if not hmac.compare_digest(proof, mac.hexdigest()):
            raise AgentUntrusted(
                f"agent at {self.url} could not prove it holds this replica's token for the "
                f"certificate it showed ({fingerprint}): not our replica, or a man in the middle"
            )
        self._pinned = fingerprint
        return fingerprint

    def send_job(self, job: dict[str, Any]) -> None:
        """Hands the agent its job (envs and secrets included); once per agent (409 after)."""
        self._request("PUT", "/v1/job", job)

    def status(self) -> AgentStatus:
        raw = self._json(self._request("GET", "/v1/status"))
        try:
            code = raw.get("exit_code")
            notice = raw.get("notice")
            return AgentStatus(
                phase=AgentPhase(raw["phase"]),
                detail=str(raw.get("detail") or ""),
                exit_code=None if code is None else int(code),
                since=float(raw.get("since") or 0.0),
                notice=None if not notice else _notice(notice),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AgentError(f"agent at {self.url} sent a status we cannot read: {raw}") from exc

    def logs(self, offset: int, limit: int) -> tuple[bytes, int]:
        """Up to `limit` bytes of the replica log from `offset`, and the log's total size."""
        reply = self._request("GET", f"/v1/logs?offset={int(offset)}&limit={int(limit)}")
        size = reply.headers.get("x-log-size", "")
        if not size.isdigit():
            raise AgentError(f"agent at {self.url} sent logs without X-Log-Size")
        return reply.body, int(size)

    def notice(self) -> dict[str, Any] | None:
        """The cloud's preemption notice as the agent saw it, or None."""
        found = self._json(self._request("GET", "/v1/notice")).get("notice")
        return found if isinstance(found, dict) else None

    def _request(self, method: str, path: str, body: Any = None) -> _Reply:
        if self._pinned is None:
            raise AgentUntrusted(f"no certificate pinned for {self.url}: call hello() first")
        return self._exchange(method, path, body, with_token=True)[0]

    def _exchange(
        self, method: str, path: str, body: Any, *, with_token: bool
    ) -> tuple[_Reply, str]:
        """One request on a new connection; nothing is sent before the peer's certificate
        matches the pin (when there is one). Returns the reply and that certificate's
        SHA-256."""
        conn = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=_unverified_tls()
        )
        try:
            fingerprint = self._connect(conn)
            headers = {"Content-Type": "application/json"}
            if with_token:
                headers["Authorization"] = f"Bearer {self._token}"
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read(MAX_REPLY_BYTES + 1)
            reply = _Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
        except (OSError, http.client.HTTPException) as exc:
            raise AgentUnreachable(f"agent at {self.url}: {method} {path} failed: {exc}") from exc
        finally:
            conn.close()
        if len(reply.body) > MAX_REPLY_BYTES:
            raise AgentError(f"agent at {self.url} sent more than {MAX_REPLY_BYTES} bytes")
        if reply.status >= 400:
            raise self._refusal(method, path, reply)
        return reply, fingerprint

    def _connect(self, conn: http.client.HTTPSConnection) -> str:
        try:
            conn.connect()
        except ssl.SSLError as exc:
            message = f"TLS handshake with the agent at {self.url} failed: {exc}"
            raise AgentUnreachable(message) from exc
        except OSError as exc:
            raise AgentUnreachable(f"cannot connect to the agent at {self.url}: {exc}") from exc
        assert isinstance(conn.sock, ssl.SSLSocket)
        der = conn.sock.getpeercert(binary_form=True)
        fingerprint = hashlib.sha256(der or b"").hexdigest()
        if self._pinned is not None and not hmac.compare_digest(fingerprint, self._pinned):
            raise AgentUntrusted(
                f"agent at {self.url} showed certificate {fingerprint}, not the pinned "
                f"{self._pinned}: refusing to talk to it"
            )
        return fingerprint

    def _json(self, reply: _Reply) -> dict[str, Any]:
        try:
            value = json.loads(reply.body)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise AgentError(f"agent at {self.url} answered with something other than JSON")
        return value

    def _refusal(self, method: str, path: str, reply: _Reply) -> AgentError:
        try:
            reason = str(self._json(reply).get("error", ""))
        except AgentError:
            reason = reply.body[:200].decode(errors="replace")
        meanings = {401: "refused our token", 409: "will not take another job"}
        what = meanings.get(reply.status, "refused")
        return AgentRefused(
            f"agent at {self.url} {what} ({reply.status} to {method} {path}): {reason}",
            reply.status,
        )


def _unverified_tls() -> ssl.SSLContext:
    """TLS without CA checks: the agent's certificate is self-signed, and trust comes from
    the hello proof and the pin instead (see the module docstring)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
