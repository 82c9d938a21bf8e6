"""AWS event-stream frames (`application/vnd.amazon.eventstream`), the binary framing of Bedrock's
streams: the one place their bytes are written.

A frame, big-endian: its total length and its headers' length (4 bytes each), the CRC32 of those 8
bytes, the headers, the payload, and the CRC32 of every byte before it. A header is its name's
length (1 byte), the name, its type (7: a string) and the value's length (2 bytes) before the value.
An event names itself in `:event-type`; an exception (an event whose name ends in `Exception`, as
every modeled exception of an AWS event stream is named) is `:message-type: exception` with its
name in `:exception-type`, which botocore raises as `EventStreamError`. A `corrupt` event's message
CRC is wrong: botocore raises `ChecksumMismatch`.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from mock_server.memo import kept_for_short_names
from mock_server.wire import frames

CONTENT_TYPE = "application/vnd.amazon.eventstream"
JSON = "application/json"
_STRING = 7
PRELUDE = struct.Struct("!II")
CRC = struct.Struct("!I")


def header(name: str, value: str) -> bytes:
    """One header whose value is a string."""
    encoded_name, encoded_value = name.encode(), value.encode()
    head = struct.pack(f"!B{len(encoded_name)}sBH", len(encoded_name), encoded_name, _STRING, len(encoded_value))
    return head + encoded_value


def frame(headers: bytes, payload: bytes, *, corrupt: bool = False) -> bytes:
    """The frame of `payload` with `headers` (encoded, `header` after `header`); with `corrupt`, its
    message CRC is off by one bit. The message CRC runs on from the prelude's, so the bytes are joined once."""
    prelude = PRELUDE.pack(PRELUDE.size + CRC.size + len(headers) + len(payload) + CRC.size, len(headers))
    prelude_crc = CRC.pack(zlib.crc32(prelude))
    checksum = zlib.crc32(payload, zlib.crc32(headers, zlib.crc32(prelude_crc, zlib.crc32(prelude))))
    return b"".join((prelude, prelude_crc, headers, payload, CRC.pack(checksum ^ (1 if corrupt else 0))))


def is_exception(name: str) -> bool:
    return name.endswith("Exception")


@kept_for_short_names(entries=64, max_chars=64)
def event_headers(name: str) -> bytes:
    """The encoded headers of an event called `name`: an exception's when the name is one's. Kept: a
    stream's frames name a few events over and over (every InvokeModelWithResponseStream frame `chunk`)."""
    if is_exception(name):
        pairs = ((":exception-type", name), (":content-type", JSON), (":message-type", "exception"))
    else:
        pairs = ((":event-type", name), (":content-type", JSON), (":message-type", "event"))
    return b"".join(header(key, value) for key, value in pairs)


@dataclass(frozen=True, slots=True)
class EventStreamFraming:
    """A frame per event, its name (`chunk` when it has none) the event's type, its data the JSON payload."""

    content_type: str = CONTENT_TYPE
    sse: bool = False

    def event(self, event: frames.Event, index: int) -> bytes:
        return frame(event_headers(event.event or "chunk"), (event.data or "").encode(), corrupt=event.corrupt)

    def close(self, events: int) -> bytes:
        return b""

    def text_at(self, data: bytes) -> int:
        """The payload's offset: after the prelude, its CRC and the headers (0 for bytes too short to be a frame)."""
        if len(data) < PRELUDE.size:
            return 0
        headers_length: int = PRELUDE.unpack_from(data)[1]
        return min(PRELUDE.size + CRC.size + headers_length, len(data))


EVENT_STREAM = EventStreamFraming()


class FrameSplitter:
    """Cuts an event-stream body arriving in pieces into whole frames, as soon as each is in (a proxy
    counts an upstream's frames as it counts SSE events)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The frames that `data` completes, in order."""
        self._buffer += data
        frames_in: list[bytes] = []
        start = 0
        while len(self._buffer) - start >= PRELUDE.size:
            total: int = PRELUDE.unpack_from(self._buffer, start)[0]
            if total < PRELUDE.size + 2 * CRC.size or len(self._buffer) - start < total:
                break  # not a frame's length (the rest goes on as it is), or the frame is still arriving
            frames_in.append(self._buffer[start : start + total])
            start += total
        self._buffer = self._buffer[start:]
        return frames_in

    def rest(self) -> bytes:
        """What arrived after the last whole frame (a body cut off mid-frame, or not frames at all)."""
        rest, self._buffer = self._buffer, b""
        return rest
