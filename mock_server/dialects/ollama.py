"""Ollama's native API: `/api/chat` and `/api/generate`, one JSON object a line (NDJSON).

Each piece of the answer is a line with `done: false`: `message: {role, content}` on /api/chat,
`response` on /api/generate, the reasoning as `thinking` beside it (left out when the request says
`think: false`; Ollama turns thinking on for a thinking model unless told not to). The answer ends
with one `done: true` line carrying `done_reason` and the counts and durations (nanoseconds) a real
server measures; here they come from the timeline: tokens are chunks, durations are its waits. That
line is the end marker, so `no_done`, `close` and `done: false` leave it out. Lines are written as
Go's encoding/json writes them (ollama/ollama server/routes.go `streamResponse`), `<`, `>` and `&`
escaped.

A tool call arrives whole, its `arguments` an object, as Ollama's parser sends it once the model has
written all of it: the argument pieces of the timeline pass in silence and the call is one line.
There is no tool call on /api/generate, and no `context` (deprecated) in its last line.

Errors are `{"error": "..."}`: the body of an HTTP error, and in the middle of a stream a line of its
own, after which the stream ends (the `ollama` client raises `ResponseError` on it). `malformed` is a
line cut off inside its content string (the client's `json.loads` fails); `unknown_event` is a line
with the fields a cloud model's answer adds (`remote_model`, `remote_host`), which the client does
not declare and ignores.
"""

from __future__ import annotations

import hashlib
import http
import json
from datetime import UTC, datetime
from typing import Any

from mock_server.dialects.answer import Answer
from mock_server.dialects.base import Dialect, StreamInfo
from mock_server.scenarios import steps
from mock_server.timeline.compile import Usage
from mock_server.wire.frames import Event
from mock_server.wire.framing import NDJSON

MID_STREAM_ERROR = (
    "model runner has unexpectedly stopped, this may be due to resource limitations or an internal error, "
    "check ollama server logs for details"
)
"""What Ollama says when its runner dies while answering (llm/llama_server.go)."""
_MESSAGES: dict[int, str] = {
    401: "unauthorized",
    404: "model not found, try pulling it first",
    500: MID_STREAM_ERROR,
    503: "server busy, please try again.  maximum pending requests exceeded",
}
REMOTE_HOST = "https://ollama.com:443"
LOAD_NS = 1_000_000
"""`load_duration`: a model already in memory takes a millisecond or so to reach."""
TOKEN_NS = 1_000_000
"""The least time a token takes, so a rate computed from the durations is finite on an unpaced stream."""
DONE_REASONS = {"tool_calls": "stop", "function_call": "stop"}
"""Finish reasons in Ollama's words (it says `stop` after tool calls); `stop` and `length` are its own."""

_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: object) -> str:
    """Compact JSON as Go's encoding/json writes it: raw UTF-8, but `<`, `>`, `&`, U+2028 and U+2029
    escaped (they can only occur inside strings, so the whole text can be translated)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_GO_ESCAPES)


def timestamp(seconds: float) -> str:
    """A `created_at`: RFC 3339 in UTC, as Go writes a `time.Time`."""
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def metrics(usage: Usage) -> dict[str, int]:
    """The last line's counts and durations (ns), zeros left out as Go's `omitempty` leaves them."""
    prompt_ns = max(round(usage.prompt_ms * 1e6), usage.prompt_tokens * TOKEN_NS)
    eval_ns = max(round(usage.completion_ms * 1e6), usage.completion_tokens * TOKEN_NS)
    fields = {
        "total_duration": LOAD_NS + prompt_ns + eval_ns,
        "load_duration": LOAD_NS,
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": usage.completion_tokens,
        "eval_duration": eval_ns,
    }
    return {name: value for name, value in fields.items() if value}


def done_reason(reason: str | None) -> str | None:
    return DONE_REASONS.get(reason, reason) if reason is not None else None


def error_body(status: int, error: steps.ErrorEvent | None) -> dict[str, Any]:
    """`{"error": "..."}`: the error's message, else Ollama's words for `status`."""
    if error is not None and error.message:
        return {"error": error.message}
    return {"error": _MESSAGES.get(status) or _phrase(status)}


def _phrase(status: int) -> str:
    """What Go's `http.StatusText` says for `status`, lower-case as Ollama's errors are."""
    try:
        return http.HTTPStatus(status).phrase.lower()
    except ValueError:
        return f"HTTP {status}"


def tool_arguments(arguments: str) -> Any:
    """A call's `arguments` object; arguments a scenario made invalid on purpose stay as they are."""
    try:
        return json.loads(arguments)
    except json.JSONDecodeError:
        return arguments


def tool_call(call_id: str, index: int, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "function": {"index": index, "name": name, "arguments": tool_arguments(arguments)}}


class _OllamaStream:
    """What both endpoints share: the head of every line, tool calls held until whole, errors, the
    faults' lines and the `done: true` line. A subclass says how a line holds a piece of the answer."""

    CUT = ""
    """The start of a line's answer fields, up to inside the content string: a `malformed` line."""

    def __init__(self, stream: StreamInfo) -> None:
        self._stream = stream
        head = {"model": stream.model, "created_at": timestamp(stream.created)}
        self._head = go_json(head)[:-1]
        remote = {"model": stream.model, "remote_model": stream.model, "remote_host": REMOTE_HOST, **head}
        self._remote_head = go_json(remote)[:-1]
        self._reason: str | None = "stop"
        self._call: tuple[steps.ToolCallStart, list[str]] | None = None

    def _fields(self, content: str, thinking: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> str:
        """The answer's fields of a line, without braces."""
        raise NotImplementedError

    def start(self) -> list[Event]:
        return []

    def events(self, step: steps.ContentStep) -> list[Event]:
        if isinstance(step, steps.ToolCallArguments) and self._call is not None and self._call[0].index == step.index:
            self._call[1].append(step.arguments)
            return []
        events = self._flush_call()
        match step:
            case steps.Text(text):
                events.append(self._line(self._head, self._fields(text)))
            case steps.Reasoning(text):
                if self._stream.reasoning:
                    events.append(self._line(self._head, self._fields("", text)))
            case steps.ToolCallStart():
                self._call = (step, [])
            case steps.ToolCallArguments():
                pass  # of a call that never started: there is nothing to add them to
            case steps.ErrorEvent(message):
                events.append(Event(go_json({"error": message or MID_STREAM_ERROR})))
            case steps.Malformed(data):
                events.append(Event(f"{self._head},{self.CUT}" if data is None else data))
            case steps.UnknownEvent():
                events.append(self._line(self._remote_head, self._fields("")))
            case steps.Finish(reason):
                self._reason = reason
            case _:
                raise TypeError(f"not a content step: {step!r}")
        return events

    def end(self) -> list[Event]:
        fields: dict[str, Any] = {"done": True}
        reason = done_reason(self._reason)
        if reason is not None:
            fields["done_reason"] = reason
        last = go_json({**fields, **metrics(self._stream.usage)})[1:-1]
        return [*self._flush_call(), Event(f"{self._head},{self._fields('')},{last}}}")]

    @staticmethod
    def _line(head: str, fields: str) -> Event:
        return Event(f'{head},{fields},"done":false}}')

    def _flush_call(self) -> list[Event]:
        """The tool call being written, as one line once the model has written all of it."""
        if self._call is None:
            return []
        (start, pieces), self._call = self._call, None
        call = tool_call(start.call_id, start.index, start.name, "".join(pieces))
        fields = self._fields("", tool_calls=[call])
        return [self._line(self._head, fields)] if fields else []


class OllamaChatStream(_OllamaStream):
    """/api/chat: the pieces in `message`."""

    CUT = '"message":{"role":"assistant","content":"'

    def _fields(self, content: str, thinking: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> str:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking is not None:
            message["thinking"] = thinking
        if tool_calls:
            message["tool_calls"] = tool_calls
        return f'"message":{go_json(message)}'


class OllamaGenerateStream(_OllamaStream):
    """/api/generate: the pieces in `response`; a tool call has no place here."""

    CUT = '"response":"'

    def _fields(self, content: str, thinking: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> str:
        if tool_calls:
            return ""
        fields = {"response": content} if thinking is None else {"response": content, "thinking": thinking}
        return go_json(fields)[1:-1]


def _whole(stream: StreamInfo, answer: Answer, fields: dict[str, Any]) -> dict[str, Any]:
    """A whole response: the head, `fields` (the answer), then `done: true` and the last line's fields."""
    body: dict[str, Any] = {"model": stream.model, "created_at": timestamp(stream.created), **fields, "done": True}
    reason = done_reason(answer.finish_reason)
    if reason is not None:
        body["done_reason"] = reason
    return {**body, **metrics(stream.usage)}


def complete_chat(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One chat response: the whole `message`, its thinking and tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if answer.reasoning and stream.reasoning:
        message["thinking"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            tool_call(call.call_id, index, call.name, call.arguments) for index, call in enumerate(answer.tool_calls)
        ]
    return _whole(stream, answer, {"message": message})


def complete_generate(stream: StreamInfo, answer: Answer) -> dict[str, Any]:
    """One generate response: the whole `response` and its thinking."""
    fields: dict[str, Any] = {"response": answer.text}
    if answer.reasoning and stream.reasoning:
        fields["thinking"] = answer.reasoning
    return _whole(stream, answer, fields)


def model_entry(name: str, modified: float) -> dict[str, Any]:
    """A scenario as one of `/api/tags`'s models."""
    return {
        "name": name,
        "model": name,
        "modified_at": timestamp(modified),
        "size": 0,
        "digest": digest(name),
        "details": DETAILS,
        "capabilities": CAPABILITIES,
    }


def model_list(names: list[str], modified: float) -> dict[str, Any]:
    """`/api/tags`: every scenario as a model."""
    return {"models": [model_entry(name, modified) for name in names]}


def model_details(name: str, description: str, modified: float) -> dict[str, Any]:
    """`/api/show` for a scenario."""
    return {
        "modelfile": f"# {description}\nFROM {name}\n" if description else f"FROM {name}\n",
        "template": "{{ .Prompt }}",
        "details": DETAILS,
        "model_info": {"general.architecture": "mock", "general.basename": name},
        "capabilities": CAPABILITIES,
        "modified_at": timestamp(modified),
    }


def digest(name: str) -> str:
    """A model's digest: the SHA-256 of its name, stable from run to run."""
    return hashlib.sha256(name.encode()).hexdigest()


DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "mock",
    "families": ["mock"],
    "parameter_size": "0B",
    "quantization_level": "F16",
}
CAPABILITIES = ["completion", "tools", "thinking"]
"""Every scenario can answer with text, tool calls and reasoning: a client that checks finds them."""


CHAT = Dialect(
    name="ollama-chat", stream=OllamaChatStream, error_body=error_body, complete=complete_chat, framing=NDJSON
)
GENERATE = Dialect(
    name="ollama-generate",
    stream=OllamaGenerateStream,
    error_body=error_body,
    complete=complete_generate,
    framing=NDJSON,
)
