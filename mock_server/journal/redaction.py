"""Secrets: which names carry one, and how they are hidden in log lines and (by default) the journal.

A name carries a secret when its words (split at `-`, `_`, `.` and lower-to-upper case changes) say
so: `Authorization`, `x-api-key`, `api_key`, `apiKey`, `access_token`, `client_secret`, `password`,
`Cookie`, a bare `key` or `token`; but not `max_tokens`, `keyboard` or `cache_key`. Developers point
SDKs at the server with real provider keys still in their environment, so the journal masks such
values (`sk-...1234`) unless the server runs with `--journal-secrets keep`; log lines, which get
shared in CI output, always replace them with `REDACTED`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from mock_server.memo import kept_for_short_names

REDACTED = "REDACTED"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
"""Headers whose whole value is a credential whatever their words say."""
_SECRET_WORDS = frozenset({"password", "passwd", "secret", "secrets", "cookie", "credential", "credentials", "apikey"})
"""A name with one of these words anywhere carries a secret (`client_secret`, `db-password`)."""
_SECRET_LAST_WORDS = frozenset({"token", "signature", "sig"})
"""... or ending in one of these (`access_token`, `x-amz-signature`; not `max_tokens`)."""
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "session", "auth", "subscription", "goog"})
"""`key` as the last word is a secret after one of these (`x-api-key`, `ocp-apim-subscription-key`), or alone."""
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
MASK = "..."
SHOWN_SUFFIX = 4
SHOWN_PREFIX_MAX = 4
MIN_MASKED_LENGTH = 12
"""Shorter values are hidden whole: four characters of a short token give too much of it away."""


@kept_for_short_names(entries=4096, max_chars=64)
def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or body key of this name carries a secret. Kept per name:
    each request asks about each of its own, 1-2 us apiece to split into words."""
    words = [word.lower() for word in _WORDS.findall(name)]
    if not words:
        return False
    if name.lower() in SECRET_HEADERS or _SECRET_WORDS.intersection(words):
        return True
    last = words[-1]
    if last in _SECRET_LAST_WORDS or (len(words) == 1 and last in ("token", "key", "auth")):
        return True
    return last == "key" and len(words) > 1 and words[-2] in _KEY_QUALIFIERS


def mask_secret(value: str) -> str:
    """`sk-live-abcdef1234` -> `sk-...1234`: enough to tell keys apart, not enough to use one. An
    `Authorization` scheme (`Bearer `) stays; values shorter than MIN_MASKED_LENGTH become `...`."""
    scheme, space, token = value.partition(" ")
    if space and scheme.isalpha() and token:
        return f"{scheme} {mask_secret(token.strip())}"
    if len(value) < MIN_MASKED_LENGTH:
        return MASK
    dash = value.find("-", 0, SHOWN_PREFIX_MAX)
    prefix = value[: dash + 1] if dash > 0 else ""
    return f"{prefix}{MASK}{value[-SHOWN_SUFFIX:]}"


FINGERPRINT_HEX = 12


def fingerprint(secret: str, salt: bytes) -> str:
    """`sk-live-abcdef1234` -> `sk-...1234#5f2b9c0e1a7d`: the masked value and a salted hash of the
    whole, which tells two keys apart (also short ones, masked to `...` alike) but gives none away."""
    digest = hashlib.sha256(salt + secret.encode()).hexdigest()[:FINGERPRINT_HEX]
    return f"{mask_secret(secret)}#{digest}"


def _mask_cookie(value: str) -> str:
    """Each cookie's value masked, its name kept: `a=...; session=...`."""
    pairs = []
    for pair in value.split(";"):
        name, equals, cookie = pair.partition("=")
        pairs.append(f"{name}={mask_secret(cookie.strip())}" if equals else mask_secret(pair.strip()))
    return "; ".join(part.strip() for part in pairs)


def journal_headers(raw: Iterable[tuple[bytes, bytes]], *, mask: bool) -> dict[str, str]:
    """Raw ASGI headers as the journal keeps them: lower-case names, the first value of a repeated
    name, secrets masked when `mask`. Linear in the number of headers (a `dict()` of Starlette's
    `Headers` looks each name up anew: quadratic)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        if name not in headers:
            headers[name] = raw_value.decode("latin-1")
    if mask:
        for name, value in headers.items():
            if is_secret_name(name):
                headers[name] = _mask_cookie(value) if name in ("cookie", "set-cookie") else mask_secret(value)
    return headers


def journal_query(query: Iterable[tuple[str, str]], *, mask: bool) -> dict[str, str]:
    """Query parameters as the journal keeps them: the last value of a repeated name (as Starlette's
    `QueryParams` reads it), secrets masked when `mask`."""
    return {name: mask_secret(value) if mask and is_secret_name(name) else value for name, value in query}


def mask_body(body: Any) -> Any:
    """A parsed JSON body with the string value of every key named like a secret masked, at any depth;
    the body itself when it has none (walked without recursion: bodies nest up to 64 levels)."""
    if not isinstance(body, dict | list):
        return body
    found = False
    stack: list[Any] = [body]
    while stack and not found:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and isinstance(value, str) and is_secret_name(key):
                found = True
                break
            if isinstance(value, dict | list):
                stack.append(value)
    return _masked_copy(body) if found else body


def _masked_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: mask_secret(item) if isinstance(item, str) and is_secret_name(key) else _masked_copy(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_masked_copy(item) for item in value]
    return value


def redact_target(target: str) -> str:
    """A request target (`path?query`) with the value of every secret query parameter replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if equals and is_secret_name(unquote_plus(name)) else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactingAccessLogger(logging.LoggerAdapter[logging.Logger]):
    """uvicorn's access logger, with the request target of every line redacted (uvicorn logs
    `'%s - "%s %s HTTP/%s" %d'` with client, method, target, version and status as arguments)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if len(args) == 5 and isinstance(args[2], str):
            args = (*args[:2], redact_target(args[2]), *args[3:])
        super().log(level, msg, *args, **kwargs)
