"""The regexes of `match` rules: compiled at load time, refused when they can backtrack exponentially,
and run on a bounded piece of the request.

Python's `re` backtracks, and a repeat inside a repeat (`(a+)+`, `(\\w+\\s?)*`) can try exponentially
many ways to split a prompt that almost matches: one request would stall the whole server. That
shape, the usual catastrophic one, is refused with the reason; MATCH_INPUT_CHARS keeps the time of
the others (quadratic `.*x` on a long prompt, overlapping alternatives) small.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

MATCH_INPUT_CHARS = 10_000
"""How much of the prompt, the model and each header value `match` rules look at."""

# The parser `re` itself uses; private, but the only exact reading of a pattern's structure.
_parser: Any = importlib.import_module("re._parser")
_BACKTRACKING_REPEATS = (_parser.MAX_REPEAT, _parser.MIN_REPEAT)


def compile_match_pattern(value: str) -> re.Pattern[str]:
    """The compiled pattern; raises ValueError saying why it cannot be used."""
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    if _nests_unbounded_repeats(_parser.parse(value), inside_repeat=False):
        raise ValueError(
            f"regular expression {value!r} repeats a group that itself repeats without bound (like `(a+)+`), "
            "which can take exponential time on a prompt that almost matches; write it without the nesting "
            "(e.g. `[\\w\\s]+` instead of `(\\w+\\s?)+`) or make the inner repeat possessive (`a++`)"
        )
    return pattern


def _nests_unbounded_repeats(items: Any, *, inside_repeat: bool) -> bool:
    for op, argument in items:
        if op in _BACKTRACKING_REPEATS:
            _, most, body = argument
            unbounded = most == _parser.MAXREPEAT
            if unbounded and inside_repeat:
                return True
            if _nests_unbounded_repeats(body, inside_repeat=inside_repeat or most > 1):
                return True
        elif op == _parser.ATOMIC_GROUP:
            # Nothing outside an atomic group backtracks into it; inside, it is a pattern of its own.
            if _nests_unbounded_repeats(argument, inside_repeat=False):
                return True
        elif any(_nests_unbounded_repeats(sub, inside_repeat=inside_repeat) for sub in _subpatterns(argument)):
            return True
    return False


def _subpatterns(argument: Any) -> Iterator[Any]:
    """The nested patterns in an item's argument (groups, branches, lookarounds, conditionals)."""
    if isinstance(argument, _parser.SubPattern):
        yield argument
    elif isinstance(argument, tuple | list):
        for part in argument:
            yield from _subpatterns(part)
