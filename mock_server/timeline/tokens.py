"""Counting tokens as OpenAI's tokenizers do: tiktoken's `o200k_base`, and `cl100k_base` for the
models tiktoken maps to it (gpt-4, gpt-3.5-turbo, ...).

tiktoken downloads its BPE files on first use, which a machine without the internet cannot do, so
the files ship here (`encodings/*.tiktoken.xz`, OpenAI's files as tiktoken checks them by SHA-256,
xz-compressed) and the encodings are built from them. Building one takes a few tenths of a second,
once per process: `warm_in_background()` starts it once the server is up, so that start-up does not
wait for it, and a request that counts tokens awaits `ready()` first, off the event loop.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import lzma
import threading
from importlib import resources
from typing import TYPE_CHECKING

from mock_server.memo import kept_for_short_names

if TYPE_CHECKING:  # tiktoken loads with the first count or model lookup, not with every start
    import tiktoken

DEFAULT_ENCODING = "o200k_base"
"""The encoding of every model tiktoken does not know (Claude, Gemini, Ollama's): theirs are not
public, and o200k_base is the current OpenAI one."""

_ENDOFTEXT = "<|endoftext|>"
_ENDOFPROMPT = "<|endofprompt|>"
# The pattern, special tokens and file hash of each encoding, as tiktoken_ext/openai_public.py has them.
_ENCODINGS: dict[str, tuple[str, dict[str, int], str]] = {
    "o200k_base": (
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501 (tiktoken's pattern, as written there)
        {
            _ENDOFTEXT: 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            _ENDOFPROMPT: 100276,
        },
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
ENCODINGS = tuple(_ENCODINGS)
EXACT_CHARS = 1 << 16
"""Texts up to this long are counted exactly (under a millisecond or two); beyond it, counting all of
a text would hold up every other stream (a 1 MiB Chinese prompt: 150 ms), so the rest is estimated."""

_built: dict[str, tiktoken.Encoding] = {}
_lock = threading.Lock()
_warming: threading.Thread | None = None


@kept_for_short_names(entries=1024, max_chars=128)
def encoding_for(model: str | None) -> str:
    """The name of the encoding that counts a model's tokens: tiktoken's for the models it knows,
    among those shipped, else DEFAULT_ENCODING. Kept per model: tiktoken's lookup walks its model
    prefixes, 3-4 us on every request."""
    from tiktoken.model import encoding_name_for_model

    try:
        name = encoding_name_for_model(model or "")
    except KeyError:
        return DEFAULT_ENCODING
    return name if name in _ENCODINGS else DEFAULT_ENCODING


def encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The shipped encoding `name` (one of ENCODINGS), built on first use."""
    found = _built.get(name)
    if found is not None:
        return found
    with _lock:
        if name not in _built:
            _built[name] = _build(name)
        return _built[name]


def count_tokens(text: str, model: str | None = None) -> int:
    """How many tokens `text` is for `model`, special tokens counted as ordinary text: exactly up to
    EXACT_CHARS characters; a longer text's first EXACT_CHARS are counted and the rest estimated
    at their rate."""
    if not text:
        return 0
    encoder = encoding(encoding_for(model))
    if len(text) <= EXACT_CHARS:
        return len(encoder.encode_ordinary(text))
    head = len(encoder.encode_ordinary(text[:EXACT_CHARS]))
    return round(head * len(text) / EXACT_CHARS)


def warm() -> None:
    """Build the default encoding now, so that no request waits for it."""
    encoding(DEFAULT_ENCODING)


def warm_in_background() -> None:
    """Start building the default encoding in a thread of its own, once per process."""
    global _warming
    if _warming is None and DEFAULT_ENCODING not in _built:  # a second thread at once would only wait on _lock
        _warming = threading.Thread(target=warm, name="mock-llm-sse:tokenizer", daemon=True)
        _warming.start()


async def ready(model: str | None) -> None:
    """Return once the encoding that counts `model`'s tokens is built; a build still to do, or under
    way in the background, is waited for in a worker thread, so the event loop serves on meanwhile."""
    if encoding_for(model) not in _built:
        await asyncio.to_thread(encoding, encoding_for(model))


def bpe_file(name: str) -> bytes:
    """The shipped BPE file of an encoding, as OpenAI publishes it; raises ValueError when its
    SHA-256 is not the one tiktoken expects."""
    data = lzma.decompress(resources.files(__package__).joinpath(f"encodings/{name}.tiktoken.xz").read_bytes())
    expected = _ENCODINGS[name][2]
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"the shipped {name} file is damaged (its SHA-256 is not {expected}); reinstall mock-llm-sse")
    return data


def _build(name: str) -> tiktoken.Encoding:
    import tiktoken

    pattern, special, _ = _ENCODINGS[name]
    # Each line is a token in base64 and its rank, which in OpenAI's files is the line's number (the hash is
    # checked, and a test compares the ranks with tiktoken's own reading): numbering the tokens instead of
    # parsing 200,000 ranks in a loop takes 43 ms, not 75, all of it holding the interpreter's lock that the
    # event loop waits for. a2b_base64, not b64decode: a third faster, and the hash is checked already.
    tokens = bpe_file(name).split()[::2]
    ranks = dict(zip(map(binascii.a2b_base64, tokens), range(len(tokens)), strict=True))
    return tiktoken.Encoding(name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
