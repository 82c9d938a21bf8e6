"""A scenario's `usage:`: token counts that replace the counted ones, including those nothing can
count (tokens read from a prompt cache, written to it, spent reasoning in private)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TOKENS = 1 << 31
"""Far beyond any context window, and within every SDK's integer."""

Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class ScriptedUsage(BaseModel):
    """Counts in OpenAI's sense, each dialect rendering them in its own shape: `prompt_tokens`
    includes `cached_tokens` (read from the cache) and `cache_creation_tokens` (written to it);
    `completion_tokens` includes `reasoning_tokens`. A count left out is the counted one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_tokens: Tokens | None = None
    completion_tokens: Tokens | None = None
    cached_tokens: Tokens = 0
    cache_creation_tokens: Tokens = 0
    reasoning_tokens: Tokens | None = None

    @model_validator(mode="after")
    def _check_parts(self) -> Self:
        cache = self.cached_tokens + self.cache_creation_tokens
        if self.prompt_tokens is not None and cache > self.prompt_tokens:
            raise ValueError(
                f"cached_tokens + cache_creation_tokens ({cache}) are more than prompt_tokens ({self.prompt_tokens}), "
                "which include them; raise prompt_tokens or leave it out to count the prompt"
            )
        reasoning = self.reasoning_tokens
        if self.completion_tokens is not None and reasoning is not None and reasoning > self.completion_tokens:
            raise ValueError(
                f"reasoning_tokens ({reasoning}) are more than completion_tokens ({self.completion_tokens}), "
                "which include them; raise completion_tokens or leave it out to count the answer"
            )
        return self
