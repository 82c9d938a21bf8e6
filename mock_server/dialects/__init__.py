"""Dialects: each renders the dialect-neutral content steps in one provider's wire format.

A dialect is pure: steps in, `Event`s out (or, for a response that is not streamed, one JSON body
from the collected answer), no I/O and no timing; the wire renders its events into bytes. Adding
one means a module here and an entry in `DIALECTS`; the compiler, the faults and the transport do
not change.
"""

from __future__ import annotations

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

DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect
    for dialect in (openai_chat.DIALECT, openai_completions.DIALECT, openai_responses.DIALECT, anthropic.DIALECT)
}
DIALECTS.update({dialect.name: dialect for dialect in (ollama.CHAT, ollama.GENERATE)})
DIALECTS[gemini.DIALECT.name] = gemini.DIALECT
DIALECTS.update({dialect.name: dialect for dialect in (azure_openai.CHAT, azure_openai.COMPLETIONS)})
DIALECTS.update({dialect.name: dialect for dialect in (bedrock.CONVERSE, bedrock.INVOKE)})

__all__ = ["DIALECTS", "Answer", "Dialect", "StreamInfo", "collect_answer"]
