"""`python -m bench.chunk_path` plays every chunk of every stream, and times only their ticks."""

from __future__ import annotations

import asyncio

import pytest

from bench import chunk_path
from mock_server.wire.tcp import BODY_END, CHUNK


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
def test_every_chunk_of_every_stream_is_written_and_its_cpu_counted(cold: bool) -> None:
    measured = asyncio.run(chunk_path.play_round(3, chunks=4, cold=cold))
    chunk = CHUNK % (len(chunk_path.EVENT), chunk_path.EVENT)
    assert measured.written == 3 * (4 * len(chunk) + len(BODY_END))
    assert measured.chunk_us > 0
