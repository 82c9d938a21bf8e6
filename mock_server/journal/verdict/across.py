"""The rules that look across calls: an agent loop's tool calls and their results through a
conversation, and a rate limit through every request of the client it counts.

A request continues the answer that handed out a tool call when its history holds that call: in the
same conversation (`X-Mock-Conversation`, `convGroupId`, a Responses chain) when both name one, else
the latest answer that handed it out. A request whose history does not hold the call is not judged
by it: a client may give up on a call and start afresh, and a retry repeats the request before it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from mock_server.journal.journal import RequestRecord
from mock_server.journal.verdict.calls import EARLY_S, Call, retry_after_s
from mock_server.journal.verdict.findings import Finding


class _Answers:
    """The latest record that handed out each tool call, by call id and conversation."""

    def __init__(self) -> None:
        self._keyed: dict[tuple[str, str], RequestRecord] = {}
        self._unkeyed: dict[str, RequestRecord] = {}
        self._any: dict[str, RequestRecord] = {}

    def add(self, record: RequestRecord) -> None:
        for call in record.tools.calls if record.tools is not None else ():
            self._any[call.id] = record
            if record.conversation is None:
                self._unkeyed[call.id] = record
            else:
                self._keyed[(call.id, record.conversation)] = record

    def find(self, call_id: str, conversation: str | None) -> RequestRecord | None:
        """The latest answer with the call that a request of `conversation` can continue."""
        if conversation is None:
            return self._any.get(call_id)
        found = [r for r in (self._keyed.get((call_id, conversation)), self._unkeyed.get(call_id)) if r is not None]
        return max(found, key=lambda r: r.id, default=None)


def _in_order(calls: Sequence[Call]) -> list[RequestRecord]:
    return sorted((record for call in calls for record in call.attempts), key=lambda r: r.id)


def _call_name(answer: RequestRecord | None, call_id: str) -> str:
    names = {call.id: call.name for call in answer.tools.calls} if answer is not None and answer.tools else {}
    return f"{names[call_id]} ({call_id})" if call_id in names else call_id


def _more(count: int, what: str) -> str:
    return f"; {count} more {what}" if count else ""


def tool_result_missing(calls: Sequence[Call]) -> Iterator[Finding]:
    """An answer's tool call that a later request holds in its history without a result for it."""
    answers = _Answers()
    missing: dict[int, tuple[RequestRecord, dict[str, None], list[RequestRecord]]] = {}
    for record in _in_order(calls):
        tools = record.tools
        for call_id in tools.unanswered if tools is not None else ():
            answer = answers.find(call_id, record.conversation)
            if answer is None:
                continue  # not a call this server handed out (or not among the records judged)
            _, ids, later = missing.setdefault(answer.id, (answer, {}, []))
            ids[call_id] = None
            if not later or later[-1] is not record:
                later.append(record)
        answers.add(record)
    for answer, ids, later in missing.values():
        shown = ", ".join(_call_name(answer, call_id) for call_id in ids)
        detail = (
            f"#{answer.id} answered with a tool call, {shown}; #{later[0].id} went on with the call in its "
            f"history but no result for it{_more(len(later) - 1, 'request(s) did too')}. A provider refuses "
            "such a request (OpenAI: 400, an assistant message with 'tool_calls' must be followed by tool "
            "messages responding to each 'tool_call_id')."
        )
        yield Finding.of("tool_result_missing", detail, [answer, *later])


def tool_call_repeated(calls: Sequence[Call]) -> Iterator[Finding]:
    """A result brought back for a tool call that the request's history had already answered."""
    answers = _Answers()
    repeats: dict[tuple[str | None, str], tuple[RequestRecord | None, list[RequestRecord]]] = {}
    for record in _in_order(calls):
        tools = record.tools
        for call_id in dict.fromkeys(tools.repeated if tools is not None else ()):
            key = (record.conversation, call_id)
            if key not in repeats:
                repeats[key] = (answers.find(call_id, record.conversation), [])
            repeats[key][1].append(record)
        answers.add(record)
    for (_, call_id), (answer, found) in repeats.items():
        first = found[0]
        made = f", which #{answer.id} handed out," if answer is not None else ""
        detail = (
            f"#{first.id} sent a result for the tool call {_call_name(answer, call_id)}{made} when its history "
            f"already answered it: the call was run or sent twice{_more(len(found) - 1, 'time(s)')}."
        )
        yield Finding.of("tool_call_repeated", detail, [*([answer] if answer is not None else []), *found])


def rate_limit_ignored(calls: Sequence[Call]) -> Iterator[Finding]:
    """Requests of a client that a rate limit had refused, sent before the `Retry-After` it was given.

    A request counts against the refusing limit when it comes from the same client and, for a
    scenario's own limit, selects the same scenario; it is judged when it arrives at least REACTION_S
    after the refusal ended, when the client had read it. A retry of a refused request is the business of
    `retry_after_ignored`, which judges its wait: it is not judged here again.
    """
    retries = {
        retry.repeat.id for call in calls for retry in call.retries() if retry_after_s(retry.attempt) is not None
    }
    by_client: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in _in_order(calls):
        if record.rate_limit_key is not None:
            by_client[record.rate_limit_key].append(record)
    for client, records in by_client.items():
        pairs = list(_too_soon(records, retries))
        if not pairs:
            continue
        refused, came = pairs[0]
        assert refused.ended_at is not None
        detail = (
            f"#{came.id} came {came.received_at - refused.ended_at:.2f} s after #{refused.id} was refused 429 by a "
            f"rate limit with Retry-After: {refused.retry_after}, from the same client ({client}) and asking "
            f"something else{_more(len(pairs) - 1, 'time(s)')}."
        )
        yield Finding.of("rate_limit_ignored", detail, [record for pair in pairs for record in pair])


REACTION_S = 0.1
"""How long after a refusal a request may still arrive that the client sent before it read the 429
(one of a batch sent at once): such a request is not judged."""


def _too_soon(records: list[RequestRecord], retries: set[int]) -> Iterator[tuple[RequestRecord, RequestRecord]]:
    """Each request of one client that came before the wait of a refusal it had seen, with that refusal."""
    refusals = sorted(
        (r for r in records if r.rate_limited and r.ended_at is not None and retry_after_s(r) is not None),
        key=lambda r: r.ended_at or 0.0,
    )
    if not refusals:
        return
    seen = 0
    server: RequestRecord | None = None  # the refusal seen so far whose wait ends last, by a server-wide limit
    by_scenario: dict[str | None, RequestRecord] = {}  # ... by each scenario's own limit
    for record in sorted(records, key=lambda r: r.received_at):
        while seen < len(refusals) and (refusals[seen].ended_at or 0.0) + REACTION_S <= record.received_at:
            refusal = refusals[seen]
            if refusal.rate_limited == "server":
                server = max(server, refusal, key=until) if server is not None else refusal
            else:
                known = by_scenario.get(refusal.scenario)
                by_scenario[refusal.scenario] = max(known, refusal, key=until) if known is not None else refusal
            seen += 1
        binding = max(server, by_scenario.get(record.scenario), key=until)
        if binding is not None and record.id not in retries and record.received_at < until(binding) - EARLY_S:
            yield binding, record


def until(refusal: RequestRecord | None) -> float:
    """When the wait a refusal asked for is over (0 for no refusal)."""
    if refusal is None:
        return 0.0
    return (refusal.ended_at or refusal.received_at) + (retry_after_s(refusal) or 0.0)


ACROSS_CALLS: tuple[Callable[[Sequence[Call]], Iterator[Finding]], ...] = (
    tool_result_missing,
    tool_call_repeated,
    rate_limit_ignored,
)
