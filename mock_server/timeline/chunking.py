"""Cutting a reply into the pieces a model would stream."""

from __future__ import annotations

import re

# Scripts written without spaces between words: each character streams as its own piece,
# as LLM tokenizers do, so a CJK reply "by word" still arrives in small pieces.
_UNSPACED = (
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3100-\u312f"  # Bopomofo
    "\u3130-\u318f"  # Hangul compatibility jamo
    "\u31f0-\u31ff"
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # full-width forms
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_WORD = re.compile(rf"\s*(?:[{_UNSPACED}]|[^\s{_UNSPACED}]+)|\s+")

Chunking = str | int
"""`"word"`, `"char"`, or a positive number of characters per piece."""


def split_reply(text: str, chunking: Chunking) -> list[str]:
    """Cut `text` into pieces that join back to exactly `text`."""
    if not text:
        return []
    if chunking == "word":
        return _WORD.findall(text)
    if chunking == "char":
        return list(text)
    if isinstance(chunking, int) and chunking > 0:
        return [text[i : i + chunking] for i in range(0, len(text), chunking)]
    raise ValueError(f"unknown chunking {chunking!r}; use 'word', 'char' or a positive integer")
