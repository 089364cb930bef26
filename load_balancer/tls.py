"""HTTPS on the listening socket, with a certificate that can be replaced while serving.

The listening ``SSLContext`` never changes (asyncio fixes it when the server is created);
its SNI callback, which OpenSSL runs on every ClientHello with or without a server name,
hands each new connection the *current* context (``SSLObject.context`` may be set there, as
the ``ssl`` module documents for virtual hosting). A reload builds a whole new context from
the files and swaps one reference, so:

- new connections get the new certificate, open ones keep the one they were made with;
- a reload that fails (a missing, half-written or mismatched file) changes nothing: the old
  certificate stays, the failure is logged and counted, and the next change is tried again.

Reloads happen on SIGHUP (the server installs the handler) and when either file's inode,
size or mtime changes (checked every ``--tls-check-seconds``). Certificate tools replace the
two files one after the other; the pair that does not match in between is such a failure.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass

from load_balancer.structured_log import log_event

FileStamp = tuple[int, int, int] | None


class TlsError(ValueError):
    """A certificate or key that cannot be served; the message names the file."""


@dataclass(frozen=True)
class TlsFiles:
    certfile: str
    keyfile: str


def load_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context for the pair, or TlsError naming the file at fault."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    for path, what in ((files.certfile, "certificate"), (files.keyfile, "key")):
        if not os.access(path, os.R_OK) or not os.path.isfile(path):
            raise TlsError(f"TLS {what} file {path} is missing or unreadable")
    try:
        # Parses the certificate file alone, so a bad one is named as such.
        ssl.create_default_context(cafile=files.certfile)
    except (OSError, ValueError) as exc:
        raise TlsError(f"TLS certificate file {files.certfile} holds no PEM certificate") from exc
    try:
        context.load_cert_chain(files.certfile, files.keyfile, password=_no_passphrase)
    except (OSError, ValueError, TypeError) as exc:
        raise TlsError(
            f"TLS key file {files.keyfile} is not an unencrypted PEM private key matching "
            f"certificate {files.certfile} ({exc})"
        ) from exc
    return context


def _no_passphrase() -> str:
    raise TypeError("the key is encrypted; the load balancer cannot ask for its passphrase")


def stamp(path: str) -> FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ServerCertificate:
    """The certificate this process presents; ``listening_context`` goes to the server.

    Invariant: ``current`` is always a context that loaded completely. Constructed without
    I/O; ``start`` loads the files (TlsError if they do not load).
    """

    def __init__(self, files: TlsFiles, check_seconds: float) -> None:
        self.files = files
        self.check_seconds = check_seconds
        self.reloads = 0
        self.reload_failures = 0
        self.current: ssl.SSLContext | None = None
        self._stamps: tuple[FileStamp, FileStamp] = (None, None)
        self._reload_requested = asyncio.Event()

    def start(self) -> ssl.SSLContext:
        """Load the pair and return the context to listen with."""
        self._stamps = self._read_stamps()
        self.current = load_context(self.files)
        listening = load_context(self.files)
        listening.sni_callback = self._hand_over
        return listening

    def _hand_over(self, conn: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if self.current is not None:
            conn.context = self.current

    def request_reload(self) -> None:
        """SIGHUP: reload even if the files look unchanged."""
        self._reload_requested.set()

    async def watch(self) -> None:
        """Reload on request, or when the files change; runs until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._reload_requested.wait(), self.check_seconds)
                reason = "signal"
            except TimeoutError:
                if self._read_stamps() == self._stamps:
                    continue
                reason = "files_changed"
            self._reload_requested.clear()
            self.reload(reason)

    def reload(self, reason: str) -> bool:
        self._stamps = self._read_stamps()
        try:
            self.current = load_context(self.files)
        except TlsError as exc:
            self.reload_failures += 1
            log_event(
                "error",
                "tls_reload_failed",
                reason=reason,
                error=str(exc),
                action="still serving the previous certificate",
            )
            return False
        self.reloads += 1
        log_event("info", "tls_reloaded", reason=reason, certfile=self.files.certfile)
        return True

    def _read_stamps(self) -> tuple[FileStamp, FileStamp]:
        return stamp(self.files.certfile), stamp(self.files.keyfile)

    def health(self) -> dict[str, object]:
        return {
            "certfile": self.files.certfile,
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
        }
