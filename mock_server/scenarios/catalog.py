"""The scenarios a server knows (bundled, from directories, added at run time) and choosing one."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mock_server.errors import Problem, ScenarioError, UnknownScenarioError
from mock_server.scenarios.conversation import NO_CONVERSATION, Conversation
from mock_server.scenarios.loading import SCENARIO_SUFFIXES, Document, read_document
from mock_server.scenarios.model import Scenario, load_scenario

RUNTIME_SOURCE = "runtime"


def load_runtime_scenario(document: Document, name: str) -> Scenario:
    """Validate a scenario object added at run time under `name` (a `name` field in it must agree);
    raises ScenarioError listing every problem, as for files."""
    given = document.data.get("name") if isinstance(document.data, Mapping) else None
    problems = []
    if given is not None and given != name:
        message = f"name: {given!r} differs from {name!r}, the name it is added as; leave it out or make them equal"
        problems.append(Problem(document.source, document.line_of(("name",)), message, ("name",)))
    try:
        scenario = load_scenario(document, default_name=name)
    except ScenarioError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ScenarioError(problems)
    return scenario


def bundled_scenarios_dir() -> Path:
    """The scenarios shipped with the package (inside the wheel, or `scenarios/` in a checkout)."""
    package = Path(__file__).parents[1]
    packaged = package / "_bundled_scenarios"
    return packaged if packaged.is_dir() else package.parent / "scenarios"


@dataclass(frozen=True, slots=True)
class Entry:
    scenario: Scenario
    source: str


def load_paths(paths: Iterable[Path]) -> list[Entry]:
    """Load every scenario file in `paths` (files or directories, in order); a later file replaces an
    earlier one of the same name, except within one directory, where that is a problem.
    Raises ScenarioError listing every problem in every file."""
    entries: dict[str, Entry] = {}
    problems: list[Problem] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in SCENARIO_SUFFIXES and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            problems.append(Problem(str(path), None, "no such file or directory"))
            continue
        seen_here: dict[str, str] = {}
        for file in files:
            try:
                scenario = load_scenario(read_document(file), default_name=file.stem)
            except ScenarioError as exc:
                problems.extend(exc.problems)
                continue
            if scenario.name in seen_here:
                other = seen_here[scenario.name]
                problems.append(Problem(str(file), None, f"scenario name {scenario.name!r} is also used by {other}"))
                continue
            seen_here[scenario.name] = str(file)
            entries[scenario.name] = Entry(scenario, str(file))
    if problems:
        raise ScenarioError(problems)
    return list(entries.values())


@cache
def bundled_entries() -> tuple[Entry, ...]:
    """The bundled scenarios, loaded once per process: they ship with the package and never change
    (scenarios are frozen, so servers share them), and loading them was most of a `MockServer`'s start."""
    return tuple(load_paths([bundled_scenarios_dir()]))


class Catalog:
    """Scenarios by name, in the order `match` rules are tried: run-time ones first (newest first),
    then files in load order."""

    def __init__(self, entries: Sequence[Entry], default: str = "default") -> None:
        self._files = {e.scenario.name: e for e in entries}
        self._runtime: dict[str, Entry] = {}
        self.default = default

    def _all(self) -> dict[str, Entry]:
        return {**self._files, **self._runtime}

    @property
    def names(self) -> list[str]:
        return sorted(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._runtime or name in self._files

    def get(self, name: str) -> Scenario:
        return self.entry(name).scenario

    def entry(self, name: str) -> Entry:
        """The scenario of that name with its source; raises UnknownScenarioError listing the known ones."""
        entry = self._runtime.get(name) or self._files.get(name)
        if entry is None:
            raise UnknownScenarioError(name, self.names)
        return entry

    def entries(self) -> list[Entry]:
        return [self._all()[name] for name in self.names]

    def add(self, scenario: Scenario) -> None:
        """Register or replace a run-time scenario."""
        self._runtime.pop(scenario.name, None)
        self._runtime[scenario.name] = Entry(scenario, RUNTIME_SOURCE)

    def remove(self, name: str) -> bool:
        """Remove a run-time scenario; False when there is none of that name."""
        return self._runtime.pop(name, None) is not None

    def set_runtime(self, scenarios: Iterable[Scenario]) -> None:
        """Make `scenarios` (oldest first) the run-time ones, as the state shared with other processes has them."""
        self._runtime = {scenario.name: Entry(scenario, RUNTIME_SOURCE) for scenario in scenarios}

    def reset(self) -> None:
        """Forget run-time scenarios."""
        self._runtime.clear()

    def find(
        self,
        *,
        named: str | None,
        model: str | None,
        prompt: str,
        headers: Mapping[str, str],
        path: str = "",
        conversation: Conversation = NO_CONVERSATION,
    ) -> Scenario | None:
        """The scenario a request names or matches, in the SPEC's order: a name given, `model` naming a
        scenario, the first whose `match` rules fit; None when only the default (or an upstream) would
        answer it."""
        if named is not None:
            return self.get(named)
        if model is not None and model in self:
            return self.get(model)
        for entry in [*reversed(self._runtime.values()), *self._files.values()]:
            if entry.scenario.matches(prompt, model, headers, path, conversation):
                return entry.scenario
        return None
