"""Deterministic embedding vectors: the same text, model, dimensions and seed give the same vector
on every run and machine, and texts that share words and spellings get vectors measurably closer
than texts that share none. Pure arithmetic on the standard library; nothing of ours is imported.

How a vector is made (SimHash of hashed features, with magnitudes fixed per model):
1. Features. The text is NFKC-normalised and case-folded; its words (`\\w+`) weigh 2, except a
   short list of English function words ("the", "a", "of", ...), which weigh 1; the character
   trigrams of the other words, spaces around each word included, weigh 1. Repeats count, less and
   less: a weight is multiplied by `count.bit_length()`. A list of token ids has its ids (weight 2)
   and its pairs of neighbouring ids (weight 1). The item as given is one feature more, weighted 1
   or 2 so that the weights add up to an odd number: no coordinate can then sum to exactly 0.
2. Projection. Each feature has a random +1/-1 vector, SHAKE-128 of the model, the seed and the
   feature; the weighted sum of these is a random projection of the features, in which the
   features two texts share pull their sums the same way (feature hashing, as fastText hashes
   words and DSSM letter trigrams).
3. Output. Coordinate i of the embedding is `sign_i * m_i`: the sign of the sum's coordinate i,
   and a magnitude drawn once per (model, seed), half-normal-like and shifted away from 0, scaled
   so that `sum(m_i ** 2) == 1`. Every vector is unit length by construction (to float32
   precision), the magnitudes never depend on the text, and the cosine of two embeddings estimates
   `1 - 2 * angle / pi` of their feature sums (Charikar's SimHash).

What that guarantees (figures for text-embedding-3-small, 1536 dimensions, seed 0):
- Determinism: integers, SHAKE-128, and IEEE float operations (one square root, products,
  float32 rounding), no libm function whose last bit varies between platforms. The values are
  float32 numbers, as OpenAI's are, so the JSON and the base64 forms decode to the same floats.
- Similarity: cosine("the cat sat", "a cat sat") = 0.54, cosine("the cat sat", "the dog sat") =
  0.33, cosine("How do I reset my password?", "I forgot my password, how can I reset it?") = 0.54;
  unrelated texts sit near 0 (cosine("the cat sat", "stock prices fell") = -0.02), spread by about
  0.03 at 1536 dimensions (0.08 at 256: fewer coordinates, coarser estimates). Matched against 20
  questions and their answers, each question's nearest answer was its own 91 times in 100 (5 seeds).
- Shortening: a vector of `dimensions=d` is the first d coordinates of a longer one of the same
  model and seed, renormalised, as OpenAI's text-embedding-3 models shorten theirs.
- Different models or seeds give unrelated vectors, as different embedding models do.
- Meaning is not understood: synonyms that share no letters ("car", "automobile") are as far apart
  as unrelated words, and a magnitude is the same at coordinate i in every vector of a model.
- Speed: the sums run on Python's big integers, 8 bits a coordinate (32 when the weights add up to
  more than 255), and a vector's bytes are assembled from them without a loop over its
  coordinates: 2048 short texts at 1536 dimensions take about 0.2 s (`python -m bench.embeddings`).
"""

from __future__ import annotations

import array
import hashlib
import itertools
import math
import re
import struct
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from operator import getitem

Item = str | Sequence[int]
"""What can be embedded: a text, or a list of token ids."""
_Feature = str | int | tuple[int, int]

MODEL_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""OpenAI's embedding models and their native dimensions."""
DEFAULT_DIMENSIONS = 1536
"""The dimensions of any other model's vectors, unless asked otherwise."""

WORD_WEIGHT = 2
FUNCTION_WORD_WEIGHT = 1
TRIGRAM_WEIGHT = 1
_FUNCTION_WORD_LIST = """
a an and are as at be but by can do does for from had has have how i if in is it its me my no not of on or our so
than that the their them then there these they this those to us was we were what when where which who why will with
you your
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())
"""English words that say little about what a text is about: they weigh less, and add no trigrams."""
_LANE_LIMIT = 255
"""The sums run eight bits a coordinate: a batch of features whose weights add up to more is widened
to 32 bits first."""
_CACHE_BYTES = 32 << 20
"""The feature vectors an `Embedder` keeps, in bytes (a vector is one byte a dimension)."""

_WORDS = re.compile(r"\w+")
_TRIGRAMS = re.compile(r"(?=(...))", re.DOTALL)
_NEGATIVE_FLAGS = bytes(1 if byte & 0x80 else 0 for byte in range(256))
_LITTLE_ENDIAN = sys.byteorder == "little"


def default_dimensions(model: str) -> int:
    """The number of dimensions `model` answers with when none is asked for."""
    return MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def embed(item: Item, *, model: str, dimensions: int | None = None, seed: int = 0) -> list[float]:
    """The unit-length embedding of a text (or a list of token ids) for `model`, with `dimensions`
    coordinates (the model's default when None), for `seed`. Always the same list for the same
    arguments; each value is a float32 number."""
    return Embedder(model=model, dimensions=dimensions, seed=seed).vector(item)


class Embedder:
    """The embeddings of one model, number of dimensions and seed: `embed()` for many items at
    once, with the work they share (the feature vectors) done once, and each vector in the form a
    response wants it. Not thread-safe; make one per request."""

    def __init__(self, *, model: str, dimensions: int | None = None, seed: int = 0) -> None:
        dimensions = default_dimensions(model) if dimensions is None else dimensions
        if dimensions < 1:
            raise ValueError(f"dimensions must be 1 or more, not {dimensions}")
        self.model = model
        self.dimensions = dimensions
        self.seed = seed
        self._space = _space(model, dimensions, seed)
        self._known: dict[bytes, dict[_Feature, int]] = {}
        self._cache_limit = max(64, _CACHE_BYTES // dimensions)

    def vector(self, item: Item) -> list[float]:
        """The embedding as Python floats (each a float32 value)."""
        values = array.array("f", self.float32(item))
        if not _LITTLE_ENDIAN:
            values.byteswap()
        return values.tolist()

    def float32(self, item: Item) -> bytes:
        """The embedding as little-endian float32 values: what OpenAI's `encoding_format: base64`
        encodes."""
        space = self._space
        high = (space.high_bytes | int.from_bytes(self._negative(item), "little")).to_bytes(self.dimensions, "little")
        values = bytearray(space.magnitudes)
        values[3::4] = high  # each float's last byte holds its sign bit
        return bytes(values)

    def json(self, item: Item) -> str:
        """The embedding as a JSON array, each value written as Python writes the float32 number."""
        flags = self._negative(item).translate(_NEGATIVE_FLAGS)
        return "[" + ",".join(map(getitem, self._space.literals(), flags)) + "]"

    def _negative(self, item: Item) -> bytes:
        """One byte a coordinate: 0x80 where the embedding is negative, else 0."""
        space = self._space
        groups = _text_features(item) if isinstance(item, str) else _token_features(item)
        terms: list[tuple[int, int, int]] = []  # (a sum of feature vectors, the weight of each, how many)
        odd = False
        for kind, weight, features in groups:
            vector_of = self._vectors(kind, features)
            per_lane_limit = _LANE_LIMIT // weight
            for start in range(0, len(features), per_lane_limit):
                part = features[start : start + per_lane_limit]
                terms.append((sum(map(vector_of, part)), weight, len(part)))
                odd ^= bool(weight * len(part) % 2)
        whole = item if isinstance(item, str) else ",".join(map(str, item))
        terms.append((self._vector(b"x", whole), 2 if odd else 1, 1))
        narrow, room, wide, total = 0, _LANE_LIMIT, 0, 0
        for vectors_sum, weight, count in terms:
            load = weight * count
            if load > room:
                wide += space.widen(narrow)
                narrow, room = 0, _LANE_LIMIT
            narrow += vectors_sum if weight == 1 else vectors_sum * weight
            room -= load
            total += load
        if not wide:
            # Lane i holds S_i (0..total, odd total), the weight of the features whose bit i is set:
            # the sum of ±1 is 2*S_i - total, positive when S_i + 128 - (total+1)/2 reaches 128.
            positive = (narrow + (128 - (total + 1) // 2) * space.ones8) & space.top8
            return (positive ^ space.top8).to_bytes(self.dimensions, "little")
        # The same in 32-bit lanes: 2*S_i - total + 2**31 has its top bit set when positive.
        wide += space.widen(narrow)
        positive = (2 * wide + ((1 << 31) - total) * space.ones32) & space.top32
        return (positive ^ space.top32).to_bytes(4 * self.dimensions, "little")[3::4]

    def _vectors(self, kind: bytes, features: list[_Feature]) -> Callable[[_Feature], int]:
        """The vector of each of `features` (of one kind), kept for the next items while they fit."""
        known = self._known.setdefault(kind, {})
        missing = set(features).difference(known)  # looks up each feature, whatever the size of `known`
        if len(missing) > self._cache_limit:  # one long text: each vector made when it is added
            return lambda feature: known.get(feature) or self._vector(kind, feature)
        if len(known) + len(missing) > self._cache_limit:
            known.clear()  # a bound, not an LRU: batches that overflow it are rare and pay only the hashes
            missing = set(features)
        for feature in missing:
            known[feature] = self._vector(kind, feature)
        return known.__getitem__

    def _vector(self, kind: bytes, feature: _Feature) -> int:
        """A feature's random vector: bit 0 of byte i is its coordinate i (1 for +1, 0 for -1)."""
        name = f"{feature[0]},{feature[1]}" if isinstance(feature, tuple) else str(feature)
        digest = hashlib.shake_128(self._space.prefix + kind + name.encode("utf-8", "surrogatepass"))
        return int.from_bytes(digest.digest(self.dimensions), "little") & self._space.ones8


def _text_features(text: str) -> list[tuple[bytes, int, list[_Feature]]]:
    """The features of a text by kind and weight: its words, the trigrams of its words (function
    words have none, and weigh less)."""
    words = _WORDS.findall(unicodedata.normalize("NFKC", text).casefold())
    function_words = Counter(word for word in words if word in FUNCTION_WORDS)
    content = [word for word in words if word not in FUNCTION_WORDS]
    trigrams = Counter(trigram for word in content for trigram in _TRIGRAMS.findall(f" {word} "))
    return [
        *_weighted(b"w", WORD_WEIGHT, Counter(content)),
        *_weighted(b"w", FUNCTION_WORD_WEIGHT, function_words),
        *_weighted(b"t", TRIGRAM_WEIGHT, trigrams),
    ]


def _token_features(tokens: Sequence[int]) -> list[tuple[bytes, int, list[_Feature]]]:
    """The features of a list of token ids by kind and weight: ids, then pairs of neighbours."""
    tokens = tuple(tokens)
    return [
        *_weighted(b"i", WORD_WEIGHT, Counter(tokens)),
        *_weighted(b"p", TRIGRAM_WEIGHT, Counter(itertools.pairwise(tokens))),
    ]


def _weighted(kind: bytes, weight: int, counts: Counter[_Feature]) -> list[tuple[bytes, int, list[_Feature]]]:
    """`counts` by weight: `weight` times the bit length of each count, so repeats count, less and less."""
    if counts.total() == len(counts):  # each feature once: the common case, with no loop
        return [(kind, weight, list(counts))]
    by_weight: dict[int, list[_Feature]] = {}
    for feature, count in counts.items():
        by_weight.setdefault(weight * count.bit_length(), []).append(feature)
    return [(kind, each, features) for each, features in by_weight.items()]


class _Space:
    """What every vector of one (model, dimensions, seed) shares: the hash prefix, the lane masks
    and the magnitudes, as float32 bytes and as JSON literals."""

    def __init__(self, model: str, dimensions: int, seed: int) -> None:
        self.dimensions = dimensions
        self.prefix = f"{len(model)}:{model}:{seed}:".encode("utf-8", "surrogatepass")
        self.ones8 = int.from_bytes(b"\x01" * dimensions, "little")
        self.top8 = self.ones8 << 7
        self.ones32 = int.from_bytes(b"\x01\x00\x00\x00" * dimensions, "little")
        self.top32 = self.ones32 << 31
        # Four bytes a coordinate: their sum's distance from its mean (half-normal-like), plus 128, so
        # that no coordinate is near 0: magnitudes that vary less add less noise to the cosines. The
        # stream does not depend on `dimensions`, so a shorter vector is a longer one's beginning.
        draws = hashlib.shake_128(self.prefix + b"magnitudes").digest(4 * dimensions)
        doubled = [abs(sum(draws[i : i + 4]) - 510) * 2 + 257 for i in range(0, 4 * dimensions, 4)]
        scale = 1 / math.sqrt(sum(m * m for m in doubled))  # an exact integer, then IEEE operations only
        self.magnitudes = struct.pack(f"<{dimensions}f", *(m * scale for m in doubled))
        self.high_bytes = int.from_bytes(self.magnitudes[3::4], "little")
        self._literals: list[tuple[str, str]] | None = None

    def widen(self, narrow: int) -> int:
        """8-bit lanes as 32-bit lanes."""
        wide = bytearray(4 * self.dimensions)
        wide[0::4] = narrow.to_bytes(self.dimensions, "little")
        return int.from_bytes(wide, "little")

    def literals(self) -> list[tuple[str, str]]:
        """Coordinate i's JSON text, positive and negative."""
        if self._literals is None:
            values = struct.unpack(f"<{self.dimensions}f", self.magnitudes)
            self._literals = [(repr(value), repr(-value)) for value in values]
        return self._literals


@lru_cache(maxsize=16)
def _space(model: str, dimensions: int, seed: int) -> _Space:
    """A pure function of its arguments, kept for the models in use: a request then pays only for
    its own features."""
    return _Space(model, dimensions, seed)
