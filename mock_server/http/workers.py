"""`serve --workers N`: N processes serve on one listening socket, watched by the process that bound it.

The supervisor (the process `serve` started) binds the socket, starts each worker in a fresh
interpreter ("spawn": nothing half-initialised is inherited), and waits. Every worker builds its app
from the same settings as a single process would and serves the inherited socket with
`run_foreground`; the kernel hands each new connection to one of them. A worker that dies is
replaced and the log says so. SIGTERM or Ctrl-C stop every worker as they stop one process; a
worker whose supervisor dies (even by SIGKILL) notices and stops too, so none is ever orphaned.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import uvicorn.config

from mock_server.http.app import create_app
from mock_server.http.server import run_foreground
from mock_server.settings import Settings
from mock_server.store import check_store

STOP_MARGIN_S = 5.0
"""How much longer than the grace time a stop waits for a worker before killing it."""
FIRST_RESTART_DELAY_S = 0.5
"""How long a worker that died before it listened waits to be started again, doubled at each such
death in a row up to `MAX_RESTART_DELAY_S`: one that cannot start would otherwise spin."""
MAX_RESTART_DELAY_S = 5.0

logger = logging.getLogger("uvicorn.error")


def run_workers(settings: Settings, sock: socket.socket, on_ready: Callable[[Settings], None]) -> int:
    """Serve `sock` with `settings.workers` processes until SIGTERM or SIGINT; returns the exit status
    (0 after a requested stop, as for one process). `on_ready` runs once, with the settings the workers
    run with, when every worker listens. Memory state would be a slice per worker, so `memory` is
    replaced by a SQLite file in a temporary directory, removed at exit."""
    _configure_logging(settings)
    with _shared_state(settings) as shared:
        return _Supervisor(shared, sock).run(on_ready)


@contextlib.contextmanager
def _shared_state(settings: Settings) -> Iterator[Settings]:
    if settings.state != "memory":
        yield settings
        return
    folder = tempfile.mkdtemp(prefix="mock-llm-sse-state-")
    try:
        shared = replace(settings, state=f"sqlite:{os.path.join(folder, 'state.sqlite3')}")
        # Made here, once: workers that each found a new file would race to switch it to WAL, and SQLite
        # refuses the loser at once ("database is locked") rather than let it wait.
        check_store(shared.state)
        yield shared
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _configure_logging(settings: Settings) -> None:
    """The supervisor's log lines look like its workers' (uvicorn's format, on stderr)."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    logger.setLevel(uvicorn.config.LOG_LEVELS[settings.log_level])


@dataclass
class _Worker:
    number: int
    process: BaseProcess
    ready: Connection | None
    """Where the worker says it listens; None once it has (or has died first)."""
    is_ready: bool = False

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def note_ready(self) -> None:
        """Read the worker's word that it listens, if it has come."""
        if self.ready is None:
            return
        try:
            if not self.ready.poll():
                return
            self.ready.recv()
            self.is_ready = True
        except (EOFError, OSError):
            pass  # it died before it listened: its sentinel says so
        self.ready.close()
        self.ready = None

    def forget(self) -> None:
        if self.ready is not None:
            self.ready.close()
            self.ready = None


class _Supervisor:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self.settings = settings
        self.sock = sock
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, _Worker] = {}
        self.restart_at: dict[int, float] = {}
        """Workers that died before they listened, by number: when each is started again."""
        self.failed_starts: dict[int, int] = {}
        self.signals: list[int] = []
        self._wake_r, self._wake_w = socket.socketpair()

    def run(self, on_ready: Callable[[Settings], None]) -> int:
        previous = self._catch_signals()
        try:
            for number in range(1, self.settings.workers + 1):
                self._start(number)
            status = self._wait_until_ready()
            if status is None:
                on_ready(self.settings)
                self._watch()
                status = 0
            return self._stop_all(status)
        finally:
            self._release_signals(previous)

    def _catch_signals(self) -> dict[int, object]:
        # The C-level handler writes the signal's number to the socket, which wakes `wait` at once.
        self._wake_w.setblocking(False)
        self._wake_r.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _release_signals(self, previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(-1)
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # what signal.signal returned before
        self._wake_r.close()
        self._wake_w.close()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _start(self, number: int) -> _Worker:
        receive, send = self.context.Pipe(duplex=False)
        settings = replace(self.settings, worker=number)
        process = self.context.Process(
            target=_serve_worker, args=(settings, self.sock, send), name=f"mock-llm-sse worker {number}", daemon=False
        )
        process.start()
        send.close()  # the worker holds the sending end: its death ends the pipe
        worker = _Worker(number, process, receive)
        self.workers[number] = worker
        return worker

    def _wait_until_ready(self) -> int | None:
        """None once every worker listens; an exit status when one died first or a stop was asked for."""
        while not all(w.is_ready for w in self.workers.values()):
            self._wait(None)
            if self.signals:
                return 0
            for worker in list(self.workers.values()):
                worker.note_ready()
                if not worker.is_ready and not worker.process.is_alive():
                    logger.error(
                        "worker %d (pid %d) %s while starting; stopping the other workers",
                        worker.number,
                        worker.pid,
                        _ending(worker.process.exitcode),
                    )
                    del self.workers[worker.number]
                    worker.process.join()
                    code = worker.process.exitcode
                    return code if code is not None and code > 0 else 1
        return None

    def _watch(self) -> None:
        """Replace workers that die until a signal asks for a stop."""
        while not self.signals:
            now = time.monotonic()
            due = list(self.restart_at.values())
            self._wait(max(0.0, min(due) - now) if due else None)
            for worker in list(self.workers.values()):
                worker.note_ready()
                if not worker.process.is_alive() and not self.signals:
                    self._replace(worker)
            for number, at in list(self.restart_at.items()):
                if time.monotonic() >= at and not self.signals:
                    del self.restart_at[number]
                    new = self._start(number)
                    logger.warning("started a new worker %d (pid %d)", number, new.pid)

    def _replace(self, worker: _Worker) -> None:
        del self.workers[worker.number]
        worker.forget()
        worker.process.join()
        ending = _ending(worker.process.exitcode)
        if worker.is_ready:
            self.failed_starts.pop(worker.number, None)
        else:
            failed = self.failed_starts.get(worker.number, 0) + 1
            self.failed_starts[worker.number] = failed
            delay = min(MAX_RESTART_DELAY_S, FIRST_RESTART_DELAY_S * 2 ** (failed - 1))
            self.restart_at[worker.number] = time.monotonic() + delay
            logger.warning(
                "worker %d (pid %d) %s before it listened; starting a new worker %d in %.1f s",
                worker.number,
                worker.pid,
                ending,
                worker.number,
                delay,
            )
            return
        new = self._start(worker.number)
        logger.warning(
            "worker %d (pid %d) %s; started a new worker %d (pid %d)",
            worker.number,
            worker.pid,
            ending,
            new.number,
            new.pid,
        )

    def _wait(self, timeout: float | None) -> None:
        watched: list[object] = [self._wake_r]
        for worker in self.workers.values():
            watched.append(worker.process.sentinel)
            if worker.ready is not None:
                watched.append(worker.ready)
        wait(watched, timeout)  # type: ignore[arg-type]  # sockets, sentinels (ints) and connections
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(64):
                pass

    def _stop_all(self, status: int) -> int:
        """Stop every worker as a signal stops one process: SIGTERM, then each gets the grace time
        (another Ctrl-C forces them, as it forces one process); returns `status`, or 1 when a worker
        did not stop cleanly."""
        self.restart_at.clear()
        workers = list(self.workers.values())
        for worker in workers:
            _signal(worker, signal.SIGTERM)
        handled = len(self.signals)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + STOP_MARGIN_S
        while any(w.process.is_alive() for w in workers) and time.monotonic() < deadline:
            self._wait(max(0.0, deadline - time.monotonic()))
            if signal.SIGINT in self.signals[handled:]:
                for worker in workers:
                    _signal(worker, signal.SIGINT)
            handled = len(self.signals)
        for worker in workers:
            if worker.process.is_alive():
                logger.error("worker %d (pid %d) did not stop in time; killing it", worker.number, worker.pid)
                worker.process.kill()
            worker.process.join()
            worker.forget()
            # Killed by the SIGTERM sent above before it could handle it (it was still starting): stopped all the same.
            if worker.process.exitcode not in (0, -signal.SIGTERM, -signal.SIGINT) and status == 0:
                logger.error(
                    "worker %d (pid %d) %s while stopping", worker.number, worker.pid, _ending(worker.process.exitcode)
                )
                status = 1
        return status


def _signal(worker: _Worker, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(worker.pid, sig)


def _ending(exitcode: int | None) -> str:
    """How a process ended, as the log says it: `died (signal 9, SIGKILL)`, `exited (status 0)`."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            return f"died (signal {-exitcode})"
        return f"died (signal {-exitcode}, {name})"
    return f"exited (status {exitcode})" if exitcode == 0 else f"died (exit status {exitcode})"


def _serve_worker(settings: Settings, sock: socket.socket, ready: Connection) -> None:
    """A worker's life: build the app as one process does, serve `sock` until a signal, and stop when
    the supervisor is gone."""
    # A terminal's Ctrl-C reaches the whole process group; until uvicorn handles it, the supervisor's
    # SIGTERM stops the worker instead of a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_with_supervisor()
    app = create_app(settings)

    def listening() -> None:
        ready.send(os.getpid())
        ready.close()

    run_foreground(app, settings, sock, on_ready=listening)


def _stop_with_supervisor() -> None:
    """Stop this worker gracefully (SIGTERM to itself) when its supervisor dies, however it dies: the
    supervisor holds a pipe to each worker open for as long as it lives."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        wait([sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor watch", daemon=True).start()
