"""The matrix's rows: each client family the suite installs, as its users call it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Family(StrEnum):
    PYTHON = "python"
    NODE = "node"
    BROWSER = "browser"


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    """The client's name in its family's runner."""
    family: Family
    label: str
    """The row's header in the table."""
    package: str
    """The package whose version the table names (Python distribution, npm package, or "" for the browser's own)."""
    own_errors: str = ""
    """The error-type prefix the table leaves out: the client's own package (openai., anthropic.)."""
    timeout: str | None = "`timeout`"
    """The option that was given the column's timeout; None when the client has none (EventSource)."""

    @property
    def id(self) -> str:
        return f"{self.family}:{self.key}"


ROWS: tuple[Row, ...] = (
    Row("openai", Family.PYTHON, "openai-py, `max_retries=0`", "openai", "openai."),
    Row("openai-retries", Family.PYTHON, "openai-py, `max_retries=2`", "openai", "openai."),
    Row("anthropic", Family.PYTHON, "anthropic-py `messages.stream()`", "anthropic", "anthropic."),
    Row("httpx-sse", Family.PYTHON, "httpx-sse (own loop)", "httpx-sse", "httpx_sse."),
    Row(
        "google-genai",
        Family.PYTHON,
        "google-genai `generate_content_stream()`",
        "google-genai",
        "google.",
        timeout="`HttpOptions(timeout)`",
    ),
    Row("ollama", Family.PYTHON, "ollama-py `chat(stream=True)`", "ollama", "ollama."),
    Row(
        "boto3",
        Family.PYTHON,
        "boto3 `converse_stream()`",
        "boto3",
        "botocore.",
        timeout="`Config(read_timeout)`",
    ),
    Row("openai", Family.NODE, "openai (npm)", "openai"),
    Row("anthropic", Family.NODE, "@anthropic-ai/sdk `messages.stream()`", "@anthropic-ai/sdk"),
    Row("ai-sdk", Family.NODE, "AI SDK `streamText`, `provider.chat()`", "ai", timeout="`timeout: {chunkMs}`"),
    Row("eventsource", Family.NODE, "eventsource (npm), GET /completions", "eventsource", timeout=None),
    Row("eventsource", Family.BROWSER, "Chromium `EventSource`, GET /completions", "", timeout=None),
    Row(
        "fetch-event-source",
        Family.BROWSER,
        "Chromium fetch-event-source, POST /completions",
        "@microsoft/fetch-event-source",
        timeout=None,
    ),
    Row("axios", Family.BROWSER, "Chromium axios, POST /completions", "axios"),
)
