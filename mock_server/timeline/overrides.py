"""Per-request overrides from the query string and `X-Mock-*` headers (a header wins over the query)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mock_server.errors import OverrideError
from mock_server.scenarios.delays import MAX_DELAY_MS
from mock_server.scenarios.faults import MAX_FAULTS, Fault, parse_fault_list
from mock_server.scenarios.latency import PRESETS, Latency

MAX_FAULT_TEXT = 4096
"""The longest `fault=` value or `X-Mock-Fault` header: room for MAX_FAULTS long items, and a bound
on the text parsed before the count is known."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """What one request changes in its scenario."""

    faults: tuple[Fault, ...] = ()
    chunk_ms: float | None = None
    first_chunk_ms: float | None = None
    jitter_ms: float | None = None
    seed: int | None = None
    latency: Latency | None = None
    """A latency preset instead of the scenario's pacing."""


@dataclass(frozen=True, slots=True)
class _Option:
    query: str
    header: str


FAULT = _Option("fault", "x-mock-fault")
CHUNK_MS = _Option("chunk_ms", "x-mock-chunk-ms")
FIRST_CHUNK_MS = _Option("first_chunk_ms", "x-mock-first-chunk-ms")
JITTER_MS = _Option("jitter_ms", "x-mock-jitter-ms")
SEED = _Option("seed", "x-mock-seed")
LATENCY = _Option("latency", "x-mock-latency")
_OPTIONS = (FAULT, CHUNK_MS, FIRST_CHUNK_MS, JITTER_MS, SEED, LATENCY)
OVERRIDE_QUERY = frozenset({"scenario", *(o.query for o in _OPTIONS)})
"""The query parameters that speak to this server, not to an upstream a request is forwarded to."""
NO_OVERRIDES = Overrides()
_HEADER_PREFIX = b"x-mock-"


def overrides_of(
    query: Mapping[str, str], headers: Mapping[str, str], raw_headers: Iterable[tuple[bytes, bytes]]
) -> Overrides:
    """`parse_overrides`, after a look at whether the request asks for any: most ask for none, and
    reading each option from Starlette's headers took 6 us of every request. `raw_headers` are the
    request's as ASGI has them (lower-case names)."""
    if any(name.startswith(_HEADER_PREFIX) for name, _ in raw_headers) or (
        query and any(o.query in query for o in _OPTIONS)
    ):
        return parse_overrides(query, headers)
    return NO_OVERRIDES


def parse_overrides(query: Mapping[str, str], headers: Mapping[str, str]) -> Overrides:
    """Read every override; raises OverrideError naming the bad part and what is accepted.

    `headers` must have lower-case names (Starlette's `Headers` does).
    """
    fault_text = _lookup(FAULT, query, headers)
    return Overrides(
        faults=tuple(_parse_faults(fault_text, _where(FAULT, headers))) if fault_text is not None else (),
        chunk_ms=_parse_ms(CHUNK_MS, query, headers),
        first_chunk_ms=_parse_ms(FIRST_CHUNK_MS, query, headers),
        jitter_ms=_parse_ms(JITTER_MS, query, headers),
        seed=_parse_seed(query, headers),
        latency=_parse_latency(query, headers),
    )


def _lookup(option: _Option, query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    if option.header in headers:
        return headers[option.header]
    return query.get(option.query)


def _where(option: _Option, headers: Mapping[str, str]) -> str:
    if option.header in headers:
        return "header " + "-".join(part.capitalize() for part in option.header.split("-"))
    return f"query parameter {option.query}"


def _parse_faults(text: str, where: str) -> list[Fault]:
    if len(text) > MAX_FAULT_TEXT:
        raise OverrideError(
            f"{where} is {len(text):,} characters long, more than the {MAX_FAULT_TEXT:,} accepted; "
            f"a request adds at most {MAX_FAULTS} faults, e.g. drop@3,stall@4:1500"
        )
    try:
        return parse_fault_list(text)
    except OverrideError as exc:
        raise OverrideError(f"{exc}. Faults are comma-separated KIND[@N][:ARG], e.g. drop@3,stall@4:1500") from None


def _parse_ms(option: _Option, query: Mapping[str, str], headers: Mapping[str, str]) -> float | None:
    text = _lookup(option, query, headers)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_DELAY_MS:
        raise OverrideError(
            f"{_where(option, headers)} must be a number of milliseconds from 0 to {MAX_DELAY_MS} (one hour), "
            f"got {text!r}"
        )
    return value


def _parse_seed(query: Mapping[str, str], headers: Mapping[str, str]) -> int | None:
    text = _lookup(SEED, query, headers)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise OverrideError(f"{_where(SEED, headers)} must be a whole number, got {text!r}") from None


def _parse_latency(query: Mapping[str, str], headers: Mapping[str, str]) -> Latency | None:
    text = _lookup(LATENCY, query, headers)
    if text is None:
        return None
    found = PRESETS.get(text)
    if found is None:
        raise OverrideError(
            f"{_where(LATENCY, headers)} must be a latency preset, one of {', '.join(PRESETS)}; got {text!r}"
        )
    return found
