"""`serve --workers N`: real processes on a real socket. Every worker answers on the one port, a
worker that dies is replaced and the log says so, SIGTERM and Ctrl-C stop them all (exit 0, port
free), none outlives its supervisor, and bad values are refused before anything starts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from mock_server.cli import main
from mock_server.http.workers import _shared_state
from mock_server.settings import Settings
from tests.conftest import wait_until
from tests.wire import connect, read_to_end, request_head

START_S = 60.0
"""How long workers may take to start: each is a fresh interpreter, on two cores shared with other suites."""
STOP_S = 20.0


@dataclass
class Served:
    """A `serve --workers` process, its URL, and every line it has written so far."""

    process: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def health(self) -> dict[str, object]:
        answer: dict[str, object] = httpx.get(self.url + "/_mock/health", timeout=10).json()  # a new connection
        return answer

    def pids_by_worker(self, workers: int) -> dict[int, int]:
        """Each worker's pid, asked over new connections until every worker has answered."""
        seen: dict[int, int] = {}

        def all_seen() -> dict[int, int] | None:
            body = self.health()
            seen[int(str(body["worker"]))] = int(str(body["pid"]))
            return seen if len(seen) == workers else None

        return wait_until(all_seen, f"each of {workers} workers to answer, seen {seen}", START_S)

    def logged(self, pattern: str) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            return next((m for line in list(self.lines) if (m := re.search(pattern, line))), None)

        return wait_until(found, f"a log line matching {pattern!r}; got {self.lines}", START_S)


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`mock-llm-sse serve --port 0 ARGS` with its output (stdout and stderr) read line by line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            first.set()
        first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        first.wait(START_S)
        wait_until(lambda: any("listening on" in line for line in lines) or process.poll() is not None, "", START_S)
        banner = next((line for line in lines if "listening on" in line), None)
        assert banner is not None, f"no ready line; the server wrote {lines}"
        yield Served(process, banner.split("listening on ")[1].strip(), lines)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(STOP_S)
        reader.join(STOP_S)
        process.stdout.close()


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone for good; only its parent has not read its status yet.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.slow
def test_two_workers_each_answer_on_the_one_port_and_say_which_they_are() -> None:
    with serving("--workers", "2") as served:
        pids = served.pids_by_worker(2)
        assert sorted(pids) == [1, 2]
        assert len(set(pids.values())) == 2
        assert served.process.pid not in pids.values()  # the supervisor binds, the workers answer
        assert served.health()["workers"] == 2
        banners = [line for line in served.lines if "listening on" in line]
        assert len(banners) == 1  # one ready line, as for one process
        workers_line = next(line for line in served.lines if line.startswith("Workers: "))
        assert re.fullmatch(r"Workers: 2 processes; state: sqlite:\S+state\.sqlite3\n", workers_line)


def test_the_workers_state_file_is_made_before_any_worker_opens_it() -> None:
    # Two workers that each found a new file raced to switch it to WAL; SQLite refused the loser at once.
    with _shared_state(Settings(port=0, workers=2)) as shared:
        path = Path(shared.state.removeprefix("sqlite:"))
        with contextlib.closing(sqlite3.connect(path)) as db:
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert db.execute("SELECT name FROM sqlite_master WHERE name = 'records'").fetchone() == ("records",)
    assert not path.parent.exists()


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_log_says_so() -> None:
    with serving("--workers", "2") as served:
        pids = served.pids_by_worker(2)
        os.kill(pids[2], signal.SIGKILL)
        line = served.logged(r"worker 2 \(pid (\d+)\) died \(signal 9, SIGKILL\); started a new worker 2 \(pid (\d+)\)")
        assert int(line.group(1)) == pids[2]
        new_pid = int(line.group(2))
        assert new_pid not in pids.values()
        assert served.pids_by_worker(2) == {1: pids[1], 2: new_pid}


@pytest.mark.slow
def test_a_worker_that_dies_before_it_listens_is_started_again_after_a_pause() -> None:
    replaced = r"worker 1 \(pid \d+\) died \(signal 9, SIGKILL\); started a new worker 1 \(pid (\d+)\)"
    failed = r"worker 1 \(pid \d+\) died \(signal 9, SIGKILL\) before it listened; starting a new worker 1 in 0\.5 s"
    with serving("--workers", "2") as served:
        pids = served.pids_by_worker(2)
        os.kill(pids[1], signal.SIGKILL)
        os.kill(int(served.logged(replaced).group(1)), signal.SIGKILL)  # still starting: to the supervisor, a crash
        served.logged(failed)
        again = served.logged(r"^\S+\s+started a new worker 1 \(pid (\d+)\)")
        assert served.pids_by_worker(2) == {1: int(again.group(1)), 2: pids[2]}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_streams_and_every_worker_and_frees_the_port(sig: signal.Signals) -> None:
    with serving("--workers", "2") as served:
        pids = served.pids_by_worker(2)
        state_dir = Path(re.findall(r"state: sqlite:(\S+)", "".join(served.lines))[0]).parent
        assert state_dir.is_dir()
        streams = [connect(served.url) for _ in range(4)]
        for sock in streams:
            sock.sendall(request_head("/completions?messages=a+b+c+d+e+f&chunk_ms=1000", [("Connection", "close")]))
            assert b"data:" in sock.recv(65536) or b"data:" in sock.recv(65536)  # the head, the first chunk
        served.process.send_signal(sig)
        assert served.process.wait(STOP_S) == 0
        for sock in streams:
            with sock:
                rest, _ = read_to_end(sock)
            assert rest.endswith(b"0\r\n\r\n")  # the stream ended cleanly, as one process ends it
        assert all(gone(pid) for pid in pids.values())
        assert port_is_free(served.port)
        assert not state_dir.exists()  # the state the supervisor chose goes with it


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed() -> None:
    with serving("--workers", "2") as served:
        pids = served.pids_by_worker(2)
        served.process.kill()
        served.process.wait(STOP_S)
        wait_until(lambda: all(gone(pid) for pid in pids.values()), "every worker to stop", STOP_S)
        wait_until(lambda: port_is_free(served.port), "the port to be free", STOP_S)


@pytest.mark.slow
def test_auto_starts_a_worker_per_core_and_the_environment_sets_it(tmp_path: Path) -> None:
    state = f"sqlite:{tmp_path / 'state.sqlite3'}"
    with serving(env={"MOCK_LLM_WORKERS": "auto", "MOCK_LLM_STATE": state}) as served:
        cores = os.cpu_count() or 1
        assert served.health()["workers"] == cores
        assert len(set(served.pids_by_worker(cores).values())) == cores
        assert any(line.startswith(f"Workers: {cores} processes; state: {state}") for line in served.lines)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "'0' is not a number of processes; give 1 or more, or auto (one per core"),
        (["--workers", "x"], "'x' is not a number of processes"),
        (["--state", "foo"], "'foo' is not a state store; accepted: memory (this process alone), sqlite:PATH"),
        (["--state", "sqlite:"], "state 'sqlite:' names no file; give sqlite:PATH"),
        (["--state", "redis://localhost:x/0"], "has a port that is not a number; give redis://HOST:PORT/DB"),
        (["--workers", "2", "--state", "memory"], "memory state is per process: each of the 2 workers would see"),
    ],
    ids=["workers-0", "workers-x", "state-foo", "sqlite-no-path", "redis-bad-port", "workers-with-memory"],
)
def test_bad_workers_and_state_are_refused_with_what_is_accepted(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=STOP_S,
    )
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "state", ["memory", "sqlite:/tmp/mock.sqlite3", "sqlite:state.db", "redis://127.0.0.1:6379/0", "redis://cache"]
)
def test_settings_accept_each_state_form(state: str) -> None:
    assert Settings(state=state).state == state


@pytest.mark.parametrize("state", ["", "memory:", "sqlite:", "redis://", "redis://h:6379/zero", "postgres://h/db"])
def test_settings_refuse_other_state_forms(state: str) -> None:
    with pytest.raises(ValueError, match="state"):
        Settings(state=state)


def test_settings_refuse_a_worker_outside_the_workers() -> None:
    with pytest.raises(ValueError, match="worker must be from 1 to workers"):
        Settings(workers=2, worker=3)
    with pytest.raises(ValueError, match="workers must be a whole number of 1 or more"):
        Settings(workers=0)


def test_help_explains_workers_and_state() -> None:
    text = " ".join(CliRunner().invoke(main, ["serve", "--help"]).output.split())
    assert "--workers N|auto" in text
    assert "auto: one per core" in text
    assert "MOCK_LLM_WORKERS" in text
    assert "--state STORE" in text
    assert "redis://HOST:PORT/DB" in text
    assert "MOCK_LLM_STATE" in text
