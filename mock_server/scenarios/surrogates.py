"""Lone surrogates: JSON may hold `"\\ud800"`, half of a UTF-16 pair, and Python reads it into a
string, but no UTF-8 text can hold one. Such a string fails wherever it is encoded (a hash, a
response, the journal), so request bodies have them replaced and scenarios refuse them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

REPLACEMENT = "\ufffd"
_LONE = re.compile("[\ud800-\udfff]")
"""A surrogate code point in a Python string is always a lone one: JSON reads a valid pair as the
character it encodes."""

Path = tuple[str | int, ...]


def replace_lone_surrogates(value: Any) -> Any:
    """`value` (parsed JSON) with every lone surrogate in its strings and keys replaced by U+FFFD, as
    a UTF-8 decoder replaces bytes it cannot read."""
    if isinstance(value, str):
        return _LONE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [replace_lone_surrogates(item) for item in value]
    return value


def lone_surrogates(value: Any, path: Path = ()) -> Iterator[Path]:
    """The path of every string (value or key) in `value` that holds a lone surrogate; a key's path
    ends with the key itself."""
    if isinstance(value, str):
        if _LONE.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _LONE.search(key):
                yield (*path, key)
            yield from lone_surrogates(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from lone_surrogates(item, (*path, index))
