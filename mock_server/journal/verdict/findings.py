"""What a verdict says: the kinds of finding (stable codes, severity, title, advice), the findings
themselves, the checks still waiting for time to pass, and how a verdict reads as text and JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mock_server.journal.journal import RequestRecord


class Severity(StrEnum):
    """`error`: the user sees a wrong or missing answer, or the server is hammered; `warning`: the
    client copes, but worse than it should."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of finding: its stable code, severity, one-line title and how to fix the client."""

    code: str
    severity: Severity
    title: str
    advice: str


_FINDING_KINDS = [
    Kind(
        "retry_after_ignored",
        Severity.ERROR,
        "Retried sooner than Retry-After",
        "Read the Retry-After header of a 429 or 503 (seconds, or an HTTP date) and wait at least that long "
        "before retrying; the official OpenAI and Anthropic SDKs do.",
    ),
    Kind(
        "retried_non_retryable",
        Severity.ERROR,
        "Retried a request that cannot succeed",
        "Do not retry 400, 401, 403, 404 or 422: the same request gets the same answer. Show the error, or fix "
        "the request or the credentials first; retry only 408, 409, 429, 5xx and network errors.",
    ),
    Kind(
        "retry_storm",
        Severity.ERROR,
        "Too many attempts for one request",
        "Cap the attempts (the OpenAI SDK makes 3 by default) and then give up with an error the user can see; "
        "retrying without end multiplies the load on a server that is already failing.",
    ),
    Kind(
        "no_backoff",
        Severity.WARNING,
        "Retries without a growing delay",
        "Back off exponentially with jitter (e.g. 0.5 s, 1 s, 2 s, each times a random 0.75-1), so that "
        "clients failing together do not retry in lockstep.",
    ),
    Kind(
        "cut_stream_not_retried",
        Severity.WARNING,
        "No new request after a cut stream",
        "A stream that ends before its end marker (`data: [DONE]`, `message_stop`, `response.completed`), by "
        "a network error or a clean early end, is an unfinished answer. Ask again (with Last-Event-ID where "
        "events have ids), or show the user an error; never show the partial answer as if it were complete. "
        "The server cannot see which your client did: only that it did not ask again.",
    ),
    Kind(
        "reconnect_after_done",
        Severity.ERROR,
        "Reconnected after a complete stream",
        "Close the EventSource (`source.close()`) when the end marker arrives, not only on error: when the "
        "body ends, EventSource reconnects by itself and asks for the answer again.",
    ),
    Kind(
        "ignored_204",
        Severity.ERROR,
        "Asked again after 204 No Content",
        "A 204 No Content means there is nothing more to send: stop reconnecting. Native EventSource does; a "
        "polyfill or a hand-written reconnect loop must too.",
    ),
    Kind(
        "resume_without_last_event_id",
        Severity.WARNING,
        "Reconnected without Last-Event-ID",
        "Reconnect with the id of the last event received in the Last-Event-ID header, so the stream resumes "
        "instead of starting over and the user does not see the answer twice. EventSource does so when it "
        "reconnects by itself; a new EventSource does not.",
    ),
    Kind(
        "retry_field_ignored",
        Severity.WARNING,
        "Reconnected sooner than retry:",
        "Wait the reconnection time the stream set with `retry:` before reconnecting; EventSource and "
        "fetch-event-source do, a hand-written reconnect loop must too.",
    ),
    Kind(
        "no_read_timeout",
        Severity.ERROR,
        "Waited on a silent stream without giving up",
        "Set a read timeout, the longest silence between two events you accept (httpx.Timeout(read=...), the "
        "SDKs' timeout=, or a timer reset on every event), then retry or show an error.",
    ),
    Kind(
        "close_event_ignored",
        Severity.WARNING,
        "Kept the connection open after a close event",
        "Close the stream when the server sends `event: close` (EventSource: "
        "`source.addEventListener('close', () => source.close())`; fetch-event-source: abort on "
        "`msg.event === 'close'`).",
    ),
    Kind(
        "tool_result_missing",
        Severity.ERROR,
        "Went on without a tool call's result",
        "After an answer with tool calls, run each call and append its result (OpenAI: a `tool` message with "
        "its `tool_call_id`; Anthropic: a `tool_result` block with its `tool_use_id`; Responses: a "
        "`function_call_output` with its `call_id`) for every call before asking again. If the client gives "
        "up on a call, start afresh without the call in the history; a provider refuses a history that holds "
        "a call without its result.",
    ),
    Kind(
        "tool_call_repeated",
        Severity.ERROR,
        "Sent a tool call's result twice",
        "Run each tool call once and send its result once: keep the ids of the calls already answered (their "
        "results stay in the history, where they belong) and answer only the new calls of the last answer. A "
        "call run twice may act twice (an email sent twice), and a provider refuses a second result.",
    ),
    Kind(
        "rate_limit_ignored",
        Severity.ERROR,
        "Kept sending after a rate limit's 429",
        "A rate limit's 429 is about the key, not only the request it refused: hold every request with that "
        "key until its Retry-After has passed (a shared limiter or a pause in the client's queue), instead of "
        "sending other requests meanwhile, which the limit refuses too.",
    ),
]
FINDING_KINDS: dict[str, Kind] = {kind.code: kind for kind in _FINDING_KINDS}
"""Every kind of finding by code, in the order a verdict lists them."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a client got wrong: its kind, what happened (`detail`), and the records it is about."""

    code: str
    severity: Severity
    title: str
    detail: str
    advice: str
    records: tuple[int, ...]

    @classmethod
    def of(cls, code: str, detail: str, records: Iterable[RequestRecord]) -> Finding:
        kind = FINDING_KINDS[code]
        ids = tuple(sorted({record.id for record in records}))
        return cls(code, kind.severity, kind.title, detail, kind.advice, ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "advice": self.advice,
            "records": list(self.records),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            data["code"],
            Severity(data["severity"]),
            data["title"],
            data["detail"],
            data["advice"],
            tuple(data["records"]),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """A check that cannot be decided before `decided_at` (Unix time): it waits for something not to
    happen, e.g. a retry after a cut stream."""

    code: str
    records: tuple[int, ...]
    decided_at: float

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "records": list(self.records), "decided_at": self.decided_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pending:
        return cls(data["code"], tuple(data["records"]), data["decided_at"])


@dataclass(frozen=True, slots=True)
class Verdict:
    """The findings on the requests judged at `judged_at`, with the calls they were grouped into."""

    judged_at: float
    findings: tuple[Finding, ...] = ()
    pending: tuple[Pending, ...] = ()
    calls: tuple[tuple[int, ...], ...] = ()
    records: tuple[RequestRecord, ...] = field(default=(), compare=False)
    """The snapshots judged (not in the JSON, which counts them; `GET /_mock/requests` has them)."""
    judged: int = 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def to_json(self) -> dict[str, Any]:
        return {
            "judged_at": self.judged_at,
            "requests": self.judged,
            "calls": [list(call) for call in self.calls],
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [finding.to_json() for finding in self.findings],
            "pending": [check.to_json() for check in self.pending],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            judged_at=data["judged_at"],
            findings=tuple(Finding.from_json(f) for f in data["findings"]),
            pending=tuple(Pending.from_json(p) for p in data["pending"]),
            calls=tuple(tuple(call) for call in data["calls"]),
            judged=data["requests"],
        )

    def summary(self) -> str:
        """One line: how many findings of each severity, in how many requests and calls."""
        scope = f"{self.judged} request(s) in {len(self.calls)} call(s)"
        line = (
            f"{len(self.findings)} finding(s), {len(self.errors)} error(s) and {len(self.warnings)} warning(s), "
            f"in {scope}."
            if self.findings
            else f"No findings in {scope}."
        )
        if self.pending:
            codes = ", ".join(sorted({check.code for check in self.pending}))
            line += f" {len(self.pending)} check(s) still waiting for time to pass ({codes})."
        return line

    def table(self) -> str:
        """The findings as a table (code, severity, title, records), then each one's detail and advice."""
        if not self.findings:
            return self.summary()
        rows = [("CODE", "SEVERITY", "TITLE", "RECORDS")]
        rows += [(f.code, f.severity.value, f.title, " ".join(f"#{i}" for i in f.records)) for f in self.findings]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        lines = ["  ".join([*(row[c].ljust(widths[c]) for c in range(3)), row[3]]) for row in rows]
        return "\n".join([*lines, "", self.details(), "", self.summary()])

    def details(self, records: Mapping[int, RequestRecord] | None = None) -> str:
        """Each finding with what happened, the advice and (when known) its records, one block each."""
        known = records if records is not None else {r.id: r for r in self.records}
        blocks = []
        for number, finding in enumerate(self.findings, start=1):
            lines = [
                f"{number}. [{finding.severity.value}] {finding.code}: {finding.title}",
                f"   {finding.detail}",
                f"   Fix: {finding.advice}",
            ]
            lines += [f"   {known[i].summary()}" for i in finding.records if i in known]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def report(self) -> str:
        """The verdict for a failed `assert_client_behaved()`: the summary, then every finding in full."""
        return "\n\n".join(filter(None, ["The client misbehaved: " + self.summary(), self.details()]))
