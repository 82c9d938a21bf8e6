"""Regex engines for `match` rules: `python -m bench.patterns`.

Times one search of Python's `re`, the `regex` module with a timeout (`pip install regex`; left out
when it is not installed) and RE2 (what mock_server/patterns.py uses) on the patterns that made `re`
backtrack exponentially and on an ordinary one; best of 5. `re` is left out where it would run for
hours. The figures are quoted in mock_server/patterns.py.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from functools import partial
from types import ModuleType

import re2

TIMEOUT_S = 0.1
CASES = [
    ("^(a|a)*$", "a" * 26 + "!", True),
    ("^(a|aa)*c$", "a" * 35, True),
    ("(a?){25}a{25}", "a" * 27, True),
    ("^(a|a)*$", "a" * 9_999 + "!", False),
    ("(?i)weather", "x" * 10_000, True),
    ("(?i)weather", "lorem ipsum " * 833 + "Weather", True),
]


def best_of(runs: int, search: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        search()
        times.append(time.perf_counter() - start)
    return min(times)


def shown(seconds: float | None) -> str:
    if seconds is None:
        return "(hours)"
    return f"{seconds * 1e6:,.0f} us" if seconds < 0.01 else f"{seconds:.2f} s"


def with_timeout(regex: ModuleType, pattern: str, text: str) -> Callable[[], object]:
    compiled = regex.compile(pattern)

    def search() -> object:
        try:
            return compiled.search(text, timeout=TIMEOUT_S)
        except TimeoutError:
            return "timed out"

    return search


def main() -> None:
    try:
        regex: ModuleType | None = importlib.import_module("regex")
    except ImportError:
        regex = None
    options = re2.Options()
    options.log_errors = False
    print(f"| pattern | input | re | regex, timeout={TIMEOUT_S:g} s | RE2 |")
    print("| --- | --- | --- | --- | --- |")
    for pattern, text, run_re in CASES:
        python_re = re.compile(pattern)
        with_re = best_of(1, partial(python_re.search, text)) if run_re else None
        with_regex = shown(best_of(5, with_timeout(regex, pattern, text))) if regex else "(not installed)"
        compiled = re2.compile(pattern, options)
        with_re2 = best_of(5, partial(compiled.search, text))
        print(f"| `{pattern}` | {len(text):,} chars | {shown(with_re)} | {with_regex} | {shown(with_re2)} |")


if __name__ == "__main__":
    main()
