"""The matrix's columns: one fault each, as a user adds it to a request (`X-Mock-Fault`, `?fault=`).

A column is one line in COLUMNS. A fault the server does not know yet (it answers 400
`invalid_override`) is shown as pending and filled in by the next run once the server knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLY = "You said: hello there 你好"
"""The whole reply every cell asks for: five chunks, a word each, the last of them multi-byte
(`split@4` cuts a character in half)."""
CHUNK_MS = 500
"""The pause between chunks: a client has read and shown each chunk before the next write, so what a
fault cuts off does not depend on how fast it reads. (Chromium drops what it has not yet handed to the
page when the connection fails, Node takes a reset that arrives with the last data for the peer's
close, and axios reports download progress at most three times a second.)"""
TIMEOUT_S = 5.0
"""Every client's timeout, where it has one: longer than any stall a column expects it to outlast."""
SHORT_TIMEOUT_S = 2.0
"""The timeout of the endless-stall column: the stall outlasts it, so the client must give up."""
GRACE_S = 5.0
"""How long past its timeout a client may take before it counts as hung; also how long the
reconnecting clients (EventSource) are watched: time for a few of their reconnects."""


@dataclass(frozen=True, slots=True)
class Column:
    fault: str
    """The fault text, as sent."""
    title: str = ""
    """The header, when it should say more than the fault text."""
    timeout_s: float = TIMEOUT_S
    alone: bool = False
    """Played by the browser in a context of its own, with no connection open: Chromium resends a
    request by itself when a kept-alive connection fails before the response head, once per such
    connection, so what the page's other cells left open would change the count of attempts
    (browser_clients._primed: why a cell with a CORS preflight is played once beforehand)."""

    @property
    def key(self) -> str:
        return self.title or self.fault

    @property
    def deadline_s(self) -> float:
        """When the harness stops waiting for the client to end by itself."""
        return self.timeout_s + GRACE_S


COLUMNS: tuple[Column, ...] = (
    Column("drop@3"),
    Column("reset@3"),
    Column("close@2"),
    Column("error@2"),
    Column("stall@2:1500"),
    Column("stall@2", title=f"stall@2 ({SHORT_TIMEOUT_S:g} s timeout)", timeout_s=SHORT_TIMEOUT_S),
    Column("malformed@1"),
    Column("split@4:4"),
    Column("duplicate@2"),
    Column("unknown_event@2"),
    Column("no_done"),
    Column("status:429"),
    Column("status:429!times=1"),
    Column("status:500"),
    Column("status:401"),
    Column("reset@head", alone=True),
    Column("drop@head", alone=True),
)
