"""The command line: maps flags and MOCK_LLM_* environment variables to Settings, nothing more."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from mock_server.errors import ScenarioError, StateStoreError
from mock_server.http.access import LOOPBACK_NAMES, is_loopback
from mock_server.http.app import create_app, load_catalog
from mock_server.http.server import bind_socket, run_foreground
from mock_server.scenarios.catalog import Catalog, load_paths
from mock_server.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    JOURNAL_SECRETS,
    LOG_LEVELS,
    RECORD_MODES,
    STATE_FORMS,
    VERSION,
    Settings,
    state_problem,
)

UNREACHABLE_EXIT = 2


class _TokenOption(click.Option):
    """An option whose environment variable counts when it is set but empty: click would take an empty
    MOCK_LLM_ADMIN_TOKEN (a CI secret that is not set) for no token at all, and the server would start
    unprotected without a word; `Settings` refuses the empty token instead."""

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        value = super().resolve_envvar_value(ctx)
        if value is None and isinstance(self.envvar, str) and os.environ.get(self.envvar) == "":
            return ""
        return value


class _Workers(click.ParamType[int]):
    """A number of worker processes, or `auto`: one per core."""

    name = "N|auto"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return os.cpu_count() or 1
        if not text.isdigit() or int(text) < 1:
            self.fail(
                f"{value!r} is not a number of processes; give 1 or more, or auto (one per core: "
                f"{os.cpu_count() or 1} here)",
                param,
                ctx,
            )
        return int(text)


class _State(click.ParamType[str]):
    """Where the shared state lives: the form is checked here, the store is reached by the server."""

    name = "STORE"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        if (problem := state_problem(text)) is not None:
            self.fail(problem, param, ctx)
        return text


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


_scenarios_option = click.option(
    "--scenarios",
    "scenario_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    envvar="MOCK_LLM_SCENARIOS",
    show_envvar=True,
    help="A directory (or file) of scenarios to load after the bundled ones; repeatable. "
    f"The environment variable takes several, separated by {os.pathsep!r}.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, prog_name="mock-llm-sse")
def main() -> None:
    """A mock LLM streaming server for testing clients.

    It streams OpenAI-style SSE chunks (and Anthropic and Responses events) from scripted,
    deterministic scenarios, with faults injected on purpose: slow tokens, drops, resets, stalls,
    error events, malformed and split frames, HTTP errors.

    \b
    Start it:      mock-llm-sse serve
    Watch it:      curl -N 'http://127.0.0.1:8383/completions?messages=hi&fault=drop@3'
    """


@main.command()
@click.option(
    "--host",
    default=DEFAULT_HOST,
    show_default=True,
    envvar="MOCK_LLM_HOST",
    show_envvar=True,
    help="Interface to bind; use 0.0.0.0 to accept connections from other machines.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    envvar="MOCK_LLM_PORT",
    show_envvar=True,
    help="Port to listen on; 0 picks a free one.",
)
@_scenarios_option
@click.option(
    "--default",
    "default_scenario",
    default="default",
    show_default=True,
    envvar="MOCK_LLM_DEFAULT",
    show_envvar=True,
    help="Scenario for requests that name none and match no `match` rule.",
)
@click.option(
    "--require-auth",
    cls=_TokenOption,
    metavar="TOKEN",
    envvar="MOCK_LLM_REQUIRE_AUTH",
    show_envvar=True,
    help="Model endpoints answer 401 without `Authorization: Bearer TOKEN`.",
)
@click.option(
    "--admin-token",
    cls=_TokenOption,
    metavar="TOKEN",
    envvar="MOCK_LLM_ADMIN_TOKEN",
    show_envvar=True,
    help="Writes under /_mock/, and reading the journal, need `Authorization: Bearer TOKEN`.",
)
@click.option(
    "--cors-origins",
    default="*",
    show_default=True,
    metavar="O,...",
    help="Comma-separated origins whose pages may call the model endpoints (* allows any); pages of the "
    "origins named here may also use the control API (/_mock/), which answers no other origin.",
)
@click.option(
    "--allowed-hosts",
    default="",
    metavar="H,...",
    envvar="MOCK_LLM_ALLOWED_HOSTS",
    show_envvar=True,
    help="Host names answered besides localhost, 127.0.0.1 and [::1] (.example.test takes its subdomains "
    "too, * any). Bound to loopback (the default), other names are refused, against DNS rebinding; bound to "
    "another address, any name is answered unless this is given.",
)
@click.option(
    "--journal-size",
    type=click.IntRange(min=1),
    default=Settings.journal_size,
    show_default=True,
    metavar="N",
    help="How many requests the journal (/_mock/requests) keeps; older ones are forgotten.",
)
@click.option(
    "--journal-max-bytes",
    type=click.IntRange(min=1),
    default=Settings.journal_max_bytes,
    show_default=True,
    metavar="N",
    help="About how many bytes of requests (bodies, headers, queries) the journal keeps; older ones are forgotten.",
)
@click.option(
    "--responses-max-bytes",
    type=click.IntRange(min=1),
    default=Settings.responses_max_bytes,
    show_default=True,
    metavar="N",
    help="About how many bytes of Responses API responses are stored for GET /v1/responses/{id} and "
    "previous_response_id; the least recently used are forgotten.",
)
@click.option(
    "--journal-secrets",
    type=click.Choice(JOURNAL_SECRETS),
    default="mask",
    show_default=True,
    envvar="MOCK_LLM_JOURNAL_SECRETS",
    show_envvar=True,
    help="mask: API keys, tokens, cookies and passwords in the journal are masked (sk-...1234); "
    "keep: recorded as sent, for tests that assert on the key a client used.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    default=Settings.max_body_bytes,
    show_default=True,
    metavar="N",
    help="The largest request body accepted; a larger one is answered 413 before it is read.",
)
@click.option(
    "--shutdown-grace",
    "shutdown_grace_s",
    type=click.FloatRange(min=0),
    default=Settings.shutdown_grace_s,
    show_default=True,
    metavar="SECONDS",
    help="On Ctrl-C or SIGTERM every stream ends at once; requests still running get this long.",
)
@click.option(
    "--request-timeout",
    "request_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=Settings.request_timeout_s,
    show_default=True,
    metavar="SECONDS",
    envvar="MOCK_LLM_REQUEST_TIMEOUT",
    show_envvar=True,
    help="How long a connection has to send each request, head and body; then it is closed "
    "(with a 408 when part of a request came).",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    default=Settings.max_connections,
    show_default=True,
    metavar="N",
    envvar="MOCK_LLM_MAX_CONNECTIONS",
    show_envvar=True,
    help="Connections open at once; more are answered 503 with Retry-After and closed. The soft open-file "
    "limit (ulimit -n) is raised to fit, as far as the hard limit allows; else N is lowered to fit.",
)
@click.option(
    "--rpm",
    type=click.IntRange(min=1),
    metavar="N",
    envvar="MOCK_LLM_RPM",
    show_envvar=True,
    help="Requests per minute each client (its API key, else its address) may make; past it, the provider's "
    "429 with Retry-After. Responses count it down in the provider's rate-limit headers.",
)
@click.option(
    "--tpm",
    type=click.IntRange(min=1),
    metavar="N",
    envvar="MOCK_LLM_TPM",
    show_envvar=True,
    help="Tokens per minute each client may use (prompt and answer, as the usage reports them).",
)
@click.option(
    "--rpd",
    type=click.IntRange(min=1),
    metavar="N",
    envvar="MOCK_LLM_RPD",
    show_envvar=True,
    help="Requests per day each client may make.",
)
@click.option(
    "--upstream",
    metavar="URL",
    envvar="MOCK_LLM_UPSTREAM",
    show_envvar=True,
    help="Forward model requests no scenario answers to this base URL (https://api.openai.com), path and "
    "query appended; the request's faults (fault=, X-Mock-Fault) strike the live response.",
)
@click.option(
    "--upstream-only", is_flag=True, help="Forward every model request to --upstream, whatever scenario it names."
)
@click.option(
    "--upstream-timeout",
    "upstream_timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    default=Settings.upstream_timeout_s,
    show_default=True,
    metavar="SECONDS",
    help="How long the upstream may take to send its response head (then a 504), and then each piece of its body.",
)
@click.option(
    "--upstream-ca",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="FILE",
    help="PEM file of the CA certificates an HTTPS upstream is verified against (a private CA).",
)
@click.option(
    "--record",
    "record_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    envvar="MOCK_LLM_RECORD",
    show_envvar=True,
    help="Write each exchange with the upstream as a scenario file in DIR (secrets left out), and load DIR's "
    "recordings, so a recorded request is replayed.",
)
@click.option(
    "--record-mode",
    type=click.Choice(RECORD_MODES),
    default="new",
    show_default=True,
    help="new: record requests no scenario or recording answers yet; all: forward and record every request "
    "again; none: replay only, a request with no recording is an error (works without --upstream).",
)
@click.option(
    "--workers",
    type=_Workers(),
    metavar="N|auto",
    default="1",
    show_default=True,
    envvar="MOCK_LLM_WORKERS",
    show_envvar=True,
    help="Processes serving the port, each on its own core (auto: one per core). A worker that dies is "
    "replaced; Ctrl-C and SIGTERM stop them all. Limits such as --max-connections hold per worker.",
)
@click.option(
    "--state",
    type=_State(),
    envvar="MOCK_LLM_STATE",
    show_envvar=True,
    help="Where the journal, run-time scenarios and counters live: " + "; ".join(STATE_FORMS) + ". "
    "Default: memory for one process, a SQLite file in a temporary directory (removed at exit) for --workers > 1.",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
def serve(
    host: str,
    port: int,
    scenario_dirs: tuple[Path, ...],
    default_scenario: str,
    require_auth: str | None,
    admin_token: str | None,
    cors_origins: str,
    allowed_hosts: str,
    journal_size: int,
    journal_max_bytes: int,
    responses_max_bytes: int,
    journal_secrets: str,
    max_body_bytes: int,
    shutdown_grace_s: float,
    request_timeout_s: float,
    max_connections: int,
    rpm: int | None,
    tpm: int | None,
    rpd: int | None,
    upstream: str | None,
    upstream_only: bool,
    upstream_timeout_s: float,
    upstream_ca: Path | None,
    record_dir: Path | None,
    record_mode: str,
    workers: int,
    state: str | None,
    log_level: str,
) -> None:
    """Serve the bundled scenarios and yours until Ctrl-C."""
    if workers > 1 and state == "memory":
        raise click.BadParameter(
            f"memory state is per process: each of the {workers} workers would see a slice of the journal, "
            "scenarios and counters. Give sqlite:PATH or redis://HOST:PORT/DB, or leave --state out for a "
            "temporary SQLite file",
            param_hint="'--state'",
        )
    try:
        settings = Settings(
            host=host,
            port=port,
            scenario_dirs=scenario_dirs,
            default_scenario=default_scenario,
            require_auth=require_auth,
            admin_token=admin_token,
            cors_origins=_comma_list(cors_origins) or ("*",),
            allowed_hosts=_comma_list(allowed_hosts),
            journal_size=journal_size,
            journal_max_bytes=journal_max_bytes,
            responses_max_bytes=responses_max_bytes,
            journal_secrets="keep" if journal_secrets == "keep" else "mask",
            max_body_bytes=max_body_bytes,
            shutdown_grace_s=shutdown_grace_s,
            request_timeout_s=request_timeout_s,
            max_connections=max_connections,
            rpm=rpm,
            tpm=tpm,
            rpd=rpd,
            upstream=upstream or None,
            upstream_only=upstream_only,
            upstream_timeout_s=upstream_timeout_s,
            upstream_ca=upstream_ca,
            record_dir=record_dir,
            record_mode="all" if record_mode == "all" else "none" if record_mode == "none" else "new",
            state=state or "memory",
            workers=workers,
            log_level=log_level,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if settings.state != "memory":
        from mock_server.store import check_store  # a shared store's client loads only for one

        try:
            check_store(settings.state)  # once, here: a worker that cannot reach it would only die
        except StateStoreError as exc:
            raise click.ClickException(f"Not starting: {exc}") from None
    catalog = _load_or_exit(settings)
    if default_scenario not in catalog:
        raise click.UsageError(
            f"--default {default_scenario!r} is not a loaded scenario; known: {', '.join(catalog.names)}"
        )
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server using the port? "
            "Pick another with --port (0 picks a free one)."
        ) from None
    bound_port = sock.getsockname()[1]
    if workers > 1:
        from mock_server.http.workers import run_workers  # loaded for more than one process only

        sys.exit(run_workers(settings, sock, on_ready=lambda shared: _print_banner(shared, bound_port, catalog)))
    app = create_app(settings, catalog)
    run_foreground(app, settings, sock, on_ready=lambda: _print_banner(settings, bound_port, catalog))


def _load_or_exit(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings)
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"Not starting: {len(exc.problems)} problem(s) in the scenarios.", err=True)
        sys.exit(1)


def _print_banner(settings: Settings, port: int, catalog: Catalog) -> None:
    host = settings.host
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    example = f"{url}/completions?messages=hello&scenario={catalog.default}"
    lines = [
        f"mock-llm-sse {VERSION} listening on {url}",
        f"Scenarios ({len(catalog)}): {', '.join(catalog.names)}",
        f"Default scenario: {catalog.default}",
        *traffic(settings),
        *rate_limits(settings),
        *processes(settings),
        f"Try: curl -N {shlex.quote(example)}",
        f"     curl -N {shlex.quote(url + '/completions?messages=hello&fault=drop@3')}",
        *(f"Protection: {line}" for line in protections(settings)),
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()


def processes(settings: Settings) -> list[str]:
    """The workers and where they keep their state, in a line (none for one process on memory state)."""
    if settings.workers > 1:
        return [f"Workers: {settings.workers} processes; state: {settings.state}"]
    return [] if settings.state == "memory" else [f"State: {settings.state}"]


def rate_limits(settings: Settings) -> list[str]:
    """The server's rate limits, in a line (none without any)."""
    given = [(settings.rpm, "requests/min"), (settings.tpm, "tokens/min"), (settings.rpd, "requests/day")]
    shown = [f"{value:,} {unit}" for value, unit in given if value is not None]
    return [f"Rate limits: {', '.join(shown)} per client (API key, else address)"] if shown else []


def traffic(settings: Settings) -> list[str]:
    """Where requests no scenario answers go, and what is recorded, one line each (none when neither)."""
    lines = []
    if settings.upstream is not None:
        which = "every model request" if settings.upstream_only else "model requests no scenario answers"
        if settings.record_mode == "none":
            which = "nothing (--record-mode none: replay only)"
        lines.append(f"Upstream: {settings.upstream} gets {which}")
    if settings.record_dir is not None:
        modes = {
            "new": "new exchanges are recorded",
            "all": "every exchange is recorded again",
            "none": "replayed only; a request with no recording is answered 404",
        }
        lines.append(f"Recordings: {settings.record_dir} ({modes[settings.record_mode]})")
    return lines


def protections(settings: Settings) -> list[str]:
    """What guards the server, one line each, as the banner states them (none is ever silent)."""
    named = [origin for origin in settings.cors_origins if origin != "*"]
    if is_loopback(settings.host) or settings.allowed_hosts:
        hosts = f"answers the Host names {', '.join([*LOOPBACK_NAMES, *settings.allowed_hosts])} only"
    else:
        hosts = f"bound to {settings.host}: answers any Host name (--allowed-hosts narrows it)"
    return [
        "model endpoints need the --require-auth token"
        if settings.require_auth
        else "model endpoints are open (no --require-auth)",
        "/_mock/ writes and the journal need the --admin-token token"
        if settings.admin_token
        else "/_mock/ writes and the journal are open to local clients (no --admin-token)",
        "keys and tokens in the journal are masked"
        if settings.journal_secrets == "mask"
        else "keys and tokens in the journal are kept as sent (--journal-secrets keep)",
        f"the control API answers pages of {', '.join(named)} besides its own"
        if named
        else "the control API answers no page of another origin",
        hosts,
    ]


@main.command()
@_scenarios_option
def scenarios(scenario_dirs: tuple[Path, ...]) -> None:
    """List the scenarios (bundled and from --scenarios) with their descriptions."""
    catalog = _load_or_exit(Settings(scenario_dirs=scenario_dirs))
    entries = catalog.entries()
    width = max(len(e.scenario.name) for e in entries)
    click.echo(f"{'NAME'.ljust(width)}  DESCRIPTION")
    for entry in entries:
        click.echo(f"{entry.scenario.name.ljust(width)}  {entry.scenario.description}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(paths: tuple[Path, ...]) -> None:
    """Check scenario files (or directories of them): exit 0, or 1 with `file:line: problem` lines."""
    try:
        entries = load_paths(paths)
    except ScenarioError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        click.echo(f"{len(exc.problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo(f"OK: {len(entries)} scenario(s): {', '.join(e.scenario.name for e in entries)}")


@main.command()
@click.argument("url")
@click.option(
    "--since",
    metavar="ID",
    help="Judge only the requests with a journal id above ID; INSTANCE:ID (the `instance` of /_mock/health) "
    "also makes it an error (exit 2) when the server has restarted since.",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 600),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for checks that need time to pass (a retry that has not come yet); 0 answers at once.",
)
@click.option(
    "--format",
    "form",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="How to print it: a table with advice, the server's JSON, or GitHub Actions annotations "
    "(`::error title=...::...`, one per finding, shown on the run and the pull request).",
)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option(
    "--junit-xml",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE",
    help="Also write the verdict as JUnit XML to FILE: a test case per call, a failure per error-level finding.",
)
@click.option(
    "--admin-token",
    envvar="MOCK_LLM_ADMIN_TOKEN",
    metavar="TOKEN",
    help="The server's --admin-token, to read its journal for the requests the report names (without it, a "
    "server with a token is judged all the same, and the report names the calls by record ids).",
)
def verdict(
    url: str, since: str | None, wait: float, form: str, as_json: bool, junit_xml: Path | None, admin_token: str | None
) -> None:
    """Judge how the clients of a running server behaved, from its journal.

    Prints the findings (code, severity, title, records) with advice; exits 1 when there is an
    error-level finding, 0 otherwise, and 2 when the server cannot be asked or has restarted since --since.
    """
    # The verdict's model and reports are loaded by this command alone, not by every `serve`.
    from mock_server.journal.verdict import Verdict, reports

    base = (url if "://" in url else f"http://{url}").rstrip("/")
    data = _fetch_verdict(base, since, wait)
    judged = reports.Judged(base, Verdict.from_json(data), _request_lines(base, since, admin_token))
    shown = "json" if as_json else form
    click.echo(json.dumps(data, indent=2) if shown == "json" else reports.render([judged], shown))
    if junit_xml is not None:
        try:
            junit_xml.write_text(reports.junit_xml([judged]), encoding="utf-8")
        except OSError as exc:
            _unreachable(f"cannot write the JUnit report to {junit_xml}: {exc.strerror or exc}")
    sys.exit(1 if judged.verdict.errors else 0)


def _request_lines(base: str, since: str | None, admin_token: str | None) -> dict[int, str]:
    """By record id, each request's line (`POST /v1/chat/completions scenario='default'`) from the
    server's journal; none when the journal cannot be read (an admin token not given)."""
    import urllib.parse  # loaded by `verdict` already
    import urllib.request

    from mock_server.journal.verdict import reports

    query = urllib.parse.urlencode({"since": since} if since is not None else {})
    request = urllib.request.Request(f"{base}/_mock/requests?{query}")
    if admin_token:
        request.add_header("Authorization", f"Bearer {admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            records = json.loads(response.read())
        return {r["id"]: reports.request_line(r["method"], r["path"], r.get("scenario")) for r in records}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _fetch_verdict(base: str, since: str | None, wait: float) -> dict[str, Any]:
    """GET /_mock/verdict of the server at `base`; exits 2 saying why when it cannot."""
    import urllib.error  # an HTTP client, for `verdict` alone: `serve` need not load it
    import urllib.parse
    import urllib.request

    from mock_server.journal.verdict import Verdict  # loaded by `verdict` already

    query = {"wait_ms": str(round(wait * 1000)), **({"since": since} if since is not None else {})}
    target = f"{base}/_mock/verdict?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(target, timeout=wait + 30) as response:
            data: dict[str, Any] = json.loads(response.read())
        Verdict.from_json(data)
    except urllib.error.HTTPError as exc:
        with exc:
            message = _error_message(exc.read())
        if message is not None:  # the server's own word: a bad or outdated --since
            _unreachable(f"{base} answered {exc.code}: {message}")
        _unreachable(f"{target} answered {exc.code} {exc.reason}; is {base} a mock-llm-sse server?")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        _unreachable(f"cannot reach the mock server at {base}: {reason}. Is it running (mock-llm-sse serve)?")
    except (ValueError, KeyError, TypeError):
        _unreachable(f"{target} did not answer with a verdict; is {base} a mock-llm-sse server?")
    return data


def _error_message(body: bytes) -> str | None:
    """The message of an error in the control API's shape, else None."""
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return None
    return message if isinstance(message, str) else None


def _unreachable(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(UNREACHABLE_EXIT)


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    metavar="DIR",
    help="The directory to write the scenario files into (made if missing); serve it with --scenarios DIR.",
)
@click.option("--force", is_flag=True, help="Replace scenario files of the same name; without it they are skipped.")
def import_cassettes_command(paths: tuple[Path, ...], out: Path, force: bool) -> None:
    """Convert vcrpy / pytest-recording cassettes (files, or directories of them) into scenario files.

    Each interaction becomes a scenario that replays its response's status, headers and body byte for
    byte, chosen by the request's path, model and prompt. Request headers (API keys) are not written.
    Prints a line per file written; exits 1 when a cassette or an interaction could not be imported or a
    file was skipped because it exists.
    """
    # Here, not at the top: serving never converts cassettes, and the module's readers cost at start.
    from mock_server.cassettes import CassetteError, Failed, Noted, Skipped, Written, import_cassettes

    written = failed = skipped = 0
    try:
        for result in import_cassettes(paths, out, force=force):
            match result:
                case Written(path=path, origin=origin, status=status, events=events):
                    written += 1
                    click.echo(f"wrote {path}: {origin} ({status}, {events} event{'s' * (events != 1)})")
                case Skipped(path=path, origin=origin):
                    skipped += 1
                    click.echo(f"skipped {path}: it exists (--force replaces it); from {origin}", err=True)
                case Failed(where=where, message=message):
                    failed += 1
                    click.echo(f"{where}: {message}", err=True)
                case Noted(where=where, message=message):
                    click.echo(f"{where}: {message}", err=True)
    except CassetteError as exc:
        raise click.ClickException(str(exc)) from None
    if failed or skipped:
        click.echo(f"{written} scenario file(s) written to {out}; {failed} not imported, {skipped} skipped.", err=True)
        sys.exit(1)
