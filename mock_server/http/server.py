"""Running the app on uvicorn: in the foreground for the CLI, in a thread for tests (`MockServer`)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn

from mock_server.errors import ServerError
from mock_server.http.admission import AdmissionGate
from mock_server.http.app import MockApp, create_app
from mock_server.http.collector import Collector
from mock_server.http.limits import ConnectionLimits, LimitedConfig
from mock_server.http.protocol import HttpProtocol
from mock_server.scenarios.catalog import load_runtime_scenario
from mock_server.scenarios.loading import Document
from mock_server.settings import Settings
from mock_server.wire.pacing import wheel_of

if sys.platform != "win32":
    import resource

if TYPE_CHECKING:
    from mock_server.http.state import MockState
    from mock_server.journal.journal import RequestRecord
    from mock_server.journal.verdict import Verdict  # the verdict's rules load on the first one asked for

SETTLE_TIMEOUT_S = 1.0
VERDICT_WAIT_S = 60.0
STOP_MARGIN_S = 5.0
"""How much longer than the grace time `stop()` waits for the thread before forcing it."""
DESCRIPTOR_RESERVE = 64
"""Descriptors the connection limit leaves free: listening sockets, log and scenario files, whatever
else the process opens meanwhile."""
T = TypeVar("T")


def uvicorn_config(app: MockApp, settings: Settings, *, configure_logging: bool = True) -> LimitedConfig:
    """uvicorn settings for our app: our HTTP protocol with the settings' connection limits, the
    app's lifespan (it closes the upstream's connections); with `configure_logging` false, the
    process's logging configuration (handlers and levels) is left alone."""
    log_options: dict[str, Any] = (
        {"log_level": settings.log_level} if configure_logging else {"log_config": None, "log_level": None}
    )
    return LimitedConfig(
        app,
        limits=connection_limits(settings),
        host=settings.host,
        port=settings.port,
        http=HttpProtocol,
        ws="none",  # our protocol refuses WebSocket handshakes itself: uvicorn need not load `websockets`
        lifespan="on",
        access_log=settings.access_log,
        # uvicorn annotates whole seconds, but waits any number of seconds (asyncio.wait_for).
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        server_header=False,
        **log_options,
    )


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The settings' limits on connections, with `max_connections` lowered to what the process's
    open-file limit leaves room for: past that, new clients would be closed unanswered."""
    room = _descriptor_room()
    effective = max(1, min(settings.max_connections, room))
    limit_name = (
        "the --max-connections limit"
        if effective == settings.max_connections
        else f"as many as the open-file limit (ulimit -n) leaves room for (--max-connections is "
        f"{settings.max_connections:,})"
    )
    return ConnectionLimits(
        request_timeout_s=settings.request_timeout_s, max_connections=effective, limit_name=limit_name
    )


def fit_open_file_limit(max_connections: int) -> None:
    """Raise the process's soft open-file limit, as far as its hard limit allows, until `max_connections`
    connections fit. Process-wide: for the process `serve` owns, never for a `MockServer`."""
    if sys.platform == "win32":
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _open_descriptors() + DESCRIPTOR_RESERVE + max_connections
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):  # e.g. macOS refuses more than its OPEN_MAX: keep the soft limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _descriptor_room() -> int:
    """How many more descriptors the process may open, less the reserve."""
    if sys.platform == "win32":
        return sys.maxsize
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    return soft - _open_descriptors() - DESCRIPTOR_RESERVE


def _open_descriptors() -> int:
    for listing in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return len(os.listdir(listing))
    return 0


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket; raises OSError with the cause (e.g. the port is in use)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def run_foreground(app: MockApp, settings: Settings, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Serve on `sock` until SIGINT/SIGTERM; `on_ready` runs once the socket is listening."""
    fit_open_file_limit(settings.max_connections)
    config = uvicorn_config(app, settings)
    collector = Collector()
    server = _ForegroundServer(config, collector)
    sock.listen(2048)
    on_ready()
    if config.limits.max_connections < settings.max_connections:
        logging.getLogger("uvicorn.error").warning(
            "--max-connections %s is lowered to %s: the open-file limit (ulimit -n) leaves no room for more",
            f"{settings.max_connections:,}",
            f"{config.limits.max_connections:,}",
        )
    # uvicorn re-raises SIGINT/SIGTERM to the previous handler once it has shut down gracefully;
    # a quiet handler there makes a requested stop exit 0 instead of dying of the signal.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Everything loaded so far (the web stack, the scenarios) lives as long as the process.
    collector.start()
    try:
        server.run(sockets=[sock])
    finally:
        collector.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signal(signum: int, frame: object) -> None:
    """Stand-in for the default action after uvicorn has already handled the signal."""


class _ForegroundServer(uvicorn.Server):
    """uvicorn's Server for the process `serve` owns: new connections come in through an
    `AdmissionGate`, and at each of its ticks (ten a second) the collector hears how many requests it
    has taken and whether it is answering any."""

    def __init__(self, config: LimitedConfig, collector: Collector) -> None:
        super().__init__(config)
        self.collector = collector
        self.limits = config.limits
        self.gate: AdmissionGate | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        wheel = wheel_of(loop)
        self.gate = AdmissionGate(loop, self.config.http_protocol_class, self._room, lambda: wheel.ticks > 0)
        self.config.http_protocol_class = self.gate.protocol  # type: ignore[assignment]  # makes the same protocols
        await super().startup(sockets=sockets)

    def _room(self) -> int:
        """How many more connections the connection limit allows."""
        return self.limits.max_connections - len(self.server_state.connections)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gate is not None:
            self.gate.stop()
        await super().shutdown(sockets=sockets)

    async def on_tick(self, counter: int) -> bool:
        self.collector.tick(self.server_state.total_requests, bool(self.server_state.tasks))
        return await super().on_tick(counter)


class _ThreadServer(uvicorn.Server):
    """uvicorn's Server for a background thread: it keeps its event loop, so other threads can hand it
    work, and `exit_soon()` wakes its main loop at once instead of at the next 100 ms tick."""

    loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets=sockets)

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            assert self._wake is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def exit_soon(self) -> None:
        self.should_exit = True
        if self.loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                self.loop.call_soon_threadsafe(self._wake.set)


class MockServer:
    """The app on uvicorn in a background thread, for tests: `with MockServer() as server: server.url`.

    Ready (answering) when `start()` or `__enter__` returns; `stop()` ends every stream and the thread.
    It never touches process-wide state (logging configuration, signal handlers, sse-starlette's
    `AppStatus`), so several can run side by side. Scenarios and the journal are only touched on the
    server's own event loop, so a test thread can use them while streams are playing.
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        scenarios: Iterable[str | Path] = (),
        settings: Settings | None = None,
        start_timeout_s: float = 10.0,
        settle_timeout_s: float = SETTLE_TIMEOUT_S,
    ) -> None:
        base = settings or Settings(port=0)
        self.settings = replace(
            base,
            host=base.host if host is None else host,
            port=base.port if port is None else port,
            scenario_dirs=(*base.scenario_dirs, *(Path(p) for p in scenarios)),
        )
        self.settle_timeout_s = settle_timeout_s
        self._start_timeout_s = start_timeout_s
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._names = itertools.count(1)
        self.app: MockApp | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError("MockServer is not running; call start() or use it as a context manager")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """`url + "/v1"`, for `OpenAI(base_url=...)`."""
        return self.url + "/v1"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> MockServer:
        """Load the scenarios, bind, serve in a thread; returns once the server answers.
        Raises ScenarioError listing every problem in the scenarios, ServerError when it cannot listen."""
        if self._thread is not None:
            raise ServerError(f"MockServer is already running on {self.url}; stop() it first")
        app = create_app(self.settings)
        host, port = self.settings.host, self.settings.port
        try:
            sock = bind_socket(host, port)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ServerError(f"MockServer cannot listen on {host}:{port}: {reason}; port=0 picks a free one") from None
        sock.listen(2048)
        server = _ThreadServer(uvicorn_config(app, self.settings, configure_logging=False))
        self._port = sock.getsockname()[1]
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"mock-llm-sse:{self._port}", daemon=True
        )
        self.app, self._server, self._thread, self._socket = app, server, thread, sock
        thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.exit_soon()
                thread.join(self.settings.shutdown_grace_s + STOP_MARGIN_S)
                self._forget()
                raise ServerError("MockServer did not start; see the log above for uvicorn's reason")
            time.sleep(0.0005)
        return self

    def stop(self) -> None:
        """End every stream, give requests still running `settings.shutdown_grace_s` to end (then
        cancel them), stop serving and join the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            raise ServerError("MockServer is not running")
        server.exit_soon()
        thread.join(self.settings.shutdown_grace_s + STOP_MARGIN_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        self._forget()
        if thread.is_alive():
            raise ServerError(f"MockServer's thread {thread.name} did not end")

    def _forget(self) -> None:
        if self._socket is not None:
            self._socket.close()  # uvicorn's loop may serve on a duplicate of it; this one is ours to close
        self._server, self._thread, self._socket, self._port = None, None, None, None

    def __repr__(self) -> str:
        return f"<MockServer {self.url}>" if self._port is not None else "<MockServer (not running)>"

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self.stop()

    # What a test does with a running server. Scenarios and the journal belong to the server's
    # event loop, so every access below runs there.

    def add_scenario(self, name: str | Mapping[str, Any] | None = None, /, **fields: Any) -> str:
        """Register (or replace) a run-time scenario and return its name:
        `add_scenario("slow", reply="Hi", chunk_ms=50)`, `add_scenario({"reply": "Hi"})`, or
        `add_scenario(reply="Hi")` for a generated name. Raises ScenarioError listing every problem."""
        data = {**name, **fields} if isinstance(name, Mapping) else dict(fields)
        chosen = name if isinstance(name, str) else data.get("name")
        if not isinstance(chosen, str):
            chosen = f"scenario-{next(self._names)}"
        scenario = load_runtime_scenario(Document("add_scenario()", data), chosen)

        async def add(state: MockState) -> None:
            await state.put_scenario(scenario)

        self._on_loop(add)
        return chosen

    def records(self, *, since: int | None = None, settle_s: float | None = None) -> list[RequestRecord]:
        """The journal's records with an id above `since`, oldest first. Responses that are just ending
        (the client has read them, the server is finishing their record) get up to `settle_s`
        (default `settle_timeout_s`) to end; pass 0 to see streams in flight as they are."""
        wait = self.settle_timeout_s if settle_s is None else settle_s

        async def read(state: MockState) -> list[RequestRecord]:
            return await state.journal.settled(since, wait)

        return self._on_loop(read, extra_s=wait)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request in the journal, oldest first, once responses in flight have ended (see `records`)."""
        return self.records()

    @property
    def last_request(self) -> RequestRecord:
        """The newest request; raises ServerError when there is none."""
        records = self.records()
        if not records:
            raise ServerError(f"No request has reached the mock server at {self.url} since it started or was reset")
        return records[-1]

    def verdict(self, *, since: int | None = None, wait_s: float = VERDICT_WAIT_S) -> Verdict:
        """The verdict on the requests with an id above `since` (all without it): what the clients got
        wrong, with advice. Checks that wait for time to pass (a retry after a cut stream that has not
        come yet) get up to `wait_s` to be decided; those still open are in `pending`."""
        settle = self.settle_timeout_s

        async def judge(state: MockState) -> Verdict:
            return await state.verdict(since, settle, wait_s)

        return self._on_loop(judge, extra_s=settle + wait_s)

    def assert_client_behaved(
        self, *, since: int | None = None, wait_s: float = VERDICT_WAIT_S, ignore: Iterable[str] = ()
    ) -> Verdict:
        """Fail (AssertionError) with every finding, its advice and its records, unless the verdict has
        none besides the codes in `ignore`; also when a check is still pending after `wait_s`, since
        the client cannot be vouched for yet. Returns the verdict."""
        __tracebackhide__ = True
        from mock_server.journal.verdict import FINDING_KINDS  # loaded on the first verdict

        accepted = set(ignore)
        if unknown := accepted - FINDING_KINDS.keys():
            raise ValueError(f"unknown finding code(s) {sorted(unknown)} in ignore; known: {', '.join(FINDING_KINDS)}")
        verdict = self.verdict(since=since, wait_s=wait_s)
        kept = replace(verdict, findings=tuple(f for f in verdict.findings if f.code not in accepted))
        if kept.findings:
            raise AssertionError(kept.report())
        if kept.pending:
            raise AssertionError(
                f"{kept.summary()}\nThey were not decided within wait_s={wait_s:g}; wait longer, or lower the "
                "scenario's thresholds (grace_ms, patience_ms, close_grace_ms)."
            )
        return verdict

    def reset(self) -> None:
        """Forget the journal, the run-time scenarios and the `times` counters; make every rate limit whole."""

        async def reset(state: MockState) -> None:
            await state.reset()

        self._on_loop(reset)

    def _on_loop(self, work: Callable[[MockState], Coroutine[Any, Any, T]], extra_s: float = 0.0) -> T:
        server, app = self._server, self.app
        if server is None or server.loop is None or app is None:
            raise ServerError("MockServer is not running; call start() or use it as a context manager")
        future = asyncio.run_coroutine_threadsafe(work(app.state), server.loop)
        return future.result(self._start_timeout_s + extra_s)
