"""Answers kept for short names, worked out afresh for long ones."""

from __future__ import annotations

from mock_server.journal.redaction import is_secret_name
from mock_server.memo import kept_for_short_names
from mock_server.timeline.tokens import DEFAULT_ENCODING, encoding_for


def test_a_short_name_is_worked_out_once_and_a_long_one_every_time() -> None:
    calls: list[str | None] = []

    @kept_for_short_names(entries=2, max_chars=8)
    def meaning(name: str | None) -> str:
        calls.append(name)
        return f"meant {name}"

    assert [meaning("x-api-ke"), meaning("x-api-ke"), meaning(None), meaning(None)] == [
        "meant x-api-ke",
        "meant x-api-ke",
        "meant None",
        "meant None",
    ]
    assert calls == ["x-api-ke", None]
    long = "x" * 9
    assert meaning(long) == meaning(long) == f"meant {long}"
    assert calls[2:] == [long, long]
    meaning("a"), meaning("b"), meaning("x-api-ke")  # the newest two are kept, the oldest forgotten
    assert calls[-1] == "x-api-ke"


def test_the_kept_answers_are_the_worked_out_ones() -> None:
    long_secret = "x-" + "very-" * 20 + "api-key"
    for name in ("authorization", "x-api-key", "max_tokens", long_secret):
        assert is_secret_name(name) == is_secret_name(name)
    assert [is_secret_name(n) for n in (long_secret, "x-api-key", "max_tokens")] == [True, True, False]
    assert encoding_for("gpt-4o") == encoding_for("gpt-4o") == "o200k_base"
    assert encoding_for(None) == encoding_for("m" * 500) == DEFAULT_ENCODING
