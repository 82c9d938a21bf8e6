"""The HTTP protocol the server runs on uvicorn: the limits of `limits.py`, and what ASGI alone
cannot give the app."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mock_server.http.limits import LimitedHttpProtocol
from mock_server.journal.redaction import RedactingAccessLogger
from mock_server.wire.tcp import CONNECTION_KEY, Connection

WEBSOCKET_REFUSAL = (
    "This server has no WebSocket endpoints: its model endpoints stream over HTTP, as Server-Sent Events. "
    "Send the request without `Upgrade: websocket`."
)


class HttpProtocol(LimitedHttpProtocol):
    """uvicorn's HTTP protocol with our limits, plus:
    - a WebSocket handshake refused with 403 and why, before the app (uvicorn runs with `ws="none"`,
      so that it does not load a WebSocket library for endpoints we do not have);
    - a `Connection` in every request's `scope["state"]`, through which drops and resets reach the socket,
      through which uvicorn writes (so that a stream's head goes out with its first bytes), and which
      tells the stream playing on it at once when the connection is gone;
    - a shutdown that ends the connection's stream (or its half-sent request) instead of waiting for it;
    - access log lines without secret query values, written only when the server's `access_log` says so.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's protocol logs access whenever the logger has a handler anywhere up the tree
        # (under pytest, always); the server's own `access_log` setting decides instead, and the
        # logger's level: uvicorn builds each line (the target quoted, 5 us) before the logger drops it.
        self.access_log = self.access_log and self.config.access_log and self.access_logger.isEnabledFor(logging.INFO)
        if self.access_log:  # only then does uvicorn write a line
            self.access_logger = RedactingAccessLogger(self.access_logger, None)  # type: ignore[assignment]
        self._connection: Connection | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.refused:
            self._connection = Connection(transport, self.flow)
            self.app_state = {**self.app_state, CONNECTION_KEY: self._connection}

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._connection is not None:
            self._connection.lost()

    def _should_upgrade_to_ws(self) -> bool:
        return True  # uvicorn then hands every WebSocket handshake to `handle_websocket_upgrade`, not the app

    def handle_websocket_upgrade(self) -> None:
        self._refuse_request(403, "websocket_not_served", WEBSOCKET_REFUSAL, held=True)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._connection is not None and self.cycle is not None:
            # uvicorn's cycle uses its transport's write, close and is_closing: the connection has them.
            self.cycle.transport = self._connection  # type: ignore[assignment]

    def shutdown(self) -> None:
        stream = self._connection.stream if self._connection is not None else None
        if stream is not None:
            stream.stop()
        elif self.cycle is not None and self.cycle.more_body and not self.cycle.response_complete:
            # A request whose body is still arriving cannot be answered in time; ending its connection
            # ends it at once (as a client leaving mid-body) instead of after the whole grace time.
            self.transport.close()
            return
        super().shutdown()
