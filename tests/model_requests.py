"""One request body per model endpoint, so wire tests can run the same check on every dialect."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    id: str
    path: str
    dialect: str
    end_marker: str
    """The first line of the event that only a complete stream ends with."""

    def body(self, model: str, *, stream: bool = True, prompt: str = "hi") -> dict[str, Any]:
        messages = [{"role": "user", "content": prompt}]
        shape: dict[str, dict[str, Any]] = {
            "completions": {"messages": messages},
            "chat": {"messages": messages},
            "legacy": {"prompt": prompt},
            "responses": {"input": prompt},
            "anthropic": {"messages": messages, "max_tokens": 256},
        }
        return {"model": model, "stream": stream, **shape[self.id]}


ENDPOINTS = [
    Endpoint("completions", "/completions", "openai-chat", "data: [DONE]"),
    Endpoint("chat", "/v1/chat/completions", "openai-chat", "data: [DONE]"),
    Endpoint("legacy", "/v1/completions", "openai-completions", "data: [DONE]"),
    Endpoint("responses", "/v1/responses", "openai-responses", "event: response.completed"),
    Endpoint("anthropic", "/v1/messages", "anthropic", "event: message_stop"),
]
V1_ENDPOINTS = [e for e in ENDPOINTS if e.path.startswith("/v1/")]
