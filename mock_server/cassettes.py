"""vcrpy cassettes (pytest-recording writes the same) imported as recorded scenarios: one scenario
file per interaction, chosen by the request's path, model and prompt, that replays the response's
status, headers and body byte for byte.

A cassette is YAML (or JSON): `interactions:`, each `request: {method, uri, body, headers}` and
`response: {status: {code, message}, headers: {name: [value, ...]}, body: {string}}`. vcrpy writes a
body that is UTF-8 as text and any other as `!!binary` (base64); a body the upstream compressed is
kept compressed, with its `Content-Encoding`, so it is decompressed here. Request headers (where the
API key is) are never read, and the response headers that carry a credential or frame a body are
left out.
"""

from __future__ import annotations

import gzip
import importlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from mock_server.errors import RequestBodyError
from mock_server.http.prompt import parse_json_body
from mock_server.http.routes import MODEL_ROUTES, ModelRoute, RouteTable
from mock_server.scenarios.recording import EventSplitter
from mock_server.upstream.recording_file import (
    RecordingError,
    kept_headers,
    match_rules,
    scenario_name,
    shown_url,
    write_scenario,
)

CASSETTE_SUFFIXES = (".yaml", ".yml", ".json")

_SSE_FIELD = re.compile(rb"^(?:data|event|id|retry)?:")
_GZIP_MAGIC = b"\x1f\x8b"
_ROUTES = RouteTable(MODEL_ROUTES)


class CassetteError(RecordingError):
    """A cassette, or one interaction in it, cannot be imported; the message says why and what is expected."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One request and the response it got, as the cassette holds them."""

    method: str
    uri: str
    request_body: bytes
    status: int
    headers: tuple[tuple[str, str], ...]
    """The response's headers, a pair for each value, in the cassette's order."""
    body: bytes
    """The response body as recorded: compressed when its `Content-Encoding` says so."""


@dataclass(frozen=True, slots=True)
class Written:
    """A scenario file written."""

    path: Path
    origin: str
    status: int
    events: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A scenario file that exists already and was left as it was (no `force`)."""

    path: Path
    origin: str


@dataclass(frozen=True, slots=True)
class Failed:
    """A cassette, or an interaction (`where` ends in `#N`), that could not be imported."""

    where: str
    message: str


@dataclass(frozen=True, slots=True)
class Noted:
    """Something the reader should know that did not stop the import."""

    where: str
    message: str


ImportResult = Written | Skipped | Failed | Noted


def import_cassettes(paths: Iterable[Path], out: Path, *, force: bool = False) -> Iterator[ImportResult]:
    """Write a scenario file into `out` for every interaction of every cassette in `paths` (files, or
    directories searched for .yaml, .yml and .json files), yielding what became of each as it goes.
    An existing file is replaced only when `force`. Raises CassetteError when `out` cannot be a directory."""
    if out.exists() and not out.is_dir():
        raise CassetteError(f"--out {out}: is a file; give a directory for the scenario files")
    taken: set[str] = set()
    written_to = out.resolve()
    for path in paths:
        if path.is_dir():
            # Scenario files are YAML too: those of `out` (inside a directory of cassettes) are not cassettes.
            files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in CASSETTE_SUFFIXES and p.is_file() and not p.resolve().is_relative_to(written_to)
            )
            if not files:
                yield Noted(str(path), f"no cassette files ({', '.join(CASSETTE_SUFFIXES)}) in this directory")
        elif path.exists():
            files = [path]
        else:
            yield Failed(str(path), "no such file or directory")
            continue
        for file in files:
            try:
                interactions = read_cassette(file)
            except RecordingError as exc:
                yield Failed(str(file), str(exc))
                continue
            if not interactions:
                yield Noted(str(file), "the cassette has no interactions")
            for index, raw in enumerate(interactions):
                where = f"{file} #{index}"
                try:
                    yield _import_one(interaction_of(raw), where, out, taken, force=force)
                except RecordingError as exc:
                    yield Failed(where, str(exc))


def _import_one(interaction: Interaction, where: str, out: Path, taken: set[str], *, force: bool) -> ImportResult:
    fields = scenario_fields(interaction, where)
    name = fields["name"]
    number = 1
    while name in taken:  # the same request twice (a retry): the later ones are chosen by name only
        number += 1
        name = f"{fields['name']}-{number}"
    taken.add(name)
    fields["name"] = name
    path = out / f"{name}.yaml"
    origin = f"{where}: {fields['recording']['upstream'].removesuffix(' (imported)')}"
    if path.exists() and not force:
        return Skipped(path, origin)
    write_scenario(fields, path)
    return Written(path, origin, interaction.status, len(fields["recording"]["events"]))


def read_cassette(path: Path) -> list[Any]:
    """The interactions of a cassette file, each still as the file has it (see `interaction_of`);
    raises CassetteError saying why the file is not a cassette."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CassetteError(f"cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CassetteError(f"not a cassette: invalid JSON ({exc})") from None
    else:
        try:
            data = yaml.load(raw, Loader=_CassetteLoader)
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f" at line {mark.line + 1}" if mark is not None else ""
            raise CassetteError(
                f"not a cassette: a YAML tag that is not read here{line} ({exc.problem}); a cassette has "
                "only the tags vcrpy writes (!!binary, !!python/unicode, !!python/tuple, ...)"
            ) from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f" at line {mark.line + 1}" if mark is not None else ""
            raise CassetteError(f"not a cassette: invalid YAML{line}: {exc.problem or exc}") from None
        except yaml.YAMLError as exc:
            raise CassetteError(f"not a cassette: invalid YAML: {exc}") from None
    if isinstance(data, list) and data and isinstance(data[0], Mapping) and "request" in data[0]:
        raise CassetteError(
            "a cassette of vcrpy before 1.0 (a list of interactions, no `interactions:` key); convert it with "
            "vcrpy's `python -m vcr.migration PATH` first"
        )
    if not isinstance(data, Mapping) or not isinstance(data.get("interactions"), list):
        raise CassetteError(
            "not a vcrpy cassette: expected a mapping with an `interactions:` list (each with `request:` and "
            f"`response:`), found {_described(data)}"
        )
    interactions: list[Any] = data["interactions"]
    return interactions


def interaction_of(raw: object) -> Interaction:
    """One entry of a cassette's `interactions:`; raises CassetteError saying what is missing."""
    if not isinstance(raw, Mapping):
        raise CassetteError(f"expected a mapping with `request:` and `response:`, found {_described(raw)}")
    request, response = raw.get("request"), raw.get("response")
    if not isinstance(request, Mapping) or not isinstance(response, Mapping):
        missing = "request" if not isinstance(request, Mapping) else "response"
        raise CassetteError(f"`{missing}:` is missing or not a mapping; an interaction has `request:` and `response:`")
    method, uri = request.get("method"), request.get("uri")
    if not isinstance(method, str) or not isinstance(uri, str):
        raise CassetteError("`request:` needs `method:` and `uri:`, as text")
    # vcrpy's older httpx recordings kept `status_code` and `content` instead of `status` and `body`.
    status = response.get("status", response.get("status_code"))
    code = status.get("code") if isinstance(status, Mapping) else status
    if isinstance(code, bool) or not isinstance(code, int):
        raise CassetteError(f"`response.status.code` should be an HTTP status code, found {_described(code)}")
    body = response["body"] if "body" in response else response.get("content")
    if isinstance(body, Mapping):
        body = body.get("string")
    return Interaction(
        method=method.upper(),
        uri=uri,
        request_body=_bytes(request.get("body"), "request.body"),
        status=code,
        headers=_header_pairs(response.get("headers")),
        body=_bytes(body, "response.body.string"),
    )


def scenario_fields(interaction: Interaction, origin: str) -> dict[str, Any]:
    """The scenario that replays `interaction` (its name not yet made unique among others), as the
    file writes it; raises CassetteError when its body cannot be replayed."""
    parts = urlsplit(interaction.uri)
    route, params, path = _route_for(interaction.method, unquote(parts.path) or "/")
    shown = shown_url(interaction.uri)
    prompt, model = _prompt_and_model(route, params, parts.query, interaction.request_body)
    headers = dict(kept_headers(interaction.headers))
    body = _decoded(interaction.body, _values(interaction.headers, "content-encoding"))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = " (it looks gzip-compressed, but no Content-Encoding says so)" if body[:2] == _GZIP_MAGIC else ""
        raise CassetteError(
            f"the response body is not UTF-8 text{hint}: byte {exc.start} is {body[exc.start : exc.start + 1]!r}; "
            "a recording replays text (SSE or JSON), so this interaction is not imported"
        ) from None
    content_type = next(iter(_values(interaction.headers, "content-type")), None) or _guessed_content_type(body)
    fields: dict[str, Any] = {
        "name": scenario_name(interaction.method, path, model, interaction.request_body),
        "description": f"Imported from {origin}: {interaction.method} {shown}",
        "match": match_rules(path, model, prompt),
        "content_type": content_type,
    }
    if headers:
        fields["headers"] = headers
    fields["recording"] = {
        "status": interaction.status,
        "upstream": f"{interaction.method} {shown} (imported)",
        "events": [{"at_ms": 0, "data": block.decode("utf-8")} for block in _blocks(body, content_type)],
    }
    return fields


def _route_for(method: str, path: str) -> tuple[ModelRoute | None, dict[str, str], str]:
    """The model route that answers such a request, its path parameters (a Gemini model, an Azure
    deployment), and the path to match it by. A path that ends in a route's `/v1/...` path under a
    prefix (OpenRouter's `/api/v1/chat/completions`, Groq's `/openai/v1/...`) is taken as that
    route's, since the server answers it there."""
    found = _ROUTES.match(method, path)
    if found is not None:
        return found[0], found[1], path
    under_prefix = [
        route
        for route in MODEL_ROUTES
        if route.method == method and route.path.startswith("/v1/") and path.endswith(route.path)
    ]
    if not under_prefix:
        return None, {}, path
    longest = max(under_prefix, key=lambda route: len(route.path))
    return longest, {}, longest.path


def _prompt_and_model(
    route: ModelRoute | None, params: Mapping[str, str], query: str, body: bytes
) -> tuple[str | None, str | None]:
    """The prompt as the server reads it from such a request (None without a route, or for a request it
    would refuse), and the model the request names (in its body, or in its path)."""
    data: Mapping[str, Any]
    if route is not None and not route.reads_body:
        data = dict(parse_qsl(query, keep_blank_values=True))
    else:
        try:
            data = parse_json_body(body)
        except RequestBodyError:
            return None, None
    model = data.get("model")
    model = model if isinstance(model, str) else None
    if route is None:
        return None, model
    try:
        asked = route.read(data, params).prompt
    except RequestBodyError:
        return None, model
    return asked.text, asked.model or model


def _values(pairs: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for header, value in pairs if header.lower() == name]


def _decoded(body: bytes, encodings: list[str]) -> bytes:
    """`body` with its content codings undone, the last applied first. A body that does not decode but
    is UTF-8 text was recorded decoded already (aiohttp does so, keeping the header), and is kept."""
    codings = [coding.strip().lower() for value in encodings for coding in value.split(",") if coding.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        decode = _DECODERS.get(coding)
        if decode is None:
            known = ", ".join(_DECODERS)
            raise CassetteError(f"the response body is {coding}-encoded, which cannot be decoded here; known: {known}")
        try:
            body = decode(body)
        except ValueError as exc:
            if _is_utf8(body):
                return body
            raise CassetteError(
                f"the response says Content-Encoding: {coding}, but its body does not decode: {exc}"
            ) from None
    return body


def _gunzip(body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


def _inflate(body: bytes) -> bytes:
    """`deflate` is zlib's format by the standard, and raw deflate from some servers."""
    try:
        return zlib.decompress(body)
    except zlib.error:
        try:
            return zlib.decompress(body, -zlib.MAX_WBITS)
        except zlib.error as exc:
            raise ValueError(str(exc)) from None


def _unbrotli(body: bytes) -> bytes:
    for module_name in ("brotli", "brotlicffi"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            decoded: bytes = module.decompress(body)
        except Exception as exc:  # each binding has an error class of its own
            raise ValueError(str(exc) or type(exc).__name__) from None
        return decoded
    if _is_utf8(body):
        return body  # recorded decoded already, as for the others
    raise CassetteError("the response body is brotli-encoded (br); install the `brotli` package to decode it")


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _inflate,
    "br": _unbrotli,
}


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guessed_content_type(body: bytes) -> str:
    """For a response recorded without a Content-Type (the server always sends one)."""
    if _SSE_FIELD.match(body.lstrip(b"\r\n")):
        return "text/event-stream; charset=utf-8"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"


def _blocks(body: bytes, content_type: str) -> list[bytes]:
    """An SSE body as its blocks, each with its blank line (and a tail without one as a last block);
    any other body whole."""
    if not body:
        return []
    if content_type.split(";")[0].strip().lower() != "text/event-stream":
        return [body]
    splitter = EventSplitter()
    blocks = splitter.feed(body)
    rest = splitter.rest()
    return [*blocks, rest] if rest else blocks


def _bytes(value: object, where: str) -> bytes:
    """A body as the cassette has it: text (UTF-8), `!!binary` bytes, none, or the pieces of an iterator."""
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise CassetteError(f"`{where}` holds a lone surrogate, which is no UTF-8 text") from None
    if isinstance(value, list | tuple):
        return b"".join(_bytes(piece, where) for piece in value)
    raise CassetteError(f"`{where}` should be text or `!!binary` bytes, found {_described(value)}")


def _header_pairs(value: object) -> tuple[tuple[str, str], ...]:
    """Headers as vcrpy keeps them (`{name: [values]}`), or a single value per name, or `[name, value]` pairs."""
    if value is None:
        return ()
    if not isinstance(value, Mapping | list):
        raise CassetteError(f"`response.headers` should be a mapping of names to values, found {_described(value)}")
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise CassetteError(f"`response.headers` should be a mapping of names to values, found {item!r} in it")
        name, values = item
        for one in values if isinstance(values, list | tuple) else [values]:
            pairs.append((str(name), one.decode("latin-1") if isinstance(one, bytes) else str(one)))
    return tuple(pairs)


def _described(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        keys = ", ".join(str(key) for key in list(value)[:5])
        return f"a mapping with keys {keys}" if keys else "an empty mapping"
    names = {str: "text", bytes: "bytes", list: "a list", int: "a number", float: "a number", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


class _CassetteLoader(yaml.SafeLoader):
    """YAML as vcrpy writes it: safe, plus the few Python tags vcrpy's dumper puts in cassettes (text,
    tuples, and request bodies that were a file object or an iterator); any other tag is refused."""


def _python_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


def _python_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    return loader.construct_sequence(node)  # type: ignore[arg-type]


def _file_body(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    """`!!python/object/new:_io.BytesIO` with `state: [content, ...]`: its content."""
    state = loader.construct_mapping(node, deep=True).get("state") or [b""]  # type: ignore[arg-type]
    return _bytes(state[0] if state else b"", "request.body")


def _iterator_body(loader: yaml.SafeLoader, node: yaml.Node) -> bytes:
    """`!!python/object/apply:builtins.iter` with `args: [[pieces]]`: the pieces joined."""
    args = loader.construct_mapping(node, deep=True).get("args") or [[]]  # type: ignore[arg-type]
    return _bytes(args[0] if args else b"", "request.body")


for _tag, _constructor in {
    "python/str": _python_text,
    "python/unicode": _python_text,
    "python/tuple": _python_tuple,
    "python/object/new:_io.BytesIO": _file_body,
    "python/object/apply:builtins.iter": _iterator_body,
}.items():
    _CassetteLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _constructor)
