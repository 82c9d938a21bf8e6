"""The baseline: a minimal raw ASGI app on the same uvicorn, streaming the same bytes.

It is the practical ceiling for a Python server: no framework, no scenario engine, events
pre-split, and pacing with a plain `asyncio.sleep` per chunk (so its lateness accumulates, as a
naive server's does). Run as `python -m bench.baseline --port P --frames FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


def make_app(streams: dict[str, list[bytes]]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """`streams`: by name (the path), a stream's writes: opening + first chunk, each later chunk,
    finish + end marker."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        groups = streams.get(unquote(scope["path"][1:]), [b"", b"", b""])
        query = parse_qs(scope["query_string"].decode())
        chunk_s = float(query.get("chunk_ms", ["0"])[0]) / 1000
        first_s = float(query.get("first_chunk_ms", ["0"])[0]) / 1000
        keepalive_s = float(query.get("keepalive_ms", ["0"])[0]) / 1000
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        if scope["path"] == "/health":
            await send({"type": "http.response.body", "body": b"ok"})
            return
        if first_s:
            await _wait(send, first_s, keepalive_s)
        body = groups[1:-1]
        await send({"type": "http.response.body", "body": groups[0], "more_body": True})
        for group in body:
            if chunk_s:
                await asyncio.sleep(chunk_s)
            await send({"type": "http.response.body", "body": group, "more_body": True})
        if chunk_s:
            await asyncio.sleep(chunk_s)
        await send({"type": "http.response.body", "body": groups[-1], "more_body": False})

    return app


async def _wait(send: Send, seconds: float, keepalive_s: float) -> None:
    if not keepalive_s:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() + keepalive_s < end:
        await asyncio.sleep(keepalive_s)
        await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
    await asyncio.sleep(max(0.0, end - loop.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--frames", type=Path, required=True, help="JSON list of the stream's writes")
    args = parser.parse_args()
    # The writes are bytes as latin-1 text (a binary framing's too), so each character is its byte.
    frames = json.loads(args.frames.read_text())
    streams = {name: [g.encode("latin-1") for g in groups] for name, groups in frames.items()}
    uvicorn.run(
        make_app(streams), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off", http="httptools"
    )


if __name__ == "__main__":
    main()
