"""Running the app on uvicorn: in the foreground for the CLI, in a thread for tests (`MockServer`)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from mock_server.errors import ServerError
from mock_server.settings import DEFAULT_HOST, Settings
from mock_server.tcp import ConnectionExposingProtocol

SHUTDOWN_GRACE_S = 5.0


def uvicorn_config(app: FastAPI, settings: Settings, *, configure_logging: bool = True) -> uvicorn.Config:
    """uvicorn settings for our app: our connection-exposing protocol, no lifespan; with
    `configure_logging` false, the process's logging configuration is left alone."""
    extra: dict[str, Any] = {} if configure_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=ConnectionExposingProtocol,
        lifespan="off",
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S),
        server_header=False,
        **extra,
    )


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


def run_foreground(app: FastAPI, settings: Settings, sock: socket.socket, on_ready: Callable[[], None]) -> None:
    """Serve on `sock` until SIGINT/SIGTERM; `on_ready` runs once the socket is listening."""
    server = uvicorn.Server(uvicorn_config(app, settings))
    sock.listen(2048)
    on_ready()
    # uvicorn re-raises SIGINT/SIGTERM to the previous handler once it has shut down gracefully;
    # a quiet handler there makes a requested stop exit 0 instead of dying of the signal.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signal(signum: int, frame: object) -> None:
    """Stand-in for the default action after uvicorn has already handled the signal."""


class MockServer:
    """The app on uvicorn in a background thread, for tests: `with MockServer() as server: server.url`.

    Ready (answering) when `start()` or `__enter__` returns; `stop()` ends every stream and the thread.
    It never touches process-wide state (logging configuration, signal handlers, sse-starlette's
    `AppStatus`), so several can run side by side.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        scenarios: Iterable[str | Path] = (),
        settings: Settings | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        base = settings or Settings()
        self.settings = replace(
            base,
            host=host if settings is None else base.host,
            port=port if settings is None else base.port,
            scenario_dirs=(*base.scenario_dirs, *(Path(p) for p in scenarios)),
        )
        self._start_timeout_s = start_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.app: FastAPI | None = None

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
        """Load the scenarios, bind, serve in a thread; returns once the server answers."""
        if self._thread is not None:
            raise ServerError(f"MockServer is already running on {self.url}; stop() it first")
        from mock_server.app import create_app

        self.app = create_app(self.settings)
        sock = bind_socket(self.settings.host, self.settings.port)
        sock.listen(2048)
        self._port = sock.getsockname()[1]
        config = uvicorn_config(self.app, self.settings, configure_logging=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"mock-llm-sse:{self._port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._server, self._thread, self._port = None, None, None
                sock.close()
                raise ServerError("MockServer did not start; see the log above for uvicorn's reason")
            time.sleep(0.0005)
        sock.close()  # uvicorn serves on its own duplicate of the socket
        return self

    def stop(self) -> None:
        """End every stream, stop serving and join the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            raise ServerError("MockServer is not running")
        server.should_exit = True
        thread.join(SHUTDOWN_GRACE_S + 5)
        self._server, self._thread, self._port = None, None, None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is not None:
            self.stop()
