"""Reading scenario files (YAML or JSON) while remembering the line of every key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mock_server.errors import Problem, ScenarioError

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")
MAX_DEPTH = 64
MAX_VALUES = 100_000

Location = tuple[str | int, ...]

_FAST_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else None
"""libyaml's reader: fifty times faster than PyYAML's own, which spent 60 ms of start-up on the bundled
scenarios. What it refuses is read again by PyYAML's, whose messages users see; it keeps the same lines."""
_ODD_LINE_BREAKS = frozenset("\x85\u2028\u2029")
"""Breaks that PyYAML counts as lines (YAML 1.1) and libyaml may not: such a file is read by PyYAML alone,
so that every problem keeps its line."""


@dataclass(frozen=True)
class Document:
    """Parsed data plus the 1-based line where each key path starts."""

    source: str
    data: object
    lines: Mapping[Location, int] = field(default_factory=dict)

    def line_of(self, location: Location) -> int | None:
        """The line of `location`, or of its nearest enclosing key when it has none of its own."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return None


def read_document(path: Path) -> Document:
    """Read one scenario file; raises ScenarioError when it cannot be read or parsed."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem(source, None, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise ScenarioError([Problem(source, None, f"cannot read: {exc.strerror}")]) from None
    return parse_document(text, source, is_json=path.suffix == ".json")


def parse_document(text: str, source: str, *, is_json: bool = False) -> Document:
    """Parse YAML (or JSON, with JSON's own rules) and map key paths to lines. A document nested more
    than MAX_DEPTH levels, or expanding through YAML aliases to more than MAX_VALUES values, is a
    problem: no scenario needs either, and both would cost the server its stack or its time."""
    problems: list[Problem] = []
    lines: dict[Location, int] = {}
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError([Problem(source, exc.lineno, f"invalid JSON: {exc.msg}")]) from None
        except (ValueError, RecursionError) as exc:
            raise ScenarioError([Problem(source, None, f"invalid JSON: {_unreadable(exc)}")]) from None
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:  # valid JSON that YAML 1.1 reads differently: keep the data, lose lines
            node = None
        except RecursionError as exc:
            raise ScenarioError([Problem(source, None, f"invalid JSON: {_unreadable(exc)}")]) from None
        if node is not None:
            _walk(node, lines, problems, source)
        if problems:
            raise ScenarioError(problems)
        return Document(source, data, lines)
    if _FAST_LOADER is not None and not _ODD_LINE_BREAKS.intersection(text):
        try:
            return _parse_yaml(text, source, _FAST_LOADER)
        except ScenarioError:
            pass  # read again below, so that each problem is told in the words (and at the line) it always was
    return _parse_yaml(text, source, yaml.SafeLoader)


def _parse_yaml(text: str, source: str, loader_class: type[yaml.SafeLoader] | type[yaml.CSafeLoader]) -> Document:
    problems: list[Problem] = []
    lines: dict[Location, int] = {}
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _walk(node, lines, problems, source)  # before construction, which would expand aliases
            data = loader.construct_document(node) if node is not None and not problems else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError([Problem(source, line, f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, None, f"invalid YAML: {exc}")]) from None
    except (ValueError, RecursionError) as exc:  # a value YAML cannot construct, or nesting beyond the stack
        raise ScenarioError([Problem(source, None, f"invalid YAML: {_unreadable(exc)}")]) from None
    if problems:
        raise ScenarioError(problems)
    return Document(source, data, lines)


def _unreadable(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return f"nested more than {MAX_DEPTH} levels deep"
    return str(exc)


def _walk(root: yaml.Node, lines: dict[Location, int], problems: list[Problem], source: str) -> None:
    """Note the line of every key path, and a problem for each duplicate key, for nesting deeper than
    MAX_DEPTH and for more than MAX_VALUES values (walked without recursion, aliases followed)."""
    stack: list[tuple[yaml.Node, Location]] = [(root, ())]
    values = 0
    while stack:
        node, location = stack.pop()
        values += 1
        line = node.start_mark.line + 1
        if values > MAX_VALUES:
            problems.append(
                Problem(source, None, f"more than {MAX_VALUES} values (YAML aliases?); a scenario needs few")
            )
            return
        if len(location) > MAX_DEPTH:
            problems.append(Problem(source, line, f"nested more than {MAX_DEPTH} levels deep"))
            return
        lines.setdefault(location, line)
        children: list[tuple[yaml.Node, Location]] = []
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    problems.append(Problem(source, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
                seen.add(key)
                child = (*location, key)
                lines[child] = key_node.start_mark.line + 1
                children.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*location, index)) for index, item in enumerate(node.value)]
        stack.extend(reversed(children))
