"""Reading request bodies safely: within the size limit while they arrive, and JSON that cannot
exhaust the stack (nesting), the CPU (huge integers) or the journal."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from mock_server.errors import BodyTooLargeError, RequestBodyError
from mock_server.scenarios.surrogates import replace_lone_surrogates

if TYPE_CHECKING:
    from starlette.requests import Request

MAX_JSON_DEPTH = 64
"""Deeper than any request a model API takes (tool schemas included), shallow enough that every
recursive walk of a body (the journal's copies, JSON encoding) stays far from the recursion limit."""
MAX_LENGTH_DIGITS = 20
"""No Content-Length this long is within any limit (and a far longer one would not even convert)."""
TOO_DEEP = f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep."
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""The escape of a surrogate (`\\ud800`-`\\udfff`): most bodies have none, and need no walk."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLargeError as soon as it is known to exceed `limit` bytes: at once
    from Content-Length, else while chunks arrive; never more than `limit` bytes are kept.
    Raises starlette's ClientDisconnect when the client leaves before the body is complete."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > MAX_LENGTH_DIGITS or int(declared) > limit):
        raise BodyTooLargeError(limit)
    # ASGI's messages read directly, as Starlette's `request.stream()` reads them, without its async
    # generator (2 us): the body is read only here, so the request need not know it has been.
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            from starlette.requests import ClientDisconnect  # loaded with the request path, whose Request this is

            raise ClientDisconnect
        if kind != "http.request":
            continue
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_json(raw: bytes) -> Any:
    """The JSON value of a body, every lone surrogate in its strings (`"\\ud800"`) replaced by U+FFFD;
    raises RequestBodyError saying why it is not one we can use."""
    try:
        # Decoded strictly here (json.loads would let bytes that encode a surrogate through), so
        # that a lone surrogate can only come from a `\u` escape, which is cheap to look for.
        text = raw.decode(json.detect_encoding(raw))
        if text.startswith("\ufeff"):  # a second byte order mark, which json.loads refuses too
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise RequestBodyError("The request body is not valid UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise RequestBodyError(
            f"The request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})."
        ) from None
    except ValueError as exc:  # an integer beyond Python's digit limit, a float beyond a double, NaN
        raise RequestBodyError(f"The request body has a number that cannot be read: {exc}.") from None
    except RecursionError:
        raise RequestBodyError(TOO_DEEP) from None
    # Nesting deeper than MAX_JSON_DEPTH takes more brackets than that; counting them (in C) spares
    # nearly every body the walk (2 us).
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _too_deep(value):
        raise RequestBodyError(TOO_DEEP)
    escapes = text.find("\\")  # memchr: most bodies have no escape at all, and need no more than this
    if escapes != -1 and _ESCAPED_SURROGATE.search(text, escapes):
        return replace_lone_surrogates(value)
    return value


def _finite_float(text: str) -> float:
    """A JSON number as a float; one beyond a double (`1e999`) would be infinity, which no JSON
    answer (the journal's) could hold."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is beyond what a 64-bit float holds")
    return value


def _not_json(name: str) -> NoReturn:
    """Python's reader takes `NaN` and `Infinity`; JSON has neither."""
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_not_json)
"""Made once: `json.loads` with these options makes a decoder (and its scanner) on every call, 1.2 us."""


@dataclass(frozen=True, slots=True)
class Body:
    """A request's body with its JSON value read once, for the journal and the route alike (reading
    it twice was 5-10 us of every request); `error` says why there is no value, when there is none.
    The value is shared: neither the journal nor a route changes what it reads."""

    raw: bytes
    value: Any = None
    error: RequestBodyError | None = None

    @classmethod
    def read(cls, raw: bytes) -> Body:
        if not raw:
            return cls(raw)
        try:
            return cls(raw, decode_json(raw))
        except RequestBodyError as exc:
            return cls(raw, error=exc)

    def journaled(self) -> Any:
        """The body as the journal keeps it: its JSON value when it has one we can use, else its
        text (None when there is no body)."""
        if not self.raw:
            return None
        return self.raw.decode("utf-8", errors="replace") if self.error is not None else self.value


def journal_body(raw: bytes | None) -> Any:
    """A body as the journal keeps it: its JSON value when it has one we can use, else its text."""
    return Body.read(raw).journaled() if raw else None


def _too_deep(value: Any) -> bool:
    """Whether `value` nests lists and dicts more than MAX_JSON_DEPTH levels (walked without recursion)."""
    level: list[Any] = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True
