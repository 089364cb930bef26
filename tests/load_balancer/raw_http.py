"""A raw-socket HTTP/1.1 client for tests that need exact bytes on the wire.

Pipelining, partial heads and interim (1xx) answers are invisible through httpx, so these
tests write bytes to a socket and parse what comes back here, independently of httptools and
of the load balancer's own code. Every read waits at most ``timeout`` seconds and fails the
test with what it was waiting for, so a missing answer is a failure, never a hang.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One client connection to ``127.0.0.1:port`` with a read buffer."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self._buffer = b""
        self._eof = False

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_until_refused(self, parts: Iterable[bytes]) -> int:
        """Send each part until the peer stops reading; return the bytes accepted."""
        sent = 0
        for part in parts:
            try:
                self.sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(part)
        return sent

    def wait_for(self, marker: bytes) -> None:
        """Block until ``marker`` has arrived; it stays in the buffer for the next read."""
        while marker not in self._buffer:
            self._receive(f"{marker!r}")

    def read_response(self) -> RawResponse:
        """Read one response (interim ones included) framed as RFC 9112 section 6 says."""
        head = self._take_through(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head.split("\r\n")[:-2]
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status < 200 or status in (204, 304):
            return RawResponse(status, headers, b"")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return RawResponse(status, headers, self._read_chunked())
        if "content-length" in headers:
            return RawResponse(status, headers, self._take(int(headers["content-length"])))
        return RawResponse(status, headers, self.read_until_closed())

    def read_until_closed(self) -> bytes:
        """Everything until the peer closes (a reset after its last bytes counts as closed)."""
        while not self._eof:
            self._receive("the connection to close")
        data, self._buffer = self._buffer, b""
        return data

    def _read_chunked(self) -> bytes:
        body = []
        while size := int(self._take_through(b"\r\n").split(b";")[0], 16):
            body.append(self._take(size))
            self._take_through(b"\r\n")
        while self._take_through(b"\r\n") != b"\r\n":
            pass
        return b"".join(body)

    def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._receive(f"{size} body bytes")
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _take_through(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._receive(f"{marker!r}")
        end = self._buffer.index(marker) + len(marker)
        data, self._buffer = self._buffer[:end], self._buffer[end:]
        return data

    def _receive(self, waiting_for: str) -> None:
        if self._eof:
            raise AssertionError(f"connection closed while waiting for {waiting_for}")
        try:
            data = self.sock.recv(65536)
        except TimeoutError as exc:
            raise AssertionError(
                f"nothing within {self.timeout:g}s while waiting for {waiting_for}; "
                f"received so far: {self._buffer[:200]!r}"
            ) from exc
        except ConnectionResetError:
            data = b""
        self._eof = not data
        self._buffer += data


def rss_kib(pid: int) -> int:
    """Resident set size of a process now (``VmRSS`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc status")
