"""Server-sent events: split a byte stream into whole events without buffering the answer."""

from __future__ import annotations


class EventSplitter:
    """Accumulates bytes and yields complete SSE events (each without its blank-line terminator)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buf = self._buf + chunk if self._buf else chunk
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 2 :]
        return [e for e in buf[:end].split(b"\n\n") if e]

    def rest(self) -> bytes:
        """Whatever is left without a terminator when the stream ends."""
        rest, self._buf = self._buf, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The payload of an event's ``data:`` line(s), or None if it has none."""
    if event.startswith(b"data:") and b"\ndata:" not in event and b"\n" not in event:
        return event[5:].lstrip(b" ")
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def event_name(event: bytes) -> bytes | None:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return None
