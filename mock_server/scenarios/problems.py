"""Turning pydantic's validation errors into the `Problem`s of a scenario: one problem per place in
the document, naming the value given and what is accepted there.

Pydantic reports a value that fits no branch of a union once per branch, and says what it wanted
without the value it got (`Input should be 'drop', 'reset', ...`). Here the errors are grouped by
the place in the document they are about, and each group becomes one message written from the type
declared at that place: `faults.0.kind: 'explode' is not a fault kind; use one of drop, reset, ...`.
A type may name its values in words with `Described` (a `DelayMs` is "a number of milliseconds");
an enum is named by its class (`FaultKind`: "a fault kind"); any other type by its kind and bounds
("a whole number (2 to 64)"). Messages that validators write themselves are kept as written.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from mock_server.errors import Problem, close_matches
from mock_server.scenarios.loading import Document, Location


@dataclass(frozen=True, slots=True)
class Described:
    """`Annotated` metadata that names a type's values in words, for the messages about a wrong one:
    `what` they are ("a number of milliseconds": `'soon' is not a number of milliseconds`), and what
    to `use` instead when the type cannot say it (a pattern's meaning; without `use`, a union, literal
    or enum lists its choices)."""

    what: str
    use: str | None = None


def problems_from(
    errors: Iterable[ErrorDetails], data: object, root: type[BaseModel], document: Document
) -> list[Problem]:
    """One problem per place in `document` that `errors` (from validating `data` as `root`) are about,
    in the order pydantic found them."""
    places: dict[Location, list[ErrorDetails]] = {}
    for error in errors:
        places.setdefault(_document_location(error, data), []).append(error)
    return [_problem(location, found, root, document) for location, found in places.items()]


_CUSTOM = {"value_error", "assertion_error"}
_MISSING = {"missing", "missing_argument", "missing_keyword_only_argument"}
_UNKNOWN_FIELD = {"extra_forbidden", "unexpected_keyword_argument"}
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_LENGTHS = {"too_short", "too_long", "string_too_short", "string_too_long"}
_KIND_OF_ERROR = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}
"""What a value should have been, by the error about it: for a type this module cannot read."""


def _problem(location: Location, errors: list[ErrorDetails], root: type[BaseModel], document: Document) -> Problem:
    where = ".".join(str(part) for part in location)
    line = document.line_of(location)
    first = errors[0]
    if first["type"] in _UNKNOWN_FIELD:
        name = str(location[-1])
        message = f"unknown field {name!r}"
        known = _field_names(_types_at(root, location[:-1]))
        if known:
            close = close_matches(name, known)
            message += f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
        return Problem(document.source, line, message, location)
    message = _message(errors, _types_at(root, location))
    return Problem(document.source, line, f"{where}: {message}" if where else message, location)


def _message(errors: list[ErrorDetails], typed: list[_Typed]) -> str:
    """What is wrong at one place: a validator's own words, else the value given and what is accepted."""
    custom = next((error for error in errors if error["type"] in _CUSTOM), None)
    if custom is not None:
        return custom["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    first = errors[0]
    expected = _expected(typed[0]) if typed else None
    if first["type"] in _MISSING:
        if expected is None:
            return "required field is missing"
        return f"required field is missing; give {expected.what}" + (f": {expected.use}" if expected.use else "")
    given = _shown(first["input"])
    if len(errors) == 1 and first["type"] in _BOUNDS:
        # A number out of bounds: what else its type would take (null) is beside the point.
        accepted = _either([phrase for phrase in _phrases(typed[0]) if phrase != "null"]) if typed else None
        return f"{given} is {_relation(first)}" + (f"; use {accepted}" if accepted else "")
    if len(errors) == 1 and first["type"] in _LENGTHS:
        return _length_message(first, given)
    if expected is None or (not expected.named and first["type"] == "string_pattern_mismatch"):
        kinds = [_kind_of_error(error) for error in errors]
        if None in kinds:
            return f"{given} is not accepted: {first['msg']}"
        return f"{given} is not {_either([kind for kind in kinds if kind is not None])}"
    return f"{given} is not {expected.what}" + (f"; use {expected.use}" if expected.use else "")


def _kind_of_error(error: ErrorDetails) -> str | None:
    """What the value should have been, as far as the error itself says."""
    context = error.get("ctx") or {}
    if error["type"] in ("literal_error", "enum"):
        return f"one of {context['expected']}" if "expected" in context else None
    if error["type"] == "string_pattern_mismatch":
        return f"a string matching {context.get('pattern')!r}"
    return _KIND_OF_ERROR.get(error["type"])


def _relation(error: ErrorDetails) -> str:
    context = error.get("ctx") or {}
    match error["type"]:
        case "greater_than_equal":
            return f"less than {_number(context['ge'])}"
        case "greater_than":
            return f"not more than {_number(context['gt'])}"
        case "less_than_equal":
            return f"more than {_number(context['le'])}"
        case _:
            return f"not less than {_number(context['lt'])}"


def _length_message(error: ErrorDetails, given: str) -> str:
    context = error.get("ctx") or {}
    if error["type"] == "string_too_short":
        return f"{given} is too short; use at least {_count(context['min_length'], 'character')}"
    if error["type"] == "string_too_long":
        return f"{given} is too long; use at most {_count(context['max_length'], 'character')}"
    items = _count(context.get("actual_length", 0), "item")
    if error["type"] == "too_short":
        return f"{items} are too few; use at least {context['min_length']}"
    return f"{items} are too many; use at most {context['max_length']}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# --- what a place in the document holds ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Typed:
    """A type at a place in the document, with the `Annotated` metadata (bounds, words) on it."""

    annotation: object
    metadata: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class _Expected:
    """What a value should have been: `what` it is ("a fault kind") and what to `use` ("one of ...")."""

    what: str
    use: str | None
    named: bool
    """Whether `what` names the values (by `Described` or an enum) rather than their kind."""


def _types_at(root: type[BaseModel], location: Location) -> list[_Typed]:
    """The types declared at `location` under `root` (several where a union's branches all lead there)."""
    return _resolve(_Typed(root), tuple(location))


def _resolve(typed: _Typed, path: Sequence[str | int]) -> list[_Typed]:
    typed = _unwrapped(typed)
    if not path:
        return [typed]
    annotation = typed.annotation
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [found for arg in get_args(annotation) for found in _resolve(_Typed(arg, typed.metadata), path)]
    head, rest = path[0], path[1:]
    if origin in (list, tuple) and isinstance(head, int):
        return _resolve(_Typed(get_args(annotation)[0]), rest)
    if origin in (dict, Mapping):
        return _resolve(_Typed(get_args(annotation)[1]), rest)
    fields = _fields(annotation)
    if isinstance(head, str) and head in fields:
        return _resolve(fields[head], rest)
    return []


def _unwrapped(typed: _Typed) -> _Typed:
    """`Annotated[T, ...]` as T with its metadata, the constraints of a `Field(...)` in it included."""
    annotation, metadata = typed.annotation, list(typed.metadata)
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata.extend(extra)
    flat: list[object] = []
    for item in metadata:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else (item,))
    return _Typed(annotation, tuple(flat))


def _fields(annotation: object) -> dict[str, _Typed]:
    """The fields of a model or a dataclass, each with its type; no fields for any other type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: _Typed(info.annotation, tuple(info.metadata)) for name, info in annotation.model_fields.items()}
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        return {field.name: _Typed(hints[field.name]) for field in dataclasses.fields(annotation)}
    return {}


def _field_names(found: list[_Typed]) -> tuple[str, ...]:
    """The fields a mapping at this place may have (of every model or dataclass it may be)."""
    names: dict[str, None] = {}
    for typed in found:
        typed = _unwrapped(typed)
        branches = get_args(typed.annotation) if get_origin(typed.annotation) in (Union, types.UnionType) else ()
        for annotation in branches or (typed.annotation,):
            names.update(dict.fromkeys(_fields(annotation)))
    return tuple(names)


def _expected(typed: _Typed) -> _Expected | None:
    """What a value at this place should be: named, with its choices, or by its kind."""
    typed = _unwrapped(typed)
    described = next((item for item in reversed(typed.metadata) if isinstance(item, Described)), None)
    annotation = typed.annotation
    if described is not None:
        plain = _Typed(annotation, tuple(item for item in typed.metadata if item is not described))
        choices = _either(_phrases(plain)) if _is_choice(annotation) else None
        return _Expected(described.what, described.use or choices, named=True)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        noun = "".join(f" {c.lower()}" if c.isupper() else c for c in annotation.__name__).strip()
        choices = ", ".join(str(member.value) for member in annotation)
        return _Expected(f"{_article(noun)} {noun}", f"one of {choices}", named=True)
    phrases = _phrases(typed)
    return _Expected(_either(phrases), None, named=False) if phrases else None


def _is_choice(annotation: object) -> bool:
    return get_origin(annotation) in (Union, types.UnionType, Literal) or (
        isinstance(annotation, type) and issubclass(annotation, Enum)
    )


def _phrases(typed: _Typed) -> list[str]:
    """The values a type accepts, as alternatives: `["word", "char", "a number of characters (1 or more)"]`."""
    typed = _unwrapped(typed)
    annotation, metadata = typed.annotation, typed.metadata
    described = next((item for item in reversed(metadata) if isinstance(item, Described)), None)
    if described is not None:
        return [_ranged(described.what, metadata)]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return [phrase for arg in get_args(annotation) for phrase in _phrases(_Typed(arg, metadata))]
    if origin is Literal:
        return [_literal(value) for value in get_args(annotation)]
    if origin in (list, tuple):
        return ["a list"]
    if origin in (dict, Mapping):
        return ["a mapping"]
    if annotation is type(None):
        return ["null"]
    if not isinstance(annotation, type):
        return []
    if issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    if issubclass(annotation, bool):
        return ["true", "false"]
    if issubclass(annotation, int):
        return [_ranged("a whole number", metadata)]
    if issubclass(annotation, float):
        return [_ranged("a number", metadata)]
    if issubclass(annotation, str | bytes):
        return ["a string"]
    fields = _fields(annotation)
    return [f"a mapping {{{', '.join(fields)}}}"] if fields else []


def _ranged(what: str, metadata: tuple[object, ...]) -> str:
    """`what` with the bounds in `metadata`: "a whole number (2 to 64)"."""
    lows: list[tuple[float, bool]] = []  # (bound, whether the bound itself is excluded)
    highs: list[tuple[float, bool]] = []
    for bound in metadata:
        match bound:
            case annotated_types.Ge(ge=value):
                lows.append((typing.cast(float, value), False))
            case annotated_types.Gt(gt=value):
                lows.append((typing.cast(float, value), True))
            case annotated_types.Le(le=value):
                highs.append((typing.cast(float, value), False))
            case annotated_types.Lt(lt=value):
                highs.append((typing.cast(float, value), True))
    low = max(lows, key=lambda bound: (bound[0], bound[1]), default=None)  # the strictest bound wins
    high = min(highs, key=lambda bound: (bound[0], not bound[1]), default=None)
    if low is None and high is None:
        return what
    if low is not None and high is not None and not low[1] and not high[1]:
        return f"{what} ({_number(low[0])} to {_number(high[0])})"
    parts = []
    if low is not None:
        parts.append(f"more than {_number(low[0])}" if low[1] else f"{_number(low[0])} or more")
    if high is not None:
        parts.append(f"less than {_number(high[0])}" if high[1] else f"at most {_number(high[0])}")
    return f"{what} ({', '.join(parts)})"


def _either(phrases: list[str]) -> str:
    """`a`, `a or b`, `a, b, or c`."""
    unique = list(dict.fromkeys(phrases))
    if len(unique) <= 2:
        return " or ".join(unique)
    return ", ".join(unique[:-1]) + ", or " + unique[-1]


def _literal(value: object) -> str:
    return _shown(value) if not isinstance(value, str) else value


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Shown(reprlib.Repr):
    """Values as a scenario writes them, shortened: `'text'`, `true`, `null`, `[1, 2]`."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = 60
        self.maxother = 60
        self.maxlong = 40

    def repr_dict(self, value: dict[object, object], level: int) -> str:
        # In the order written: reprlib sorts keys, which would show a mapping as it was not given.
        if not value:
            return "{}"
        if level <= 0:
            return "{...}"
        items = list(value.items())[: self.maxdict]
        shown = [f"{self.repr1(key, level - 1)}: {self.repr1(item, level - 1)}" for key, item in items]
        return "{" + ", ".join(shown) + (", ...}" if len(value) > self.maxdict else "}")

    def repr_bool(self, value: bool, level: int) -> str:
        return "true" if value else "false"

    def repr_NoneType(self, value: None, level: int) -> str:  # reprlib finds it by the type's name
        return "null"


_shown = _Shown().repr


# --- where in the document -------------------------------------------------------------------------


def _document_location(error: ErrorDetails, data: object) -> Location:
    """Pydantic's error location as a path into the document: without the tags pydantic inserts for
    the branches of a union, which name no key or index of the data (a missing field's own name,
    last, is kept)."""
    loc = error["loc"]
    keep_last = error["type"] in _MISSING
    parts: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        found, child = _child(node, part)
        if found:
            node = child
        elif not (keep_last and index == len(loc) - 1):
            continue
        parts.append(part)
    return tuple(parts)


def _child(node: object, part: str | int) -> tuple[bool, object]:
    """Whether `node` holds `part` (a key of a mapping, an index of a list), and what is there."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None
