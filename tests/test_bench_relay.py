"""The bench's bare TCP relay passes a stream on as the upstream sent it."""

from __future__ import annotations

import re

from bench import procs
from bench.proxy import start_relay
from mock_server.http.server import MockServer
from tests.wire import Ending, fetch

PATH = "/v1/chat/completions?chunk_ms=5"
BODY = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "pass it on"}]}
CREATED = re.compile(r'"created":\d+')


def timeless(data: list[str]) -> list[str]:
    """The events without their `created` second: the two requests may fall on either side of one."""
    return [CREATED.sub('"created":0', event) for event in data]


def test_the_relay_passes_the_stream_on_byte_for_byte(server: MockServer) -> None:
    port = procs.free_port()
    relay = start_relay(port, int(server.url.rsplit(":", 1)[1]), cpus=None)
    try:
        procs.wait_until_answering(f"http://127.0.0.1:{port}/_mock/health", relay)
        relayed = fetch(f"http://127.0.0.1:{port}{PATH}", method="POST", body=BODY)
        direct = fetch(server.url + PATH, method="POST", body=BODY)
    finally:
        relay.terminate()
        relay.wait(5)
    assert relayed.ending is Ending.COMPLETE
    assert timeless(relayed.data) == timeless(direct.data)
    assert len(relayed.chunks) == len(direct.chunks) > 2
