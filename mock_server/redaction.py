"""What never reaches a log line: the values of token-carrying query parameters (`?api_key=`, as
EventSource clients send it). Headers never reach one either: uvicorn's access log has none.

The journal keeps every value as sent, so a test can assert on the key its client used; logs are
for people and CI output, which get shared.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_plus

SECRET_QUERY_PARAMETERS = frozenset({"api_key", "api-key", "key", "token", "access_token"})
REDACTED = "REDACTED"


def redact_target(target: str) -> str:
    """A request target (`path?query`) with the value of every secret query parameter replaced."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if equals and unquote_plus(name).lower() in SECRET_QUERY_PARAMETERS else pair)
    return f"{path}?{'&'.join(pairs)}"


class RedactingAccessLogger(logging.LoggerAdapter[logging.Logger]):
    """uvicorn's access logger, with the request target of every line redacted (uvicorn logs
    `'%s - "%s %s HTTP/%s" %d'` with client, method, target, version and status as arguments)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if len(args) == 5 and isinstance(args[2], str):
            args = (*args[:2], redact_target(args[2]), *args[3:])
        super().log(level, msg, *args, **kwargs)
