"""Which requests the server answers, by where they come from: the `Host` they were sent to, the page
that sent them (`Origin`, `Sec-Fetch-Site`), and the CORS headers that let a page read the answer.

The model endpoints are for browser clients on any origin (open CORS by default); the control API
(`/_mock/*`) holds the journal, with the keys clients sent, and can rewrite scenarios, so a page of
another origin may neither read it (no CORS headers unless `--cors-origins` names the origin) nor
send it anything (refused by `Origin`, which browsers send on every cross-origin request but a
simple GET, or by `Sec-Fetch-Site`). `curl`, SDKs and test code send neither header and are
unaffected. A server bound to loopback also refuses a `Host` that is not a loopback name (nor an
`--allowed-hosts` entry): a page of a DNS-rebound name would otherwise pass as same-origin.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from mock_server.settings import CONTROL_PREFIX, Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXPOSED_HEADERS = ["X-Mock-Scenario", "X-Mock-Request-Id", "X-Mock-Reply", "X-Mock-Instance", "Retry-After"]
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_CROSS_SITE = (b"cross-site", b"same-site")  # `same-site` is another port or subdomain: another origin
KNOWN_HOSTS = 256
"""`Host` values whose answer is kept: a client sends the same one every time, and judging it (an IP
address parsed) took 10 us of every request. The first KNOWN_HOSTS values are kept, no more."""


def cors_options(settings: Settings, *, control: bool = False) -> dict[str, Any]:
    """Starlette CORSMiddleware's options: for the model endpoints any origin (echoed, so credentials
    work) unless `cors_origins` names some; for the control API only the origins it names."""
    origins = list(settings.cors_origins)
    open_to_any = "*" in origins and not control
    return {
        "allow_origins": [] if "*" in origins else origins,
        "allow_origin_regex": ".*" if open_to_any else None,
        "allow_credentials": True,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
        "expose_headers": EXPOSED_HEADERS,
    }


class Cors:
    """Starlette's CORSMiddleware for a request from a page (it has `Origin`), built with the first such
    request; for one without (an SDK's, curl's, a starting server's ready check polled by a script)
    only what that middleware would add, `Vary: Origin`, without loading Starlette's requests and
    responses or parsing the request's and the response's headers (6-10 us of every model request).
    `control`: the control API's options, else the model endpoints'."""

    def __init__(self, app: ASGIApp, settings: Settings, *, control: bool = False) -> None:
        self.app = app
        self._options = cors_options(settings, control=control)
        self._cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"origin" for name, _ in scope["headers"]):
            await self._middleware()(scope, receive, send)
            return

        async def vary_by_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _vary_by_origin(message.get("headers", []))
            await send(message)

        await self.app(scope, receive, vary_by_origin)

    def _middleware(self) -> ASGIApp:
        if self._cors is None:
            from starlette.middleware.cors import CORSMiddleware

            self._cors = CORSMiddleware(self.app, **self._options)
        return self._cors


def _vary_by_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` (lower-case names, as ASGI has them) with `Origin` added to `Vary` as Starlette's
    CORSMiddleware adds it: every `Vary` value joined in the first one's place, else one at the end."""
    varied = [value for name, value in headers if name == b"vary"]
    if not varied:
        return [*headers, (b"vary", b"Origin")]
    joined = (b"vary", b", ".join([*varied, b"Origin"]))
    first = next(i for i, (name, _) in enumerate(headers) if name == b"vary")
    return [joined if i == first else header for i, header in enumerate(headers) if i == first or header[0] != b"vary"]


class CorsByPath:
    """ASGI middleware: the control API's CORS for `/_mock/` paths, the model endpoints' for the rest."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self._models = Cors(app, settings)
        self._control = Cors(app, settings, control=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_control = scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX)
        await (self._control if is_control else self._models)(scope, receive, send)


class AccessGuard:
    """ASGI middleware that answers 403, in the shape of the path's API, a request whose `Host` is not
    allowed, or a request to the control API from a page of an origin `--cors-origins` does not name."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._hosts = tuple(host.lower() for host in settings.allowed_hosts)
        self._any_host = "*" in self._hosts or (not self._hosts and not is_loopback(settings.host))
        self._origins = frozenset(origin for origin in settings.cors_origins if origin != "*")
        self._known_hosts: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                from starlette.requests import Request  # loaded by the first refusal, as the error shapes are

                from mock_server.http.errors import shaped_error

                kind, message = refusal
                await shaped_error(Request(scope), 403, kind, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[str, str] | None:
        host = origin = fetch_site = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"sec-fetch-site":
                fetch_site = value
        if host is not None and not self._any_host and not self._known_host(host):
            return "host_not_allowed", self._host_message(host.decode("latin-1"))
        if not scope["path"].startswith(CONTROL_PREFIX):
            return None
        host_text = host.decode("latin-1") if host is not None else None
        if origin is not None:
            text = origin.decode("latin-1")
            if text in self._origins or (host_text is not None and _netloc(text) == host_text.lower()):
                return None
            return "cross_origin_refused", _origin_message(text)
        if fetch_site in _CROSS_SITE:
            return "cross_origin_refused", _origin_message(None)
        return None

    def _known_host(self, host: bytes) -> bool:
        """`_host_allowed`, kept for the first KNOWN_HOSTS values."""
        allowed = self._known_hosts.get(host)
        if allowed is None:
            allowed = self._host_allowed(host.decode("latin-1"))
            if len(self._known_hosts) < KNOWN_HOSTS:
                self._known_hosts[host] = allowed
        return allowed

    def _host_allowed(self, host: str) -> bool:
        name = _hostname(host)
        if is_loopback(name):
            return True
        return any(
            name == entry or (entry.startswith(".") and (name.endswith(entry) or name == entry[1:]))
            for entry in self._hosts
        )

    def _host_message(self, host: str) -> str:
        allowed = ", ".join([*LOOPBACK_NAMES, *self._hosts])
        return (
            f"Host {host!r} is not allowed: this server answers only {allowed} (a page of another name reaching a "
            f"server on loopback is a DNS-rebinding attack). To use that name, start it with --allowed-hosts "
            f"{_hostname(host)}."
        )


def _origin_message(origin: str | None) -> str:
    page = f"a page of {origin}" if origin is not None else "a page of another origin"
    return (
        f"The control API (/_mock/) does not answer {page}: the journal holds the keys clients sent, and its "
        "writes change what every client gets. Call it from test code or curl (no Origin header), or start the "
        "server with --cors-origins naming that origin."
    )


def is_loopback(host: str) -> bool:
    """Whether a host name or address is this machine's loopback (`localhost`, `*.localhost`, 127/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The name of a `Host` value, without its port; an IPv6 address keeps its brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def _netloc(origin: str) -> str:
    """`http://localhost:8383` -> `localhost:8383`: what a same-origin request's `Host` is."""
    return origin.partition("://")[2].rstrip("/").lower()
