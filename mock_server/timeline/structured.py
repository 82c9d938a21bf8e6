"""JSON made from a JSON Schema: the answer to a request for structured output, and a tool call's
arguments, valid against the schema and the same for the same schema and seed.

It reads the JSON Schema that OpenAI's, Anthropic's and Ollama's requests carry and the OpenAPI
subset Gemini's `responseSchema` uses (upper-case types, `nullable`): types (one or a list), `enum`,
`const`, `properties` and `required`, `additionalProperties`, `items` and `prefixItems`, `minItems`
and `maxItems`, `minimum`/`maximum` (and exclusive), `multipleOf`, `minLength`/`maxLength`, the
common string `format`s, `anyOf`/`oneOf`/`allOf`, and `$ref` into `$defs`/`definitions`. A
`pattern` is not generated from: a string made for it may not fit it.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 8
"""How deep values nest before only what the schema requires is made (a recursive schema ends there)."""
MAX_NODES = 2000
"""How many values one answer makes before the rest are made as small as the schema allows."""
_WORDS = (
    *("amber", "basil", "cedar", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper", "kestrel"),
    *("lumen", "meadow", "nectar", "orchid", "pepper", "quartz", "river", "saffron", "timber", "velvet", "willow"),
)
_FORMATS = {
    "date": "2025-03-14",
    "date-time": "2025-03-14T09:26:53Z",
    "time": "09:26:53",
    "email": "ada@example.com",
    "idn-email": "ada@example.com",
    "uri": "https://example.com/a",
    "url": "https://example.com/a",
    "iri": "https://example.com/a",
    "hostname": "example.com",
    "ipv4": "192.0.2.7",
    "ipv6": "2001:db8::7",
    "duration": "PT1H30M",
}


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A request's ask for JSON: with `schema`, JSON valid against it; without, any JSON object."""

    schema: Mapping[str, Any] | None = None
    name: str = "response"

    @property
    def key(self) -> str:
        """The format as canonical JSON: what makes two requests' answers the same or not."""
        return json.dumps([self.name, self.schema], sort_keys=True, separators=(",", ":"), default=str)


def value_for(schema: Mapping[str, Any], seed: str | int) -> Any:
    """A value valid against `schema`, the same for the same schema and seed."""
    return _Maker(schema, random.Random(f"structured:{seed}")).make(schema, 0)


def structured_reply(output: OutputFormat, reply: str, seed: str | int) -> str:
    """The text of an answer asked for as JSON: a reply that is already JSON is kept as written (a
    scenario scripts the exact answer so); any other is replaced by JSON made from the schema, or
    without a schema, by `{"reply": reply}`."""
    try:
        json.loads(reply)
    except ValueError:
        pass
    else:
        return reply
    if output.schema is None:
        return json.dumps({"reply": reply}, ensure_ascii=False)
    return json.dumps(value_for(output.schema, f"{seed}:{output.key}"), ensure_ascii=False)


class _Maker:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.nodes = 0

    def make(self, schema: Any, depth: int) -> Any:
        self.nodes += 1
        if schema is True or not isinstance(schema, Mapping):
            return self._word()
        schema = self._resolved(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for combinator in ("anyOf", "oneOf"):
            options = _keyword(schema, combinator)
            if isinstance(options, list) and options:
                return self.make(self._choose(options, depth), depth)
        if isinstance(_keyword(schema, "allOf"), list):
            return self.make(_merged(schema, [self._resolved(s) for s in schema["allOf"]]), depth)
        kind = self._type(schema, depth)
        small = depth >= MAX_DEPTH or self.nodes >= MAX_NODES
        if kind == "object":
            return self._object(schema, depth, small)
        if kind == "array":
            return self._array(schema, depth, small)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _resolved(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema a local `$ref` points at (its siblings kept, as 2020-12 reads them)."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < 32:
            target = _pointer(self.root, schema["$ref"])
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, Mapping) else rest
            seen += 1
        return schema

    def _choose(self, options: list[Any], depth: int) -> Any:
        """One option; deep down, one that ends the nesting (no reference, not an object or array)."""
        if depth >= MAX_DEPTH or self.nodes >= MAX_NODES:
            for option in options:
                if isinstance(option, Mapping) and "$ref" not in option and _types(option) & {"null", "string"}:
                    return option
        return self.rng.choice(options)

    def _type(self, schema: Mapping[str, Any], depth: int) -> str:
        types = sorted(_types(schema))
        if schema.get("nullable") is True and (depth >= MAX_DEPTH or self.nodes >= MAX_NODES):
            return "null"
        if not types:
            if "properties" in schema or "additionalProperties" in schema:
                return "object"
            if "items" in schema or "prefixItems" in schema:
                return "array"
            return "string"
        concrete = [t for t in types if t != "null"]
        if depth >= MAX_DEPTH and "null" in types:
            return "null"
        return self.rng.choice(concrete) if concrete else "null"

    def _object(self, schema: Mapping[str, Any], depth: int, small: bool) -> dict[str, Any]:
        properties = _mapping(schema.get("properties"))
        required = _list(schema.get("required"))
        names = [name for name in properties if not small or name in required]
        out = {name: self.make(properties[name], depth + 1) for name in names}
        for name in required:  # required but not described: anything will do
            if name not in out:
                out[name] = self._word()
        extra = _keyword(schema, "additionalProperties")
        minimum = _int(_keyword(schema, "minProperties"), 0)
        index = 1
        while len(out) < minimum and extra is not False:
            out[f"key{index}"] = self.make(extra if isinstance(extra, Mapping) else {}, depth + 1)
            index += 1
        if not properties and isinstance(extra, Mapping) and not small and not out:
            out["key1"] = self.make(extra, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int, small: bool) -> list[Any]:
        prefix = _list(_keyword(schema, "prefixItems"))
        items = schema.get("items")
        if isinstance(items, list):  # draft 4-7's tuple form
            prefix, items = items, (_keyword(schema, "additionalItems") or {})
        low = _int(_keyword(schema, "minItems"), 0)
        high = _int(_keyword(schema, "maxItems"), max(low, 3))
        count = low if small else self.rng.randint(max(low, min(1, high)), max(low, min(high, low + 3)))
        count = max(count, min(len(prefix), high))
        out: list[Any] = []
        for index in range(count):
            element = prefix[index] if index < len(prefix) else items if items is not None else {}
            if element is False:
                break
            out.append(self.make(element, depth + 1))
        if _keyword(schema, "uniqueItems") is True:
            out = _unique(out)
        return out

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high, low_open, high_open = _bounds(schema, 0, 100)
        low_i = int(_floor(low)) + 1 if low_open and low == _floor(low) else int(_ceil(low))
        high_i = int(_ceil(high)) - 1 if high_open and high == _ceil(high) else int(_floor(high))
        step = _keyword(schema, "multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first = -(-low_i // step) * step
            return first + step * self.rng.randint(0, max(0, (high_i - first) // step))
        return self.rng.randint(low_i, max(low_i, high_i))

    def _number(self, schema: Mapping[str, Any]) -> float | int:
        low, high, low_open, high_open = _bounds(schema, 0.0, 100.0)
        step = _keyword(schema, "multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            first = _ceil(low / step) + (1 if low_open and low / step == _ceil(low / step) else 0)
            last = _floor(high / step) - (1 if high_open and high / step == _floor(high / step) else 0)
            return (first + self.rng.randint(0, max(0, int(last - first)))) * step
        value = round(self.rng.uniform(low, high), 2)
        if value < low or value > high or (low_open and value == low) or (high_open and value == high):
            value = (low + high) / 2
        return value

    def _string(self, schema: Mapping[str, Any]) -> str:
        form = schema.get("format")
        if form == "uuid":
            text = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        elif isinstance(form, str) and form in _FORMATS:
            text = _FORMATS[form]
        else:
            text = f"{self._word()} {self._word()}"
        low = _int(_keyword(schema, "minLength"), 0)
        high = _int(_keyword(schema, "maxLength"), max(low, len(text)))
        while len(text) < low:
            text += " " + self._word()
        return text[: max(low, high)]

    def _word(self) -> str:
        return self.rng.choice(_WORDS)


def _keyword(schema: Mapping[str, Any], name: str) -> Any:
    """A keyword's value, written as JSON Schema does (`minLength`) or in snake case (`min_length`),
    as google-genai writes Gemini's schemas."""
    if name in schema:
        return schema[name]
    return schema.get(_SNAKE.sub(lambda m: "_" + m.group(0).lower(), name))


_SNAKE = re.compile(r"[A-Z]")


def _types(schema: Mapping[str, Any]) -> set[str]:
    given = schema.get("type")
    names = given if isinstance(given, list) else [given] if isinstance(given, str) else []
    types = {str(name).lower() for name in names}  # Gemini's OpenAPI schemas say OBJECT, STRING, ...
    if schema.get("nullable") is True:
        types.add("null")
    return types


def _merged(schema: Mapping[str, Any], parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """`allOf` as one schema: the parts' keywords, with properties and `required` joined."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k not in ("allOf", "all_of")}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[Any] = list(merged.get("required") or [])
    for part in parts:
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        properties.update(part.get("properties") or {})
        required += [name for name in part.get("required") or [] if name not in required]
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    """What a local reference (`#/$defs/Name`) points at in `root`; {} for any other reference."""
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return {}
        node = node[part]
    return node


def _bounds(schema: Mapping[str, Any], low: float, high: float) -> tuple[float, float, bool, bool]:
    """The range a number may take and whether each end is open: the schema's bounds, and where it
    gives one only, the other that far from it as the default range is wide."""
    bounds = [low, high]
    given = [False, False]
    open_ = [False, False]
    for end, inclusive, exclusive, tighter in (
        (0, "minimum", "exclusiveMinimum", max),
        (1, "maximum", "exclusiveMaximum", min),
    ):
        for name, is_open in ((inclusive, False), (exclusive, True)):
            value = _number_of(_keyword(schema, name))
            if value is None:
                continue
            if not given[end] or tighter(value, bounds[end]) != bounds[end] or (value == bounds[end] and is_open):
                bounds[end], open_[end] = value, is_open
            given[end] = True
    if given[0] and not given[1]:
        bounds[1] = bounds[0] + (high - low)
    elif given[1] and not given[0]:
        bounds[0] = bounds[1] - (high - low)
    return bounds[0], max(bounds[0], bounds[1]), open_[0], open_[1]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number_of(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any, default: int) -> int:
    """A count (`minLength`, `maxItems`, ...); Gemini's schemas write them as strings ("5"), as proto3's
    JSON writes every 64-bit integer."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _ceil(value: float) -> float:
    return float(-int(-value // 1))


def _floor(value: float) -> float:
    return float(value // 1)


def _unique(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for value in values:
        key = json.dumps(value, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out
