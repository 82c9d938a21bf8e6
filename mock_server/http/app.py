"""`create_app(settings)`: the ASGI app a server runs, fresh and isolated (no state lives outside it).

It is two doors behind one access guard. The model endpoints (`routes.MODEL_ROUTES`) go straight to
the shared request path with only CORS in between; everything else (the control API, /v1/models,
the playground, the OpenAPI schema and docs) goes through FastAPI. FastAPI's stack is some fifteen
ASGI layers that stay suspended for as long as a response lasts (for a stream, its whole life):
CPU per request and, above all, objects the garbage collector walks on every pass, pausing every
stream. The model routes are still declared to FastAPI, for /openapi.json, but no model request
reaches them there; nor does the ready check (`/_mock/health`), answered the same way. FastAPI's
part is built on the first request that goes to it (`MockApp.fastapi`), and the route table with
the request path, and the app's state with the journal, on the first request other than the ready
check, so a server answers its ready check without loading FastAPI, the journal, the dialects or
the wire: the ready check tells only the scenarios' count and which start of the server this is,
the journal's log's, made at once. `HEAD` on a GET route answers like GET
without a body (a stream: its head alone).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mock_server.http import health
from mock_server.http.access import AccessGuard, Cors, CorsByPath
from mock_server.http.scope import STATE_SCOPE_KEY
from mock_server.journal.log import MemoryLog
from mock_server.scenarios.catalog import Catalog, bundled_entries, load_paths
from mock_server.settings import CONTROL_PREFIX, Settings
from mock_server.store import open_store
from mock_server.timeline import tokens

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

    from mock_server.http import routes
    from mock_server.http.state import MockState
    from mock_server.journal.journal import RecordLog
    from mock_server.store.shared import SharedStore

SHARED_SETTLE_POLL_S = 0.02
"""How often a look at a shared journal asks whether responses in flight have ended."""
_ROUTE_SCOPE_KEY = "mock_llm_sse.route"
"""The model route `MockApp` found for a request, kept in its scope for the request path."""


def load_catalog(settings: Settings) -> Catalog:
    """The scenarios `settings` names; raises ScenarioError listing every problem in every file."""
    bundled = bundled_entries() if settings.bundled_scenarios else ()
    recordings = settings.record_dir
    if recordings is not None and not recordings.exists() and settings.record_mode != "none":
        recordings.mkdir(parents=True)  # nothing recorded yet: the first recording goes there
    recorded = [recordings] if recordings is not None else []
    loaded = load_paths([*settings.scenario_dirs, *recorded])
    by_name = {entry.scenario.name: entry for entry in (*bundled, *loaded)}  # a file of yours replaces a bundled one
    return Catalog(list(by_name.values()), default=settings.default_scenario)


class MockApp:
    """The server's ASGI app: model requests to their route, everything else to `fastapi`."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self._catalog = catalog
        self._store = open_store(settings.state, settings.journal_size, settings.journal_max_bytes)
        self._log: RecordLog = (
            self._store
            if self._store is not None
            else MemoryLog(settings.journal_size, settings.journal_max_bytes, settings.wall_clock)
        )
        """The journal's log, made now: the ready check tells which start of the server this is."""
        self._state: MockState | None = None
        self._making_state = threading.Lock()
        if self._store is not None or settings.upstream is not None:
            self._state = _state(settings, catalog, self._log, self._store)  # a store or an upstream is checked now
        self._fastapi: FastAPI | None = None
        self._building = asyncio.Lock()
        self._model_routes: routes.RouteTable | None = None
        self._answer: Callable[[Scope, Receive, Send, routes.ModelRoute], Awaitable[None]] | None = None
        models = Cors(self._answer_model_request, settings)
        self._models = AccessGuard(models, settings)
        self._health = AccessGuard(CorsByPath(self._answer_ready_check, settings), settings)

    @property
    def state(self) -> MockState:
        """What the app keeps between requests (`MockState`): the journal around `_log`, the counters,
        the stored responses, the rate limits, the upstream. Made, and their modules loaded, by the
        first request other than the ready check; with a shared store (which startup joins) or an
        upstream, at once, so that a problem with either is told before the server answers."""
        state = self._state
        if state is None:
            with self._making_state:  # a test's thread may ask while the server's makes it (MockServer)
                if self._state is None:
                    self._state = _state(self.settings, self._catalog, self._log, self._store)
                state = self._state
        return state

    @property
    def model_routes(self) -> routes.RouteTable:
        """The model routes, loaded by the first request that is not the ready check: with them come
        the dialects, the compiler and the wire (some 40 ms), which a starting server's ready check
        (`/_mock/health`, polled until it answers) does not need."""
        if self._model_routes is None:
            from mock_server.http import pipeline, routes

            self._answer = pipeline.answer
            self._model_routes = routes.RouteTable(routes.MODEL_ROUTES)
        return self._model_routes

    @property
    def fastapi(self) -> FastAPI:
        """FastAPI's part of the app (the control API, the listings, the playground, the schema),
        built on first use: importing FastAPI is a third of start-up, and no model request needs it."""
        if self._fastapi is None:
            self._fastapi = _build_fastapi(self.state.settings)
        return self._fastapi

    async def _fastapi_off_the_loop(self) -> FastAPI:
        """`fastapi`, built in a worker thread when a request first needs it: building it takes about
        half a second, which on the event loop would hold every stream for that long."""
        if self._fastapi is None:
            async with self._building:
                if self._fastapi is None:
                    self._fastapi = await asyncio.to_thread(_build_fastapi, self.settings)
        return self._fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["path"] == health.PATH and scope["method"] in ("GET", "HEAD"):
            # Polled while the server starts: answered before the state, the model routes or FastAPI are made.
            await self._health(scope, receive, send)
            return
        scope[STATE_SCOPE_KEY] = self.state  # what `state_of(request)` reads, on either side
        if scope["type"] == "http" and (
            (route := self._model_route_of(scope)) is not None
            or (route := await self._forwarded_route_of(scope)) is not None
        ):
            scope[_ROUTE_SCOPE_KEY] = route
            await self._models(scope, receive, send)
        else:
            await (self._fastapi or await self._fastapi_off_the_loop())(scope, receive, send)

    async def _answer_ready_check(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The state, once made, holds this catalog itself (run-time scenarios change it in place).
        await health.answer(send, self.settings, len(self._catalog), self._log)

    def _model_route_of(self, scope: Scope) -> routes.ModelRoute | None:
        """The model route of a request, if it has one (found without a coroutine: every model request asks)."""
        matched = self.model_routes.match(scope["method"], scope["path"])
        if matched is None:
            return None
        route, scope["path_params"] = matched  # what `request.path_params` reads
        return route

    async def _forwarded_route_of(self, scope: Scope) -> routes.ModelRoute | None:
        """With an upstream, a forwarding route for a request no model route takes, unless FastAPI
        answers its path or it is for the control API."""
        path, method = scope["path"], scope["method"]
        forward = self.state.upstream is not None and method != "OPTIONS" and not path.startswith(CONTROL_PREFIX)
        if not forward:
            return None
        from mock_server.http import routes, stored_responses  # with an upstream only (routes: loaded already)

        if not self._answered_here(scope) or await stored_responses.upstream_response(self.state, method, path):
            return routes.forwarded_route(method, path)
        return None

    def _answered_here(self, scope: Scope) -> bool:
        """Whether FastAPI has a route for the path (the docs, /v1/models, the playground): never forwarded."""
        from starlette.routing import Match  # loaded with FastAPI, just above

        return any(route.matches(scope)[0] is not Match.NONE for route in self.fastapi.router.routes)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """At startup, start building the tokenizer that counts usage in the background: start-up does
        not wait for it, and a request that arrives before it is built waits for it off the event loop
        (`tokens.ready`); join the shared state, when there is one. At shutdown, close what the app
        opened (the upstream's connections, the shared state)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tokens.warm_in_background()
                if self._store is not None:
                    await self.state.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._state is not None:
                    await self._state.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _answer_model_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._answer is not None  # loaded with the routes that found the request's route
        await self._answer(scope, receive, send, scope[_ROUTE_SCOPE_KEY])  # __call__ sends only those that have one


def _state(settings: Settings, catalog: Catalog, log: RecordLog, store: SharedStore | None) -> MockState:
    """The state `settings` asks for, around `log`: in this process, or kept in a shared store (`--state`),
    which is then `log` too."""
    from mock_server.conversations.responses import ResponseStore
    from mock_server.http.state import MockState
    from mock_server.journal.journal import Journal

    mask = settings.journal_secrets == "mask"
    worker = settings.worker if settings.workers > 1 else None
    if store is None:
        journal = Journal(log, settings.wall_clock, mask_secrets=mask, worker=worker)
        state = MockState(settings, catalog, journal, responses=ResponseStore(settings.responses_max_bytes))
    else:
        journal = Journal(
            log, settings.wall_clock, mask_secrets=mask, settle_poll_s=SHARED_SETTLE_POLL_S, worker=worker
        )
        state = MockState(settings, catalog, journal, counters=store, responses=store, store=store)
    if settings.upstream is not None:
        # The upstream's client is loaded only for a server with an upstream.
        from mock_server.upstream.proxy import Upstream
        from mock_server.upstream.recorder import Recorder

        state.upstream = Upstream(settings.upstream, settings.upstream_ca, settings.upstream_timeout_s)
        if settings.record_dir is not None and settings.record_mode != "none":
            state.recorder = Recorder(settings.record_dir, catalog)
    return state


def create_app(settings: Settings | None = None, catalog: Catalog | None = None) -> MockApp:
    """The ASGI app for `settings`; pass `catalog` to reuse scenarios already loaded."""
    settings = settings or Settings()
    return MockApp(settings, catalog if catalog is not None else load_catalog(settings))


def _build_fastapi(settings: Settings) -> FastAPI:
    from mock_server.http.fastapi_app import fastapi_app  # the one place FastAPI is loaded

    return fastapi_app(settings)
