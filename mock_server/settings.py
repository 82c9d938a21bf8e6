"""Every setting of a server, with its default, in one frozen object.

The CLI (flags and `MOCK_LLM_*` environment variables), `MockServer(...)` and the pytest plugin all
build a `Settings`; nothing else reads the environment. `VERSION` is the version a server reports.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

VERSION = "0.1.0"
"""The package's version, which pyproject.toml reads from here: asking the installed metadata would
parse it whole (the README is in it) with the email parser, some 5 ms of every start."""

CONTROL_PREFIX = "/_mock/"
"""Where the control API's paths start: the journal, run-time scenarios, the ready check."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8383
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_SHUTDOWN_GRACE_S = 5.0
DEFAULT_JOURNAL_MAX_BYTES = 64 << 20
DEFAULT_RESPONSES_MAX_BYTES = 64 << 20
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
JOURNAL_SECRETS = ("mask", "keep")
JournalSecrets = Literal["mask", "keep"]
RECORD_MODES = ("new", "all", "none")
RecordMode = Literal["new", "all", "none"]
STATE_FORMS = (
    "memory (this process alone)",
    "sqlite:PATH (a file the workers of one machine share)",
    "redis://HOST:PORT/DB (a Redis that servers on many machines share)",
)


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    scenario_dirs: tuple[Path, ...] = ()
    """Directories (or files) of scenarios, loaded after the bundled ones; later ones win on a name."""
    bundled_scenarios: bool = True
    default_scenario: str = "default"
    require_auth: str | None = None
    """When set, model endpoints need `Authorization: Bearer <token>` (`x-api-key` on /v1/messages)."""
    admin_token: str | None = None
    """When set, writes under /_mock/ need `Authorization: Bearer <token>`."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origins whose pages may call the model endpoints (`*`: any) and, when named here, the control API."""
    allowed_hosts: tuple[str, ...] = ()
    """`Host` names answered besides loopback ones (`.example.test` also takes its subdomains, `*` any);
    empty: only loopback names while bound to loopback, any name otherwise."""
    journal_size: int = 1000
    """How many request records the journal keeps (the newest)."""
    journal_max_bytes: int = DEFAULT_JOURNAL_MAX_BYTES
    """About how much of what clients sent (bodies, headers, queries) the journal keeps; the oldest go first."""
    journal_secrets: JournalSecrets = "mask"
    """`mask`: keys, tokens and cookies in the journal are masked (`sk-...1234`); `keep`: kept as sent."""
    responses_max_bytes: int = DEFAULT_RESPONSES_MAX_BYTES
    """About how much memory the Responses API's stored responses take; the least recently used go first."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body accepted (1 MiB); a larger one is refused with 413 before it is read."""
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    """How long a stop waits for requests still running after every stream has been ended."""
    request_timeout_s: float = 30.0
    """How long a connection has to send each request, head and body, from its opening (or from the
    first byte of its next request); then it is closed, with a 408 when part of a request came."""
    max_connections: int = 10_000
    """How many connections may be open at once; past it, new ones are answered 503 with Retry-After
    and closed. Lowered to what the process's open-file limit (RLIMIT_NOFILE) leaves room for."""
    upstream: str | None = None
    """A base URL (`https://api.openai.com`): model requests no scenario answers are forwarded there,
    with the client's path and query, and the request's faults strike its live response."""
    upstream_only: bool = False
    """Forward every model request to the upstream, whatever scenario it names or matches."""
    upstream_timeout_s: float = 300.0
    """How long the upstream may take to send its response head, and then each piece of its body (a
    model may think for minutes); then the client gets a 504, or the stream is cut."""
    upstream_ca: Path | None = None
    """A PEM file of CA certificates that an HTTPS upstream's certificate is verified against."""
    record_dir: Path | None = None
    """Where each exchange with the upstream is written as a scenario file (and loaded from)."""
    record_mode: RecordMode = "new"
    """new: record what no scenario answers yet; all: forward and record every request again;
    none: only replay, a request with no recording is an error."""
    rpm: int | None = None
    """Requests per minute each client (API key, else address) may make across the server; None: no limit."""
    tpm: int | None = None
    """Tokens (prompt and answer, as the usage counts them) per minute each client may use; None: no limit."""
    rpd: int | None = None
    """Requests per day each client may make; None: no limit."""
    state: str = "memory"
    """Where the journal, run-time scenarios, counters and stored responses live: `memory` (this
    process), `sqlite:PATH` (workers on one machine) or `redis://HOST:PORT/DB` (replicas; see
    `STATE_FORMS`)."""
    workers: int = 1
    """How many processes serve on the one listening socket (`serve --workers`)."""
    worker: int = 1
    """Which of the `workers` this process is, from 1: `/_mock/health` reports it."""
    log_level: str = "info"
    access_log: bool = True
    wall_clock: Callable[[], float] = field(default=time.time, repr=False)
    """Where `created` timestamps come from, and the time rate limits count in; tests pin it for
    byte-exact transcripts, or move it to refill a rate limit without waiting."""

    def __post_init__(self) -> None:
        for name, flag, variable in (
            ("require_auth", "--require-auth", "MOCK_LLM_REQUIRE_AUTH"),
            ("admin_token", "--admin-token", "MOCK_LLM_ADMIN_TOKEN"),
        ):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ValueError(
                    f"{name} is empty ({flag} '' or an empty {variable}, e.g. a CI secret that is not set), which "
                    "would leave the server unprotected without a word; give a token, or leave it out for none"
                )
        self._check_upstream()
        for name in ("rpm", "tpm", "rpd"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of 1 or more (or None for no limit), not {value!r}")
        if (problem := state_problem(self.state)) is not None:
            raise ValueError(problem)
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be a whole number of 1 or more, not {self.workers!r}")
        if not 1 <= self.worker <= self.workers:
            raise ValueError(f"worker must be from 1 to workers ({self.workers}), not {self.worker!r}")
        if self.journal_secrets not in JOURNAL_SECRETS:
            raise ValueError(
                f"journal_secrets must be one of {', '.join(JOURNAL_SECRETS)}, not {self.journal_secrets!r}"
            )

    def _check_upstream(self) -> None:
        if self.record_mode not in RECORD_MODES:
            raise ValueError(f"record_mode must be one of {', '.join(RECORD_MODES)}, not {self.record_mode!r}")
        if self.upstream is not None:
            parsed = urlsplit(self.upstream)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(
                    f"upstream {self.upstream!r} is not an http:// or https:// URL with a host; "
                    "give a base such as https://api.openai.com"
                )
            if not self.upstream_timeout_s > 0:
                raise ValueError(f"upstream_timeout_s must be more than 0 seconds, not {self.upstream_timeout_s}")
            if parsed.query or parsed.fragment:
                raise ValueError(f"upstream {self.upstream!r} has a query or fragment; give the base URL alone")
            if self.upstream_ca is not None:
                try:
                    ssl.create_default_context(cafile=str(self.upstream_ca))
                except (OSError, ssl.SSLError) as exc:
                    raise ValueError(
                        f"--upstream-ca {self.upstream_ca}: no CA certificate could be read from it ({exc}); "
                        "give a PEM file of CA certificates"
                    ) from None
            return
        for given, flag in ((self.upstream_only, "--upstream-only"), (self.upstream_ca, "--upstream-ca")):
            if given:
                raise ValueError(f"{flag} needs --upstream URL, the server to forward to")
        if self.record_dir is not None and self.record_mode != "none":
            raise ValueError(
                f"--record with --record-mode {self.record_mode} needs --upstream URL to record from; "
                "to replay the recordings only, add --record-mode none"
            )


def state_problem(state: str) -> str | None:
    """What is wrong with a state store's form (`memory`, `sqlite:PATH`, `redis://HOST:PORT/DB`),
    saying what is accepted; None when the form is right (the store itself is not reached)."""
    if state == "memory":
        return None
    if state.startswith("sqlite:"):
        if state.removeprefix("sqlite:").strip():
            return None
        return f"state {state!r} names no file; give sqlite:PATH, e.g. sqlite:/tmp/mock-llm.sqlite3"
    if state.startswith("redis://"):
        parsed = urlsplit(state)
        try:
            parsed.port  # noqa: B018 (reading it checks it)
        except ValueError:
            return f"state {state!r} has a port that is not a number; give redis://HOST:PORT/DB"
        database = parsed.path.removeprefix("/")
        if parsed.hostname and (not database or database.isdigit()) and not parsed.query and not parsed.fragment:
            return None
        return f"state {state!r} is not redis://HOST:PORT/DB (DB a number, e.g. redis://127.0.0.1:6379/0)"
    return f"state {state!r} is not a state store; accepted: {', '.join(STATE_FORMS)}"
