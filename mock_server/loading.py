"""Reading scenario files (YAML or JSON) while remembering the line of every key."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mock_server.errors import Problem, ScenarioError

SCENARIO_SUFFIXES = (".yaml", ".yml", ".json")

Location = tuple[str | int, ...]


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
    """Parse YAML (or JSON, with JSON's own rules) and map key paths to lines."""
    problems: list[Problem] = []
    if is_json:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError([Problem(source, exc.lineno, f"invalid JSON: {exc.msg}")]) from None
        try:
            json_lines = _yaml_lines(text, problems, source)
        except yaml.YAMLError:  # valid JSON that YAML 1.1 reads differently: keep the data, lose lines
            json_lines = {}
        if problems:
            raise ScenarioError(problems)
        return Document(source, data, json_lines)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError([Problem(source, line, f"invalid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, None, f"invalid YAML: {exc}")]) from None
    lines: dict[Location, int] = {}
    if node is not None:
        _walk(node, (), lines, problems, source)
    if problems:
        raise ScenarioError(problems)
    return Document(source, data, lines)


def _yaml_lines(text: str, problems: list[Problem], source: str) -> dict[Location, int]:
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Location, int] = {}
    if node is not None:
        _walk(node, (), lines, problems, source)
    return lines


def _walk(
    node: yaml.Node, location: Location, lines: dict[Location, int], problems: list[Problem], source: str
) -> None:
    lines.setdefault(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(Problem(source, key_node.start_mark.line + 1, f"duplicate key {key!r}"))
            seen.add(key)
            child = (*location, key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, problems, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*location, index), lines, problems, source)
