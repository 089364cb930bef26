"""Server-sent events cut into whole events, for the streams the load balancer may resume.

Pure: no I/O. An event ends at a blank line (WHATWG HTML, "Server-sent events", 9.2.5).
Only LF and CRLF line ends are recognised, which is what OpenAI, vLLM, SGLang and TGI send;
a stream that ends its lines with a bare CR never completes an event here, so its pending
bytes outgrow the cap and the caller stops tracking it (the bytes are still forwarded).
"""

from __future__ import annotations

DONE = b"[DONE]"


class SseSplitter:
    """Holds the unfinished tail of a stream and hands out complete events."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Return the events ``data`` completes, each with its blank line; keep the rest.

        Linear in the buffer: each terminator is searched for from where the last one
        ended, and a search that found nothing is not repeated.
        """
        buffer = self._pending + data if self._pending else data
        events: list[bytes] = []
        start = 0
        lf, crlf = buffer.find(b"\n\n"), buffer.find(b"\r\n\r\n")
        while lf >= 0 or crlf >= 0:
            end = crlf + 4 if crlf >= 0 and (lf < 0 or crlf + 2 < lf) else lf + 2
            events.append(buffer[start:end])
            start = end
            if 0 <= lf < end:
                lf = buffer.find(b"\n\n", end)
            if 0 <= crlf < end:
                crlf = buffer.find(b"\r\n\r\n", end)
        self._pending = buffer[start:]
        return events

    @property
    def pending_size(self) -> int:
        return len(self._pending)

    def take_pending(self) -> bytes:
        """The unfinished tail, handed out once (the splitter forgets it)."""
        pending, self._pending = self._pending, b""
        return pending


def event_data(event: bytes) -> bytes | None:
    """The event's ``data`` field (several data lines joined by LF), or None without one."""
    if event.startswith(b"data: ") and event.find(b"\n") == len(event) - 2:
        return event[6:-2]  # the usual one-line event, ``data: ...\n\n``
    lines = [line[5:] for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)


def with_data(event: bytes, data: bytes) -> bytes:
    """``event`` with its data lines replaced by one ``data: <data>`` line (other fields kept)."""
    kept = [line for line in event.splitlines() if line and not line.startswith(b"data:")]
    return b"".join(line + b"\n" for line in kept) + b"data: " + data + b"\n\n"
