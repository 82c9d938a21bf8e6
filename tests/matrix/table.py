"""The README's fault matrix, written from the records: a short cell per client and fault, the legend,
and the notes the records support. Nothing here depends on timing noise: gaps between attempts are
rounded to a coarse ladder, and a reconnect loop is shown by its pace, not by how often it came back
before the harness stopped it."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path

from tests.matrix.columns import CHUNK_MS, GRACE_S, REPLY, SHORT_TIMEOUT_S, TIMEOUT_S, Column
from tests.matrix.observation import Chain, ErrorLink
from tests.matrix.records import Attempt, CellRecord, Records
from tests.matrix.rows import Family, Row

BEGIN = "<!-- fault-matrix: written by scripts/fault-matrix from its records; edit tests/matrix, not this -->"
END = "<!-- /fault-matrix -->"
GAP_STEPS = ((0.3, "~1"), (1.8, "~2"), (2.8, "~3"), (3.8, "~4"), (5.6, "~6"), (7.6, "~8"))
"""What a pause is shown as: the label of the highest step it reaches. A measured pause is the client's
wait plus the time its process and the server took to get to it, never less, and on a loaded machine
(two cores, shared with the rest of the suite) that adds up to half a second. So each step starts a
little below a wait clients really make and reaches well above it: the Stainless SDKs' backoff
(0.375-0.5 s, then 0.75-1 s) and `Retry-After: 1` are ~1, the AI SDK's 2 s then 4 s are ~2 and ~4,
EventSource's 3 s is ~3."""
MESSAGE_SHOWN = {
    "TypeError",
    "Error",
    "SyntaxError",
    "RuntimeError",
    "SocketError",
    "AnthropicError",
    "DOMException",
    "Object",
}
"""Types too general to say what happened without their message."""
NODE_RESET = re.compile(r'SocketError "other side closed"|(read )?ECONNRESET|other side closed')
"""Node (libuv) reports a reset that arrives before it has read the data in front of it as the peer
closing the connection (undici: `other side closed`), and a reset after it as ECONNRESET; which one a
client meets depends on how busy its process is, so a Node row's `reset` cell shows both as one."""
NODE_RESET_SEEN = "ECONNRESET / other side closed"
MAX_MESSAGE = 48
MAX_LINKS = 3


def gap_text(seconds: float) -> str:
    label = "~0"
    for lowest, step in GAP_STEPS:
        if seconds >= lowest:
            label = step
    return label if seconds < 2 * GAP_STEPS[-1][0] else f"~{round(seconds):d}"


def _short(message: str) -> str:
    message = " ".join(message.split())
    message = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", message)
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1].rstrip() + "…"


def _is_errno(link: ErrorLink) -> bool:
    """A socket error: the errno name says it all (ConnectionResetError, Node's `read ECONNRESET`)."""
    return bool(link.code and re.fullmatch(r"E[A-Z]+", link.code)) and link.type in {
        "Error",
        "ConnectionResetError",
        "ConnectionRefusedError",
        "BrokenPipeError",
        "ConnectionAbortedError",
        "OSError",
    }


def link_text(link: ErrorLink, row: Row) -> str:
    if _is_errno(link):
        return str(link.code)
    name = link.type.removeprefix(row.own_errors).lstrip("_")
    if name in MESSAGE_SHOWN or name.startswith("onerror"):
        return f'{name} "{_short(link.message)}"' if link.message else name
    return f"{name} {link.code}" if link.code else name


def chain_text(chain: Chain, row: Row) -> str:
    """The chain outermost first, joined by ←; a link that only re-wraps the one before it under the
    same name (httpx2.ReadError ← httpcore2.ReadError) is left out."""
    shown: list[str] = []
    last_name = ""
    for link in chain:
        name = link.type.rsplit(".", 1)[-1]
        if name != last_name:
            shown.append(link_text(link, row))
        last_name = name
    if len(shown) > MAX_LINKS:
        shown = [*shown[: MAX_LINKS - 1], shown[-1]]
    return " ← ".join(shown)


def text_text(text: str) -> str:
    """`full`, `no text`, the partial text in quotes, or the text one attempt brought, repeated."""
    if text == REPLY:
        return "full"
    if not text:
        return "no text"
    one = max((REPLY[:n] for n in range(1, len(REPLY) + 1) if text.startswith(REPLY[:n])), key=len, default="")
    if one and len(text) > len(one) and (one * (len(text) // len(one) + 1)).startswith(text):
        return f'"{one}" again on each reconnect'
    return f'"{text}"'


def _asked_s(attempt: Attempt) -> float | None:
    """The wait a `Retry-After` in seconds asked for."""
    try:
        return float(attempt.retry_after) if attempt.retry_after is not None else None
    except ValueError:
        return None


def attempts_text(attempts: Sequence[Attempt], reconnecting: bool) -> str:
    """`N att` with the pauses between them, from the end of one response to the next request; a client
    that waited at least what each `Retry-After` asked is said to, which no load can make untrue."""
    gaps = [b.at_s - (a.at_s if a.ended_at_s is None else a.ended_at_s) for a, b in itertools.pairwise(attempts)]
    if reconnecting:
        paces = sorted({gap_text(gap) for gap in gaps}, key=lambda text: float(text.lstrip("~")))
        return f"reconnects every {', '.join(paces)} s"
    if not gaps:
        return f"{len(attempts)} att"
    asked = [_asked_s(attempt) for attempt in attempts[:-1]]
    if all(wait is not None and gap >= wait for wait, gap in zip(asked, gaps, strict=True)):
        return f"{len(attempts)} att, each after the Retry-After"
    return f"{len(attempts)} att ({', '.join(gap_text(gap) for gap in gaps)} s)"


def cell_text(cell: CellRecord, row: Row) -> str:
    if cell.pending is not None:
        return "pending"
    seen = cell.observation
    chains = [chain_text(chain, row) for chain in seen.errors]
    if row.family is Family.NODE and cell.fault.startswith("reset"):
        chains = [NODE_RESET.sub(NODE_RESET_SEEN, chain) for chain in chains]
    chains = list(dict.fromkeys(chains))
    reconnecting = seen.hung and len(cell.attempts) > 1
    said = " then ".join(chains) if chains else "no error"
    if seen.notes.get("errorParts"):
        said = f"error part {said}"  # reported in the stream (the AI SDK's fullStream), not raised
    parts = [said, text_text(seen.text)]
    parts.append(attempts_text(cell.attempts, reconnecting))
    if seen.hung and not reconnecting:
        waited = cell.timeout_s + GRACE_S
        parts.append(
            f"**hung**: no error {GRACE_S:g} s past its {cell.timeout_s:g} s {row.timeout}"
            if row.timeout
            else f"**hung**: silent at {waited:g} s, no timeout to give up"
        )
    for name, normal in (("stop_reason", "end_turn"), ("finishReason", "stop")):
        if name in seen.notes and seen.notes[name] != normal:
            parts.append(f"{name} {seen.notes[name]}")
    return "; ".join(parts)


def _cell_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(records: Records, rows: Sequence[Row], columns: Sequence[Column]) -> str:
    pending = {cell.column for cell in records.cells if cell.pending is not None}
    header = ["client", *(f"`{c.key}`" + (" (pending)" if c.key in pending else "") for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.label]
        for column in columns:
            cell = records.cell(row.id, column.key)
            cells.append("not run" if cell is None else cell_text(cell, row))
        lines.append("| " + " | ".join(_cell_escape(c) for c in cells) + " |")
    return "\n".join(lines)


def _versions(records: Records, rows: Sequence[Row]) -> str:
    by_family: dict[Family, list[str]] = {family: [] for family in Family}
    for row in rows:
        version = records.versions.get(row.id, "")
        entry = f"{row.package} {version}" if row.package and version else ""
        if entry and entry not in by_family[row.family]:
            by_family[row.family].append(entry)
    return (
        f"Python: {', '.join(by_family[Family.PYTHON])}; Node: {', '.join(by_family[Family.NODE])}; "
        f"Debian's Chromium: `EventSource`, {', '.join(by_family[Family.BROWSER])}"
    )


def notes(records: Records, rows: Sequence[Row], columns: Sequence[Column]) -> list[str]:
    """The facts users trip on, each only where the records show it."""
    found: list[str] = []
    stall = next((c for c in columns if c.timeout_s == SHORT_TIMEOUT_S), None)
    if stall is not None:
        hung = [r for r in rows if r.timeout and (cell := records.cell(r.id, stall.key)) and cell.observation.hung]
        if hung:
            names = "; ".join(f"{row.label} ({row.timeout})" for row in hung)
            found.append(
                f"**A timeout that does not cover a stalled body.** {names}: given {stall.timeout_s:g} s, they "
                f"were still waiting {GRACE_S:g} s later on a stream that had sent its head and then nothing. "
                "Give them a timer of your own (an `AbortSignal`) to end a stream that goes silent."
            )
    drop = next((c for c in columns if c.fault.startswith("drop@") and c.fault[5:].isdecimal()), None)
    sdks = [row for row in rows if row.family is Family.PYTHON and row.own_errors in {"openai.", "anthropic."}]
    if drop is not None:
        said = []
        for row in sdks:
            cell = records.cell(row.id, drop.key)
            if cell is None or cell.pending or not cell.observation.errors:
                continue
            chain = cell.observation.errors[0]
            version = records.versions.get(row.id, "")
            major = version.split(".")[0] + ".x" if version else ""
            wrapped = chain[0].type.startswith(row.own_errors)
            how = "its own" if wrapped else "a raw httpx error, not wrapped in its own"
            text = f"{row.package} {major} raises {how}: `{chain_text(chain, row)}`"
            if text not in said:
                said.append(text)
        if said:
            found.append(
                f"**Which exception a drop raises (`{drop.key}`), by SDK major version.** " + "; ".join(said) + "."
            )
    cut = [c for c in columns if re.fullmatch(r"(drop|reset)@\d+", c.fault)]
    statuses = [cell for cell in records.cells if cell.fault.startswith("status")]
    retried_status = [row for row in rows if any(len(c.attempts) > 1 for c in statuses if c.row == row.id)]
    not_mid_stream = [
        row
        for row in retried_status
        if cut and all((cell := records.cell(row.id, c.key)) and len(cell.attempts) == 1 for c in cut)
    ]
    if not_mid_stream:
        names = "; ".join(row.label for row in not_mid_stream)
        faults = ", ".join(f"`{c.key}`" for c in cut)
        found.append(
            f"**Retries end at the response head.** {names}: each retried an HTTP error, and made one attempt "
            f"when the stream broke after its head ({faults}): a cut stream is the caller's to retry."
        )
    node_resets = [
        cell
        for cell in records.cells
        if cell.fault.startswith("reset") and cell.row.startswith(f"{Family.NODE}:") and cell.observation.errors
    ]
    if node_resets:
        found.append(
            f"**`{NODE_RESET_SEEN}`** in the Node rows' `reset` cells: Node reports a reset that arrives "
            "before it has read the data in front of it as the server closing the connection (undici's "
            '`SocketError "other side closed"`, as for a drop), and one that arrives after as ECONNRESET. '
            "Which of the two a client meets depends on how busy its process is, against a real server too."
        )
    why: dict[str, list[str]] = {}
    for column in columns:
        reason = next((cell.pending for cell in records.cells if cell.column == column.key and cell.pending), None)
        if reason is not None:
            why.setdefault(reason, []).append(f"`{column.key}`")
    if why:
        reasons = "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in why.items())
        found.append(f"**Pending** ({reasons}): `scripts/fault-matrix` fills them in on a server that plays them.")
    return found


def section(records: Records, rows: Sequence[Row], columns: Sequence[Column]) -> str:
    """The README's generated block, markers included."""
    setup = (
        f"Each client asks for the reply `{REPLY}` (five chunks, {CHUNK_MS} ms apart) with the column's "
        "fault: in `X-Mock-Fault` from the SDKs and httpx-sse, in `?fault=` from the others. The SDKs keep "
        "their default retries (2) unless the row says otherwise; the hand-written loops (httpx-sse, "
        'eventsource, EventSource, fetch-event-source, axios) stop at `[DONE]` and raise on `{"error": ...}`. '
        f"Every client that has a timeout is given {TIMEOUT_S:g} s ({SHORT_TIMEOUT_S:g} s for the endless "
        f"stall). Versions: {_versions(records, rows)}."
    )
    reading = (
        "A cell reads: what the client raised or reported, outermost error first (`A ← B`: B caused A; a "
        "socket error by its errno name); the text it received (`full`, or the part in quotes); `N att`, the "
        "requests the server saw, with the pause before each retry (a pause under 1.8 s is ~1, then ~2, ~3, "
        "~4 s); **hung** when the client neither ended nor raised. A client that reconnects by itself is "
        "shown by its pace."
    )
    parts = [BEGIN, "", setup, "", reading, "", table(records, rows, columns), ""]
    parts += [f"- {note}" for note in notes(records, rows, columns)]
    parts += ["", END]
    return "\n".join(parts)


def splice(readme: str, block: str) -> str:
    """The README with the text between the markers (inclusive) replaced by `block`."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no fault matrix between {BEGIN!r} and {END!r}")
    return readme[:start] + block + readme[end + len(END) :]


def current(readme: str) -> str:
    """The generated block as it stands in the README."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no fault matrix between {BEGIN!r} and {END!r}")
    return readme[start : end + len(END)]


def write_readme(path: Path, block: str) -> bool:
    """Rewrite the README's matrix; returns whether it changed."""
    readme = path.read_text(encoding="utf-8")
    updated = splice(readme, block)
    if updated != readme:
        path.write_text(updated, encoding="utf-8")
    return updated != readme
