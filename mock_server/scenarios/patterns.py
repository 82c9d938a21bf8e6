"""The regexes of `match` rules: compiled with RE2 when a scenario loads, so that searching a request
takes time linear in its text whatever the pattern, and run on a bounded piece of that text.

Python's `re` backtracks, and patterns as plain as `^(a|a)*$`, `^(a|aa)*c$` or `(a?){25}a{25}` try
exponentially many ways to read a prompt that almost matches: one request of 27 characters held the
server (every stream) for 3.5 s, each more character doubling it. Two ways out were measured
(`python -m bench.patterns`, best of 5, 2-core development machine):

| pattern         | input                        | re      | regex, timeout=0.1 s | RE2   |
| --------------- | ---------------------------- | ------- | -------------------- | ----- |
| `^(a|a)*$`      | 26 a's and `!`               | 3.33 s  | 0.10 s (timed out)   | 2 us  |
| `^(a|aa)*c$`    | 35 a's                       | 0.98 s  | 2 us                 | 2 us  |
| `(a?){25}a{25}` | 27 a's                       | 0.21 s  | 134 us               | 10 us |
| `^(a|a)*$`      | 9,999 a's and `!`            | (hours) | 0.10 s (timed out)   | 31 us |
| `(?i)weather`   | 10,000 characters, no match  | 42 us   | 6 us                 | 4 us  |
| `(?i)weather`   | 10,003 characters, a match   | 43 us   | 7 us                 | 40 us |

RE2 was chosen: it never backtracks, so no pattern and no prompt can take long, and there is no
timeout to tune. The `regex` module with a timeout still spends the whole timeout on every request a
hostile rule looks at, for every such rule, while all streams wait: a timeout short enough to keep
their timing (a few ms) would also cut off honest patterns on a busy machine. The price of RE2 is
its syntax: no backreferences, lookarounds, possessive repeats, atomic groups or conditionals (they
need backtracking), `\\z` instead of `\\Z`, and `\\d`, `\\w`, `\\s` and `\\b` are ASCII only (`\\p{L}`
and `\\p{N}` match letters and digits of any script). A pattern RE2 cannot run is refused when the
scenario loads, saying what to write instead. `(?i)`, `(?m)` and `(?s)` work as in `re`, and a
rule matches when its pattern is found anywhere in the text, as `re.search` does.

MATCH_INPUT_CHARS still bounds the text a rule reads: RE2's time is linear in the text but grows
with the pattern's size too (a 2,000-word alternation took 68 ms over 10,000 characters, 1.1 s over
a 1 MiB prompt), and no rule needs more than the start of a prompt.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

MATCH_INPUT_CHARS = 10_000
"""How much of the prompt, the model and each header value `match` rules look at."""


class _Regexp(Protocol):
    """What `re2.compile` returns, as far as we use it (google-re2 has no type hints)."""

    def search(self, text: str) -> object | None: ...


@functools.cache
def _re2() -> tuple[Any, Any]:
    """google-re2 and the options every pattern compiles with, loaded with the first `match` pattern
    rather than with every start."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the scenario's author, not to stderr
    return re2, options


_LINEAR = "`match` patterns run on RE2, which never takes more than linear time on a request"
# RE2's error messages and what to do instead, searched (with `re`'s cache) only when a pattern is refused.
_INSTEAD: tuple[tuple[str, str], ...] = (
    (
        r"invalid escape sequence: \\[1-9]|invalid perl operator: \(\?P$",
        "RE2 has no backreferences; match the repeated text itself",
    ),
    (
        r"invalid perl operator: \(\?<?[=!]",
        "RE2 has no lookahead or lookbehind; match the neighbouring text as part of the pattern "
        "(`foo(?=bar)` -> `foobar`): a rule only asks whether the pattern is found",
    ),
    (
        r"bad repetition operator: .*\+$",
        "RE2 has no possessive repeats, and needs none as it never backtracks: write `a+` for `a++`",
    ),
    (
        r"invalid perl operator: \(\?>",
        "RE2 has no atomic groups, and needs none as it never backtracks: write `(?:...)` for `(?>...)`",
    ),
    (r"invalid perl operator: \(\?\(", "RE2 has no conditionals; write the alternatives out with `|`"),
    (r"invalid perl operator: \(\?#", "RE2 has no comment groups; remove it"),
    (r"invalid perl operator: \(\?x", "RE2 has no verbose mode; remove the spaces and comments"),
    (r"invalid perl operator: \(\?[auL]", "RE2 knows the flags i, m, s and U only"),
    (r"invalid escape sequence: \\Z", "write `\\z` for the end of the text"),
    (r"invalid escape sequence: \\[uUN]", "write a character by its code point as `\\x{263A}`, or itself"),
    (
        r"invalid repetition size",
        "RE2 repeats at most 1000 times, nested counts multiplied (`(a{100}){10}` is 1000)",
    ),
    (r"pattern too large", "it compiles to more than RE2's memory budget; write a shorter pattern"),
)


class MatchPattern:
    """A compiled `match` regex: whether it is found in a text (within MATCH_INPUT_CHARS), and the
    source it was written as (what a scenario serialises back to)."""

    __slots__ = ("_regexp", "source")

    def __init__(self, source: str) -> None:
        """Compile `source`; raises ValueError saying why RE2 cannot run it and what to write instead."""
        self.source = source
        self._regexp = _compile(source)

    def search(self, text: str) -> bool:
        """Whether the pattern is found anywhere in the first MATCH_INPUT_CHARS characters of `text`."""
        return self._regexp.search(text[:MATCH_INPUT_CHARS]) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MatchPattern) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __repr__(self) -> str:
        return f"MatchPattern({self.source!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source_type: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda p: p.source)
        )


def _validate(value: object) -> MatchPattern:
    if isinstance(value, MatchPattern):
        return value
    if isinstance(value, str):
        return MatchPattern(value)
    if isinstance(value, re.Pattern):
        raise ValueError(f"give the pattern {value.pattern!r} as a string: {_LINEAR}, not on Python's `re`")
    raise ValueError(f"a `match` pattern is a regular expression written as a string, not {type(value).__name__}")


def _compile(source: str) -> _Regexp:
    re2, options = _re2()
    try:
        regexp: _Regexp = re2.compile(source, options)
    except re2.error as exc:
        error = _error_text(exc)
        advice = next((advice for pattern, advice in _INSTEAD if re.search(pattern, error)), None)
        if advice is None:
            raise ValueError(f"invalid regular expression {source!r}: {error}") from None
        raise ValueError(f"regular expression {source!r} cannot be used ({error}): {advice}. {_LINEAR}") from None
    return regexp


def _error_text(exc: Exception) -> str:
    """RE2's message (google-re2 gives it as bytes)."""
    detail = exc.args[0] if exc.args else exc
    return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
