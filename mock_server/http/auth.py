"""`--require-auth`: the token a model request must carry, and where it may carry it."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from mock_server.errors import (
    ApiKeyInvalidError,
    ApiKeyMissingError,
    AwsSignatureMissingError,
    AwsTokenInvalidError,
    UnauthorizedError,
)


def authorize(
    required: str | None,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_key_header: str | None = None,
    query_param: bool = False,
    google_key: bool = False,
    aws_signature: bool = False,
) -> None:
    """Pass when no token is required or the request carries it: `Authorization: Bearer TOKEN`, or
    the token alone in the `api_key_header` named (Anthropic's `x-api-key`, Azure's `api-key`), or
    `?api_key=TOKEN` with `query_param` (EventSource cannot send headers), or `x-goog-api-key: TOKEN`
    or `?key=TOKEN` with `google_key` (Gemini, which then fails as Google does: 403 without a key, 400
    with another), or with `aws_signature` as the access key id of an AWS SigV4 `Authorization`
    (Bedrock, which then fails as AWS does: 403 either way). Raises UnauthorizedError saying how to
    send it."""
    if required is None:
        return
    if aws_signature:
        _authorize_aws(required, headers)
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


SIGV4 = "AWS4-HMAC-SHA256"


def access_key_id(authorization: str) -> str | None:
    """The access key id of a SigV4 `Authorization` (`AWS4-HMAC-SHA256 Credential=AKID/date/region/
    service/aws4_request, SignedHeaders=..., Signature=...`); None for any other."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != SIGV4:
        return None
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        if name == "Credential":
            return value.split("/", 1)[0] or None
    return None


def _authorize_aws(required: str, headers: Mapping[str, str]) -> None:
    """Pass a request signed with `required` as its access key id (the signature itself is not
    checked: the secret key is any), or carrying it as a Bedrock API key (`Bearer`)."""
    authorization = headers.get("authorization", "")
    scheme, _, bearer = authorization.partition(" ")
    offered = access_key_id(authorization) or (bearer.strip() if scheme.lower() == "bearer" else None)
    if offered and hmac.compare_digest(offered.encode(), required.encode()):
        return
    how = "sign with the token as the access key id (aws_access_key_id=TOKEN), or send `Authorization: Bearer TOKEN`"
    if not offered:
        raise AwsSignatureMissingError(f"Missing Authentication Token: this server runs with --require-auth; {how}.")
    raise AwsTokenInvalidError(f"The security token included in the request is invalid: {how}.")


def api_key_of(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    api_key_header: str | None = None,
    query_param: bool = False,
    google_key: bool = False,
) -> str | None:
    """The key or token a request carries, in any of the ways `authorize` takes it (a SigV4 signature's
    access key id too); None without one."""
    signed = access_key_id(headers.get("authorization", ""))
    if signed is not None:
        return signed
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
