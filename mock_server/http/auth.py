"""`--require-auth`: the token a model request must carry, and where it may carry it."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from mock_server.errors import ApiKeyInvalidError, ApiKeyMissingError, UnauthorizedError


def authorize(
    required: str | None,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_key_header: str | None = None,
    query_param: bool = False,
    google_key: bool = False,
) -> None:
    """Pass when no token is required or the request carries it: `Authorization: Bearer TOKEN`, or
    the token alone in the `api_key_header` named (Anthropic's `x-api-key`, Azure's `api-key`), or
    `?api_key=TOKEN` with `query_param` (EventSource cannot send headers), or `x-goog-api-key: TOKEN`
    or `?key=TOKEN` with `google_key` (Gemini, which then fails as Google does: 403 without a key, 400
    with another). Raises UnauthorizedError saying how to send it."""
    if required is None:
        return
    offered = _offered(headers, query, api_key_header=api_key_header, query_param=query_param, google_key=google_key)
    given = [token for token, _ in offered if token]
    ways = [way for _, way in offered]
    if google_key:
        ways = [*ways[-2:], *ways[:-2]]
    if any(hmac.compare_digest(token.encode(), required.encode()) for token in given):
        return
    how = " or ".join(ways)
    if google_key and not given:
        raise ApiKeyMissingError(
            "Method doesn't allow unregistered callers (callers without established identity). Please use API"
            f" Key or other form of API consumer identity to call this API. This server runs with --require-auth;"
            f" send {how}."
        )
    if google_key:
        raise ApiKeyInvalidError(
            f"API key not valid. Please pass a valid API key. Send the token given to --require-auth as {how}."
        )
    if not given:
        raise UnauthorizedError(f"Missing API key: this server runs with --require-auth; send {how}.")
    raise UnauthorizedError(f"Incorrect API key provided; send the token given to --require-auth as {how}.")


def api_key_of(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_key_header: str | None = None,
    query_param: bool = False,
    google_key: bool = False,
) -> str | None:
    """The key or token a request carries, in any of the ways `authorize` takes it; None without one."""
    offered = _offered(headers, query, api_key_header=api_key_header, query_param=query_param, google_key=google_key)
    return next((token for token, _ in offered if token), None)


def _offered(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_key_header: str | None,
    query_param: bool,
    google_key: bool,
) -> list[tuple[str | None, str]]:
    """Each place a request may carry its token, with what it carries there and how to send it."""
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    offered = [(bearer.strip() if scheme.lower() == "bearer" else None, "`Authorization: Bearer <token>`")]
    if api_key_header is not None:
        offered.append((headers.get(api_key_header), f"`{api_key_header}: <token>`"))
    if query_param:
        offered.append((query.get("api_key"), "`?api_key=<token>`"))
    if google_key:
        offered += [(headers.get("x-goog-api-key"), "`x-goog-api-key: <token>`"), (query.get("key"), "`?key=<token>`")]
    return offered
