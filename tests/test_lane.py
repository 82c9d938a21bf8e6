"""The streaming lane: model endpoints skip FastAPI's stack, and nothing else changes."""

from __future__ import annotations

from mock_server.http.app import create_app
from mock_server.http.lane import STREAMING_HANDLERS, StreamingLane
from mock_server.settings import Settings


def test_the_lane_takes_every_streaming_endpoint_and_nothing_else() -> None:
    lane = StreamingLane(create_app(), Settings())
    assert set(lane.routes) == {
        ("/completions", "GET"),
        ("/completions", "HEAD"),
        ("/completions", "POST"),
        ("/v1/chat/completions", "POST"),
        ("/v1/completions", "POST"),
        ("/v1/responses", "POST"),
        ("/v1/messages", "POST"),
    }
    assert set(lane.routes.values()) == set(STREAMING_HANDLERS)
    assert lane.routes[("/completions", "HEAD")] is lane.routes[("/completions", "GET")]


def test_lane_routes_stay_in_the_openapi_schema() -> None:
    paths = create_app().openapi()["paths"]
    assert {"/completions", "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages"} <= set(paths)
