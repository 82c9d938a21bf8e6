"""Compiling a scenario, a request's overrides and its context into one timeline of steps.

The compiler is the only place that knows how a reply becomes chunks, where pacing sleeps go and
where faults sit (`@N`: at the moment chunk N is due, before it is sent). Everything after it,
dialects and transport, plays the timeline as given.
"""

from __future__ import annotations

import hashlib
import random
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field

from mock_server.errors import ReplyTooLongError
from mock_server.scenarios import steps
from mock_server.scenarios.conversation import NO_CONVERSATION, Conversation
from mock_server.scenarios.faults import Fault, FaultKind
from mock_server.scenarios.headers import merge_headers, sent
from mock_server.scenarios.latency import Fixed, Latency
from mock_server.scenarios.model import Reply, Scenario, ToolCallSpec
from mock_server.scenarios.recording import Recording
from mock_server.scenarios.steps import Ending, ErrorEvent, Step
from mock_server.timeline.cache import BoundedCache
from mock_server.timeline.chunking import Chunking, split_reply
from mock_server.timeline.latency import LatencyDraws
from mock_server.timeline.overrides import Overrides
from mock_server.timeline.structured import OutputFormat, structured_reply
from mock_server.timeline.tokens import count_tokens
from mock_server.timeline.tool_loop import AUTO_REPLY, answered, auto_calls

DEFAULT_RETRY_AFTER = "1"
MAX_CHUNKS = 50_000
MAX_REPLY_CHARS = 4 << 20
"""A response is prepared whole before it streams, while every other stream waits: these bound that
time (a fraction of a second) and its memory. The bundled `long-reply` has 700 chunks."""
STEP_BYTES = 80
"""A step object with its slot in the timeline and its small fields (measured: 64-80)."""
FAULT_BYTES = 800
"""An override's fault, as a cache key holds it (measured: 770)."""
_ITEM = steps.Text("")
"""An item of an answer the route makes itself (`RequestContext.items`): a chunk with no text."""


@dataclass(frozen=True, slots=True)
class Usage:
    """A response's tokens in OpenAI's sense (each dialect renders them in its own shape)."""

    prompt_tokens: int
    """The prompt's tokens, `cached_tokens` and `cache_creation_tokens` among them."""
    completion_tokens: int
    """The answer's tokens, `reasoning_tokens` among them."""
    prompt_ms: float = 0.0
    """The waits before the first chunk: how long the prompt took, for providers that report it (Ollama)."""
    completion_ms: float = 0.0
    """The waits from the first chunk to the finish: how long the answer took."""
    cached_tokens: int = 0
    """Of the prompt's tokens, those read from a prompt cache."""
    cache_creation_tokens: int = 0
    """Of the prompt's tokens, those written to a prompt cache (Anthropic reports them)."""
    reasoning_tokens: int = 0
    """Of the answer's tokens, those of its reasoning."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What the compiler needs to know about the request."""

    prompt: str = ""
    model: str | None = None
    resumed: bool = False
    selection: int = 1
    """How many requests have selected this scenario since start or reset, this one included."""
    fault_counts: tuple[tuple[str, int], ...] = ()
    """For each counted fault the request carries (`drop@3!times=2`): how many requests have carried
    its text since start or reset, this one included; `times` counts these, not the selections."""
    close_events: bool = True
    """Whether the route answers with `event: close` (the custom-backend convention of /completions);
    elsewhere a `close` fault ends the stream early and cleanly, as a provider's server can."""
    items: int | None = None
    """The answer is this many items the route makes from the request (an embeddings response, a
    vector an item) instead of the scenario's reply: `@N` faults count the items, and only
    `first_chunk_ms` paces them, as the wait before the answer."""
    reply: int = 0
    """Which of the scenario's `replies` answers (its place in the conversation's sequence)."""
    output: OutputFormat | None = None
    """The JSON the request asks for: the reply is made valid against its schema (structured output)."""
    conversation: Conversation = NO_CONVERSATION
    """The request's conversation: the tools it offers and the results it brings (`tool_mode: auto`)."""


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Timeline:
    """Everything one response will do, in order."""

    scenario: str
    steps: tuple[Step, ...] = ()
    head: tuple[Step, ...] = ()
    """What happens before the status line: a wait (`stall@head:ms`), or the connection ending there."""
    status: int = 200
    error: ErrorEvent | None = None
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    """The Content-Type the scenario asks for; None: the framing's (SSE's, NDJSON's, ...)."""
    end_marker: bool = True
    ids: bool = False
    keepalive_ms: float | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    from_upstream: bool = False
    """The events are an upstream's own (a recording, or a live stream when `live`): played as they
    are, with `status`, no dialect framing around them and no end marker added."""
    live: bool = False
    """The response comes from the upstream as it is asked (a proxy): `steps` is empty and
    `live_faults` strike between its events, as a FaultCursor places them."""
    live_faults: tuple[Fault, ...] = ()
    """For a live response, `end_marker` False (`no_done`) leaves out the upstream's end marker."""
    tool_calls: tuple[tuple[str, str], ...] = ()
    """The tool calls the answer makes, as (call id, tool name), up to where a fault cuts it."""
    ending: Ending = field(default=Ending.NO_DONE, init=False, compare=False)
    """How the stream ends when nothing cuts it short."""
    retry_ms: int | None = field(default=None, init=False, compare=False)
    """The reconnection time the stream sets with `retry:` (the last one, when it sets several)."""

    def __post_init__(self) -> None:
        # Both read every step: found once here, not on each request that plays the timeline (a cached
        # timeline of 20,000 steps took a millisecond before every first byte).
        object.__setattr__(self, "ending", self._ending())
        object.__setattr__(self, "retry_ms", self._retry_ms())

    @property
    def head_cut(self) -> Ending | None:
        """How the connection ends before the status line (drop, reset, stall), or None."""
        return steps.ending_of(self.head[-1]) if self.head else None

    def _ending(self) -> Ending:
        ending = steps.ending_of(self.steps[-1]) if self.steps else None
        if ending is not None:
            return ending
        if self.end_marker:
            return Ending.DONE
        if any(isinstance(step, steps.RawEvent) and step.event == "close" for step in self.steps):
            return Ending.CLOSE
        return Ending.NO_DONE

    def _retry_ms(self) -> int | None:
        values = [step.retry for step in self.steps if isinstance(step, steps.RawEvent) and step.retry is not None]
        return values[-1] if values else None

    def estimated_bytes(self) -> int:
        """Roughly the memory this timeline holds: its steps, and the text and bytes it made for them
        (the rest, from the scenario, the scenario holds). Within 20% of tracemalloc's count for a
        timeline of a 1 MiB prompt."""
        made = sum(sys.getsizeof(step.text) for step in self.steps if isinstance(step, steps.Text | steps.Reasoning))
        made += sum(
            sys.getsizeof(step.arguments if isinstance(step, steps.ToolCallArguments) else step.data)
            for step in self.steps
            if isinstance(step, steps.ToolCallArguments | steps.Raw)
        )
        return len(self.steps) * STEP_BYTES + made


def compile_timeline(scenario: Scenario, overrides: Overrides, context: RequestContext) -> Timeline:
    """The timeline of one response; the same inputs always give the same timeline."""
    seed = overrides.seed if overrides.seed is not None else scenario.seed
    faults = _active_faults([*scenario.faults, *overrides.faults], seed, context)
    head = _head_steps([f for f in faults if f.at_head])
    if head and steps.ends_stream(head[-1]):
        return Timeline(scenario.name, head=tuple(head))

    status_fault = next((f for f in faults if f.kind is FaultKind.STATUS), None)
    if status_fault is not None or scenario.status != 200:
        status = status_fault.status if status_fault and status_fault.status else scenario.status
        error = None
        if status_fault and (status_fault.message or status_fault.type or status_fault.code):
            default = steps.ErrorEvent()
            error = steps.ErrorEvent(
                status_fault.message or default.message, status_fault.type or default.type, status_fault.code
            )
        defaults = {"Retry-After": DEFAULT_RETRY_AFTER} if status == 429 else {}
        given = merge_headers(defaults, scenario.headers, status_fault.headers if status_fault else {})
        return Timeline(scenario.name, head=tuple(head), status=status, error=error, headers=sent(given))

    latency = _latency(scenario, overrides, items=context.items is not None)
    pacing = _Pacing(
        chunk_ms=_pick(overrides.chunk_ms, scenario.chunk_ms),
        first_chunk_ms=_pick(overrides.first_chunk_ms, scenario.first_chunk_ms),
        jitter=random.Random(f"jitter:{seed}") if _pick(overrides.jitter_ms, scenario.jitter_ms) else None,
        jitter_ms=_pick(overrides.jitter_ms, scenario.jitter_ms),
        latency=LatencyDraws(latency, seed, context.model) if latency is not None else None,
    )
    placed = [f for f in faults if f.positional and not f.at_head]
    no_done = any(f.kind is FaultKind.NO_DONE for f in faults)
    if scenario.recording is not None:
        return _recorded_timeline(scenario, scenario.recording, placed, head, no_done=no_done)
    if scenario.proxy:
        live_faults = tuple(sorted(placed, key=lambda f: f.chunk))
        return Timeline(
            scenario.name,
            head=tuple(head),
            end_marker=not no_done,
            from_upstream=True,
            live=True,
            live_faults=live_faults,
        )
    if context.items is not None:
        content: list[Step] = [*([_ITEM] * context.items), steps.Finish()]
        pacing.chunk_ms = 0
    else:
        content = _content_steps(scenario, context, seed)
    timeline_steps, cut = _place(content, placed, pacing, close_events=context.close_events)
    if scenario.retry_ms is not None:
        timeline_steps.insert(0, steps.RawEvent(retry=scenario.retry_ms))
    return Timeline(
        scenario=scenario.name,
        steps=tuple(timeline_steps),
        head=tuple(head),
        headers=sent(scenario.headers),
        content_type=scenario.content_type if "content_type" in scenario.model_fields_set else None,
        end_marker=scenario.done and not no_done and not cut,
        ids=scenario.ids,
        keepalive_ms=scenario.keepalive_ms,
        usage=_usage(scenario, context, timeline_steps),
        tool_calls=tuple((s.call_id, s.name) for s in timeline_steps if isinstance(s, steps.ToolCallStart)),
    )


def _usage(scenario: Scenario, context: RequestContext, timeline_steps: list[steps.Step]) -> Usage:
    """The tokens of the prompt and of the answer as sent (a cut stream's, up to the cut), counted
    with the model's tokenizer, then the scenario's `usage:` over them."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, list[str]] = {}
    for step in timeline_steps:
        match step:
            case steps.Text(piece):
                text.append(piece)
            case steps.Reasoning(piece):
                reasoning.append(piece)
            case steps.ToolCallStart(index=index, name=name):
                calls.setdefault(index, []).append(name + " ")
            case steps.ToolCallArguments(index=index, arguments=arguments):
                calls.setdefault(index, []).append(arguments)
    model = context.model
    prompt = max(1, count_tokens(context.prompt, model))
    reasoning_tokens = count_tokens("".join(reasoning), model)
    completion = count_tokens("".join(text), model) + reasoning_tokens
    completion += sum(count_tokens("".join(call), model) for call in calls.values())
    scripted = scenario.usage
    if scripted is not None:
        cache = scripted.cached_tokens + scripted.cache_creation_tokens
        prompt = scripted.prompt_tokens if scripted.prompt_tokens is not None else max(prompt, cache)
        answer = completion - reasoning_tokens
        if scripted.reasoning_tokens is not None:  # reasoning the stream does not show: the answer's tokens and it
            reasoning_tokens = scripted.reasoning_tokens
        completion = scripted.completion_tokens if scripted.completion_tokens is not None else answer + reasoning_tokens
        reasoning_tokens = min(reasoning_tokens, completion)
    return Usage(
        prompt,
        completion,
        *_waits_ms(timeline_steps),
        cached_tokens=scripted.cached_tokens if scripted is not None else 0,
        cache_creation_tokens=scripted.cache_creation_tokens if scripted is not None else 0,
        reasoning_tokens=reasoning_tokens,
    )


def _latency(scenario: Scenario, overrides: Overrides, *, items: bool) -> Latency | None:
    """The latency that paces the response: the request's preset, else the scenario's; a request's
    `first_chunk_ms` or `chunk_ms` replaces its time to first token or between tokens with a fixed
    wait. Items (an embeddings answer) wait only before the answer."""
    latency = overrides.latency or scenario.latency
    if latency is None:
        return None
    update: dict[str, object] = {}
    if overrides.first_chunk_ms is not None:
        update["ttft_ms"] = Fixed(dist="fixed", ms=overrides.first_chunk_ms)
    if overrides.chunk_ms is not None or items:
        between = Fixed(dist="fixed", ms=overrides.chunk_ms) if overrides.chunk_ms is not None and not items else None
        update.update(itl_ms=between, tokens_per_s=None)
    return latency.model_copy(update=update) if update else latency


def _waits_ms(timeline_steps: list[steps.Step]) -> tuple[float, float]:
    """The sleeps (pacing, `delay`, `sleep_ms`) before the first chunk and after it; stalls are the
    network's, not the model's, and do not count."""
    before = after = 0.0
    chunked = False
    for step in timeline_steps:
        if isinstance(step, steps.CHUNK_STEPS):
            chunked = True
        elif isinstance(step, steps.Sleep):
            if chunked:
                after += step.ms
            else:
                before += step.ms
    return before, after


def _recorded_timeline(
    scenario: Scenario, recording: Recording, faults: list[Fault], head: list[Step], *, no_done: bool
) -> Timeline:
    """A recording played again: its events at their recorded moments (scaled by `speed`), each a
    chunk that `@N` faults count; `no_done` leaves out its last event (the end marker of a stream)."""
    events = recording.events[:-1] if no_done else recording.events
    content: list[Step] = []
    previous_ms = 0.0
    for event in events:
        if scenario.speed and event.at_ms > previous_ms:
            content.append(steps.Sleep((event.at_ms - previous_ms) / scenario.speed))
        previous_ms = event.at_ms
        content.append(steps.UpstreamEvent(event.data) if event.counted else steps.UpstreamComments(event.data))
    timeline_steps, _ = _place(content, faults, _Pacing(0, 0, None, 0), close_events=False)
    return Timeline(
        scenario=scenario.name,
        steps=tuple(timeline_steps),
        head=tuple(head),
        status=recording.status,
        headers=sent(scenario.headers),
        content_type=scenario.content_type if "content_type" in scenario.model_fields_set else None,
        end_marker=False,
        from_upstream=True,
    )


class FaultCursor:
    """Places a live stream's faults as its events arrive: `before(n)` gives the steps of the faults
    due before event `n` (counted from 0), `rest()` those still pending when the stream ends."""

    def __init__(self, faults: tuple[Fault, ...], *, close_events: bool) -> None:
        self._pending = faults
        self._placed = 0
        self._close_events = close_events
        self.cut = False
        """True once a fault has ended the stream: nothing more is placed."""

    def before(self, event: int) -> list[Step]:
        due_end = self._placed
        while due_end < len(self._pending) and self._pending[due_end].chunk <= event:
            due_end += 1
        return self._emit(self._pending[self._placed : due_end], due_end)

    def rest(self) -> list[Step]:
        return self._emit(self._pending[self._placed :], len(self._pending))

    def next_at(self) -> int | None:
        """Where the next pending fault is due (None when none is, or the stream is cut)."""
        return None if self.cut or self._placed >= len(self._pending) else self._pending[self._placed].chunk

    def _emit(self, due: tuple[Fault, ...], placed: int) -> list[Step]:
        self._placed = placed
        out: list[Step] = []
        if not self.cut and due:
            self.cut = _emit_faults(list(due), out, _Pacing(0, 0, None, 0), close_events=self._close_events)
        return out


def _head_steps(faults: list[Fault]) -> list[steps.Step]:
    """The steps of the faults that strike before the status line, up to the first that ends it all."""
    head: list[steps.Step] = []
    for fault in faults:
        head.extend(fault.to_steps())
        if fault.ends_stream:
            break
    return head


class TimelineCache:
    """Compiled timelines by their inputs, the most recently used kept up to `max_bytes` (estimated):
    compiling is pure, and under load many requests compile the very same timeline. A hit returns
    the same object, so what is derived from it can be cached by identity.

    The cache holds no prompt, only the request's stream key (a SHA-256 of the scenario's name, the
    prompt, the model and the seed, computed once per request): with the scenario, the overrides and
    the model beside it in the cache key, it stands for the prompt. Nor does it keep a scenario
    alive: a scenario replaced at run time leaves with its last request."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self._cache: BoundedCache[tuple[object, ...], tuple[weakref.ref[Scenario], Timeline]] = BoundedCache(max_bytes)

    def compile(self, scenario: Scenario, overrides: Overrides, context: RequestContext, stream_key: str) -> Timeline:
        """`compile_timeline(scenario, overrides, context)`, from the cache when it can be."""
        faults = overrides.faults
        counted = bool(scenario.faults or faults) and any(f.counted for f in (*scenario.faults, *faults))
        key = (
            id(scenario),
            overrides,
            stream_key,
            context.model,
            context.resumed,
            context.close_events,
            context.items,
            context.reply,
            (context.selection, context.fault_counts) if counted else 0,
        )
        entry = self._cache.get(key)
        if entry is not None and entry[0]() is scenario:  # the id of a replaced scenario may be reused
            return entry[1]
        timeline = compile_timeline(scenario, overrides, context)
        key_bytes = len(context.model or "") + len(overrides.faults) * FAULT_BYTES
        self._cache.put(key, (weakref.ref(scenario), timeline), key_bytes + timeline.estimated_bytes())
        return timeline

    def clear(self) -> None:
        self._cache.clear()

    @property
    def bytes(self) -> int:
        """The estimated bytes of the timelines kept."""
        return self._cache.bytes


def _pick(override: float | None, value: float) -> float:
    return value if override is None else override


def _active_faults(faults: Iterable[Fault], seed: int, context: RequestContext) -> list[Fault]:
    """The faults that fire on this request, after `once`, `times` and a seeded `probability` draw."""
    draw = random.Random(f"faults:{seed}:{context.selection}")
    carried = dict(context.fault_counts)
    active = []
    for fault in faults:
        chance = draw.random()  # drawn for every fault, so one fault's settings never shift another's
        if fault.once and context.resumed:
            continue
        count = carried.get(fault.counted_as, context.selection) if fault.counted_as else context.selection
        if fault.times is not None and count > fault.times:
            continue
        if chance >= fault.probability:
            continue
        active.append(fault)
    return active


@dataclass(slots=True)
class _Pacing:
    chunk_ms: float
    first_chunk_ms: float
    jitter: random.Random | None
    jitter_ms: float
    latency: LatencyDraws | None = None
    """Drawn waits before the chunks, instead of first_chunk_ms and chunk_ms."""

    def before(self, step: steps.Step, *, first: bool) -> float | None:
        """The pacing wait before a chunk or the finish (None: no wait)."""
        if self.latency is not None:
            return (self.latency.first() if first else self.latency.between(step)) or None
        ms = self.first_chunk_ms if first else self.chunk_ms
        return self.delay(ms) if ms else None

    def delay(self, ms: float) -> float:
        if self.jitter is None:
            return ms
        return max(0.0, ms + self.jitter.uniform(-self.jitter_ms, self.jitter_ms))


def _content_steps(scenario: Scenario, context: RequestContext, seed: int) -> list[steps.Step]:
    """The scenario's answer as steps, before pacing and faults (its reply as JSON when the request
    asks for JSON); raises ReplyTooLongError beyond MAX_CHUNKS chunks or MAX_REPLY_CHARS characters."""
    chunking: Chunking = scenario.chunk
    out: list[steps.Step] = []
    tool_index = 0

    def room_for(count: int) -> None:
        if len(out) + count > MAX_CHUNKS:
            raise ReplyTooLongError(scenario.name, f"more than {MAX_CHUNKS:,} chunks", f"{MAX_CHUNKS:,}")

    def add_text(kind: type[steps.Text | steps.Reasoning], text: str) -> None:
        text = _substitute(text, context, scenario.name)
        if kind is steps.Text and context.output is not None:
            text = structured_reply(context.output, text, seed)
        pieces = split_reply(text, chunking)
        room_for(len(pieces))
        out.extend(kind(piece) for piece in pieces)

    # Each reply of a sequence calls its tools with ids of its own, as a model's every call has one.
    calls_of = f"{scenario.name}#{context.reply}" if scenario.replies else scenario.name

    def add_tool_call(spec: ToolCallSpec, index: int) -> None:
        call = _tool_call_steps(spec, index, calls_of, chunking)
        room_for(len(call))
        out.extend(call)

    source: Scenario | Reply = scenario.replies[context.reply] if scenario.replies else scenario
    if source.steps is not None:
        for model in source.steps:
            built = model.build()
            room_for(1)
            if isinstance(built, ToolCallSpec):
                add_tool_call(built, tool_index)
                tool_index += 1
            elif isinstance(built, steps.Text | steps.Reasoning):
                out.append(type(built)(_substitute(built.text, context, scenario.name)))
            else:
                out.append(built)
        return out
    if source.reasoning:
        add_text(steps.Reasoning, source.reasoning)
    called = auto_calls(scenario, context.conversation, seed)
    if called:  # tool_mode: auto calls tools, each turn of the loop with ids of its own, and says nothing
        calls_of = f"{scenario.name}#turn{context.conversation.turn}"
        for index, spec in enumerate(called):
            add_tool_call(spec, index)
        out.append(steps.Finish("tool_calls"))
        return out
    back = scenario.tool_mode == "auto" and context.conversation.tool_results
    add_text(steps.Text, AUTO_REPLY if back and "reply" not in scenario.model_fields_set else source.reply)
    for spec in source.tool_calls:
        add_tool_call(spec, tool_index)
        tool_index += 1
    out.append(steps.Finish(_finish_reason(scenario, source)))
    return out


def _finish_reason(scenario: Scenario, source: Scenario | Reply) -> str:
    """The reply's own finish reason, else the scenario's, else `tool_calls` when it calls tools."""
    for given in (source, scenario):
        if given.finish_reason is not None and "finish_reason" in given.model_fields_set:
            return given.finish_reason
    return "tool_calls" if source.tool_calls else scenario.finish_reason


def _substitute(text: str, context: RequestContext, scenario: str) -> str:
    """The text with `{prompt}`, `{model}`, and the tool results' `{tool_name}` and `{tool_result}`."""
    tool_name, tool_result = answered(context.conversation.tool_results)
    values = {"{prompt}": context.prompt, "{model}": context.model or "", "{tool_name}": tool_name}
    values["{tool_result}"] = tool_result
    size = len(text) + sum(text.count(name) * len(value) for name, value in values.items())
    if size > MAX_REPLY_CHARS:  # checked first: `{prompt}` many times over a long prompt would not fit in memory
        raise ReplyTooLongError(scenario, f"{size:,} characters", f"{MAX_REPLY_CHARS:,}")
    for name, value in values.items():
        if name in text:
            text = text.replace(name, value)
    return text


def _tool_call_steps(spec: ToolCallSpec, index: int, scenario: str, chunking: Chunking) -> list[steps.Step]:
    call_id = spec.id or "call_" + hashlib.sha256(f"{scenario}:{index}:{spec.name}".encode()).hexdigest()[:24]
    pieces = split_reply(spec.arguments_json, chunking if chunking != "word" else 8)
    return [
        steps.ToolCallStart(index, call_id, spec.name),
        *(steps.ToolCallArguments(index, piece) for piece in pieces),
    ]


def _place(
    content: list[steps.Step], faults: list[Fault], pacing: _Pacing, *, close_events: bool
) -> tuple[list[steps.Step], bool]:
    """Interleave pacing sleeps and fault steps with the content; True when a fault cut the stream."""
    out: list[steps.Step] = []
    chunk = 0
    paced_any = False
    # Faults in order of `at` (a stable sort keeps the given order among equals); `placed` counts
    # those already emitted, so each fault is looked at once however many there are.
    pending = sorted(faults, key=lambda f: f.chunk)
    placed = 0
    for step in content:
        is_chunk = isinstance(step, steps.CHUNK_STEPS)
        if is_chunk or isinstance(step, steps.Finish):
            ms = pacing.before(step, first=not paced_any)
            paced_any = True
            if ms is not None:
                out.append(steps.Sleep(ms))
            due_end = placed
            while due_end < len(pending) and (pending[due_end].chunk <= chunk or not is_chunk):
                due_end += 1
            due, placed = pending[placed:due_end], due_end
            if _emit_faults(due, out, pacing, close_events=close_events):
                return out, True
        elif isinstance(step, steps.Sleep) and pacing.jitter is not None:
            step = steps.Sleep(pacing.delay(step.ms))
        out.append(step)
        if steps.ends_stream(step):
            return out, False  # a scripted ending: faults still pending would never be sent
        if is_chunk:
            chunk += 1
    return out, _emit_faults(pending[placed:], out, pacing, close_events=close_events)


def _emit_faults(faults: list[Fault], out: list[steps.Step], pacing: _Pacing, *, close_events: bool) -> bool:
    """Append the faults' steps; True (and stop) at the first fault that ends the stream. Where the
    route has no `close` event, a `close` fault keeps only its hold: the stream then ends cleanly,
    early, without its end marker."""
    for fault in faults:
        faulted = fault.to_steps()
        if fault.kind is FaultKind.CLOSE and not close_events:
            faulted = [step for step in faulted if isinstance(step, steps.Sleep)]
        for step in faulted:
            out.append(steps.Sleep(pacing.delay(step.ms)) if isinstance(step, steps.Sleep) else step)
        if fault.ends_stream:
            return True
    return False
