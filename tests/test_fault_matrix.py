"""The README's fault matrix is what the clients see now: the matrix is played through every client and
the table written from it must equal the README's. The fast tests pin the rules that keep a cell the
same from run to run."""

from __future__ import annotations

import pytest

from mock_server.http.server import MockServer
from mock_server.settings import Settings
from tests.matrix.__main__ import README, RECORDS, diff
from tests.matrix.columns import COLUMNS, REPLY, Column
from tests.matrix.observation import ErrorLink, Observation
from tests.matrix.records import Attempt, CellRecord, Records
from tests.matrix.rows import ROWS, Family, Row
from tests.matrix.run import pending_faults, run_matrix
from tests.matrix.table import BEGIN, END, cell_text, gap_text, section, splice, text_text

NODE_SDK = next(row for row in ROWS if row.family is Family.NODE and row.key == "openai")
PYTHON_SDK = next(row for row in ROWS if row.family is Family.PYTHON and row.key == "openai")


def attempt(at_s: float, ended_at_s: float, retry_after: str | None = None) -> Attempt:
    return Attempt(at_s, ended_at_s, 500, "error_status", 0, retry_after)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.alone
def test_readme_fault_matrix_is_what_the_clients_see() -> None:
    records = run_matrix(ROWS, COLUMNS)
    records.save(RECORDS)  # `scripts/fault-matrix --from-records` writes the README from these

    played = [cell for cell in records.cells if cell.pending is None]
    assert played, "every column is pending: the server refused every fault"
    unseen = [(cell.row, cell.column) for cell in played if not cell.attempts]
    assert not unseen, f"no request in the journal for {unseen}"
    changes = diff(README, section(records, ROWS, COLUMNS))
    assert not changes, (
        "README.md's fault matrix is not what the clients see now. If the change is intended, write it "
        f"with `scripts/fault-matrix --from-records` (records: {RECORDS}) and review the diff:\n{changes}"
    )


def test_unknown_fault_is_pending_and_known_ones_are_played() -> None:
    with MockServer(settings=Settings(port=0, access_log=False)) as server:
        server.add_scenario("matrix", reply=REPLY, chunk_ms=0)
        pending = pending_faults(server, [Column("drop@3"), Column("status:429"), Column("dorp@3")])

    assert list(pending) == ["dorp@3"]
    assert pending["dorp@3"] == "not known to this server yet"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.05, "~0"),
        (0.376, "~1"),  # the Stainless SDKs' first backoff, 0.375-0.5 s
        (0.5 + 0.6, "~1"),  # ... on a loaded machine
        (1.0, "~1"),  # Retry-After: 1
        (2.0, "~2"),  # the AI SDK's first backoff
        (2.0 + 0.7, "~2"),
        (3.0, "~3"),  # EventSource's reconnection time
        (4.0, "~4"),
        (30.0, "~30"),
    ],
)
def test_pause_is_shown_by_the_step_it_reaches(seconds: float, shown: str) -> None:
    assert gap_text(seconds) == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (REPLY, "full"),
        ("", "no text"),
        ("You said:", '"You said:"'),
        ("You said: hello hello there 你好", '"You said: hello hello there 你好"'),
        ("You said: helloYou said: helloYou", '"You said: hello" again on each reconnect'),
        (REPLY * 2, f'"{REPLY}" again on each reconnect'),
    ],
)
def test_text_is_full_partial_or_repeated(text: str, shown: str) -> None:
    assert text_text(text) == shown


def test_retries_that_waited_each_retry_after_say_so_whatever_the_pause() -> None:
    slow = [attempt(0, 0.01, "1"), attempt(1.6, 1.61, "1"), attempt(2.7, 2.71, "1")]
    cell = CellRecord("python:openai", "status:429", "status:429", None, Observation(ended=True), slow, 5)

    assert cell_text(cell, PYTHON_SDK) == "no error; no text; 3 att, each after the Retry-After"


def test_retries_without_retry_after_show_their_pauses() -> None:
    backoff = [attempt(0, 0.01), attempt(0.45, 0.46), attempt(1.4, 1.41)]
    cell = CellRecord("python:openai", "status:500", "status:500", None, Observation(ended=True), backoff, 5)

    assert cell_text(cell, PYTHON_SDK).endswith("3 att (~1, ~1 s)")


def test_node_reset_reads_the_same_whether_libuv_saw_the_reset_or_the_close() -> None:
    closed = [ErrorLink("TypeError", "terminated"), ErrorLink("SocketError", "other side closed", "UND_ERR_SOCKET")]
    reset = [ErrorLink("TypeError", "terminated"), ErrorLink("Error", "read ECONNRESET", "ECONNRESET")]
    cells = [
        CellRecord("node:openai", "reset@3", "reset@3", None, Observation(errors=[chain], ended=True))
        for chain in (closed, reset)
    ]
    shown = {cell_text(cell, NODE_SDK) for cell in cells}

    assert shown == {'TypeError "terminated" ← ECONNRESET / other side closed; no text; 0 att'}


def test_drop_keeps_the_close_a_node_client_saw() -> None:
    closed = [ErrorLink("TypeError", "terminated"), ErrorLink("SocketError", "other side closed", "UND_ERR_SOCKET")]
    cell = CellRecord("node:openai", "drop@3", "drop@3", None, Observation(errors=[closed], ended=True))

    assert cell_text(cell, NODE_SDK).startswith('TypeError "terminated" ← SocketError "other side closed"')


def test_chain_leaves_out_rewraps_and_names_the_socket_error_by_errno() -> None:
    chain = [
        ErrorLink("openai.APIConnectionError", "Connection error."),
        ErrorLink("httpx2.ReadError", "[Errno 104] Connection reset by peer"),
        ErrorLink("httpcore2.ReadError", "[Errno 104] Connection reset by peer"),
        ErrorLink("ConnectionResetError", "[Errno 104] Connection reset by peer", "ECONNRESET"),
    ]
    cell = CellRecord("python:openai", "reset@3", "reset@3", None, Observation(errors=[chain], ended=True))

    assert cell_text(cell, PYTHON_SDK).startswith("APIConnectionError ← httpx2.ReadError ← ECONNRESET;")


def test_hung_client_with_a_timeout_is_told_from_one_without() -> None:
    stalled = Observation(text="You said:", hung=True)
    cell = CellRecord("x", "stall@2", "stall@2", None, stalled, [attempt(0, 7)], 2)
    without = Row("eventsource", Family.NODE, "eventsource", "eventsource", timeout=None)

    assert cell_text(cell, NODE_SDK).endswith("**hung**: no error 5 s past its 2 s `timeout`")
    assert cell_text(cell, without).endswith("**hung**: silent at 7 s, no timeout to give up")


def test_pending_column_is_marked_in_the_header_and_noted() -> None:
    columns = [Column("drop@3"), Column("drop@head")]
    cells = [CellRecord(row.id, "drop@head", "drop@head", "unknown") for row in ROWS]
    block = section(Records({}, cells), ROWS, columns)

    assert "`drop@head` (pending)" in block
    assert "**Pending** (`drop@head`: unknown)" in block
    assert "not run" in block  # drop@3 has no records here


def test_splice_replaces_only_the_block_between_the_markers() -> None:
    readme = f"intro\n{BEGIN}\nold\n{END}\noutro\n"

    assert splice(readme, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError, match="no fault matrix"):
        splice("no markers here", "x")
