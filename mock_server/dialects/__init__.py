"""Dialects: each renders the dialect-neutral content steps in one provider's wire format.

A dialect is pure: steps in, `Event`s out (or, for a response that is not streamed, one JSON body
from the collected answer), no I/O and no timing; the wire renders its events into bytes. Adding
one means a module here and an entry in `DIALECTS`; the compiler, the faults and the transport do
not change.

The names below load on first use: importing the package, or one module of it (the rate limiter
imports `quota`), loads no dialect, so a server answers its ready check before any is loaded (they
bring the timeline and the wire with them); the first model request loads them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mock_server.dialects.answer import Answer, collect_answer
    from mock_server.dialects.base import Dialect, StreamInfo

    DIALECTS: dict[str, Dialect]

__all__ = ["DIALECTS", "Answer", "Dialect", "StreamInfo", "collect_answer"]


def __getattr__(name: str) -> Any:
    if name not in __all__:  # a submodule not imported yet, or a probe: nothing to load for it
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from mock_server.dialects import (
        anthropic,
        azure_openai,
        bedrock,
        gemini,
        ollama,
        openai_chat,
        openai_completions,
        openai_responses,
    )
    from mock_server.dialects.answer import Answer, collect_answer
    from mock_server.dialects.base import Dialect, StreamInfo

    dialects: dict[str, Dialect] = {
        dialect.name: dialect
        for dialect in (openai_chat.DIALECT, openai_completions.DIALECT, openai_responses.DIALECT, anthropic.DIALECT)
    }
    dialects.update({dialect.name: dialect for dialect in (ollama.CHAT, ollama.GENERATE)})
    dialects[gemini.DIALECT.name] = gemini.DIALECT
    dialects.update({dialect.name: dialect for dialect in (azure_openai.CHAT, azure_openai.COMPLETIONS)})
    dialects.update({dialect.name: dialect for dialect in (bedrock.CONVERSE, bedrock.INVOKE)})
    globals().update(
        DIALECTS=dialects, Answer=Answer, Dialect=Dialect, StreamInfo=StreamInfo, collect_answer=collect_answer
    )
    return globals()[name]
