"""A verdict as the reports CI systems read: JUnit XML (one test case per call, a failure per
error-level finding), GitHub annotations (a workflow command per finding), JSON and text.

A report holds one or more `Judged` verdicts: the one of a server (`mock-llm-sse verdict URL`), or
one per test (the pytest plugin's `--mock-llm-report`), each named for its test suite.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mock_server.journal.journal import RequestRecord
from mock_server.journal.verdict.findings import Finding, Severity, Verdict

FORMATS = ("text", "json", "github", "junit")


@dataclass(frozen=True, slots=True)
class Judged:
    """A verdict and what names its parts: the suite (a server, a test) and each record's request line."""

    suite: str
    verdict: Verdict
    requests: Mapping[int, str] = field(default_factory=dict)
    """By record id: `POST /v1/chat/completions scenario='default'`, for naming the calls."""

    @classmethod
    def of(cls, suite: str, verdict: Verdict, records: Iterable[RequestRecord]) -> Judged:
        return cls(suite, verdict, {r.id: request_line(r.method, r.path, r.scenario) for r in records})

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "verdict": self.verdict.to_json(),
            "requests": {str(k): v for k, v in self.requests.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Judged:
        requests = {int(k): v for k, v in data.get("requests", {}).items()}
        return cls(data["suite"], Verdict.from_json(data["verdict"]), requests)

    def call_name(self, number: int, call: Sequence[int]) -> str:
        first = self.requests.get(call[0], "") if call else ""
        records = ", ".join(f"#{i}" for i in call)
        return f"call {number}: {first} ({records})" if first else f"call {number} ({records})"


def request_line(method: str, path: str, scenario: str | None) -> str:
    return f"{method} {path}" + (f" scenario={scenario!r}" if scenario else "")


def render(judged: Sequence[Judged], form: str) -> str:
    """The report in `form`, one of FORMATS."""
    return _RENDERERS[form](judged)


def text(judged: Sequence[Judged]) -> str:
    """Each suite's verdict as the `verdict` command prints it, under the suite's name when there are several."""
    if len(judged) == 1:
        return judged[0].verdict.table()
    return "\n\n".join(f"== {j.suite}\n{j.verdict.table()}" for j in judged)


def as_json(judged: Sequence[Judged]) -> str:
    """One suite: the server's verdict JSON as it is; several: a list of them, each with its suite."""
    if len(judged) == 1:
        return json.dumps(judged[0].verdict.to_json(), indent=2)
    return json.dumps([{"suite": j.suite, **j.verdict.to_json()} for j in judged], indent=2)


def github(judged: Sequence[Judged]) -> str:
    """A GitHub Actions workflow command per finding (`::error title=...::...`), which the run's summary
    and the pull request show as annotations; nothing for a clean verdict."""
    lines = []
    for one in judged:
        for finding in one.verdict.findings:
            level = "error" if finding.severity is Severity.ERROR else "warning"
            records = " ".join(f"#{i}" for i in finding.records)
            title = f"mock-llm-sse {finding.code}: {finding.title}"
            if len(judged) > 1:
                title = f"{one.suite}: {title}"
            message = f"{finding.detail} Fix: {finding.advice} Records: {records}"
            lines.append(f"::{level} title={_property(title)}::{_data(message)}")
    return "\n".join(lines)


def junit_xml(judged: Sequence[Judged]) -> str:
    """JUnit XML: a test suite per verdict, a test case per call, a `failure` per error-level finding
    about it (a finding about several calls, as an agent loop's, in the call of its last request:
    the one that went wrong); warnings go to the case's output. Findings on no call have a case of
    their own."""
    root = ElementTree.Element("testsuites", name="mock-llm-sse")
    for one in judged:
        suite = ElementTree.SubElement(root, "testsuite", name=one.suite)
        cases = [(one.call_name(n, call), set(call)) for n, call in enumerate(one.verdict.calls, start=1)]
        placed: set[int] = set()
        for name, records in cases:
            about = [i for i, f in enumerate(one.verdict.findings) if f.records and f.records[-1] in records]
            placed.update(about)
            _case(suite, one.suite, name, [one.verdict.findings[i] for i in about])
        rest = [f for i, f in enumerate(one.verdict.findings) if i not in placed]
        if rest:
            _case(suite, one.suite, "findings on no call", rest)
        for check in one.verdict.pending:
            case = ElementTree.SubElement(suite, "testcase", classname=one.suite, name=f"pending {check.code}")
            waiting = " ".join(f"#{i}" for i in check.records)
            ElementTree.SubElement(case, "skipped", message=f"not decided yet: {check.code} ({waiting})")
        _count(suite)
    _count(root)
    ElementTree.indent(root)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _case(suite: ElementTree.Element, classname: str, name: str, findings: Sequence[Finding]) -> None:
    case = ElementTree.SubElement(suite, "testcase", classname=classname, name=name)
    for finding in findings:
        if finding.severity is Severity.ERROR:
            failure = ElementTree.SubElement(case, "failure", message=finding.title, type=finding.code)
            failure.text = _finding_text(finding)
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    if warnings:
        out = ElementTree.SubElement(case, "system-out")
        out.text = "\n\n".join(f"warning {f.code}: {f.title}\n{_finding_text(f)}" for f in warnings)


def _finding_text(finding: Finding) -> str:
    records = " ".join(f"#{i}" for i in finding.records)
    return f"{finding.detail}\nFix: {finding.advice}\nRecords: {records}"


def _count(element: ElementTree.Element) -> None:
    """The `tests`, `failures`, `errors` and `skipped` counts of a suite (or of every suite)."""
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for case in cases if case.find("failure") is not None)))
    element.set("errors", "0")
    element.set("skipped", str(sum(1 for case in cases if case.find("skipped") is not None)))


def _data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner reads it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    """A workflow command's property value (`title=`), escaped as GitHub's runner reads it."""
    return _data(text).replace(":", "%3A").replace(",", "%2C")


_RENDERERS: dict[str, Callable[[Sequence[Judged]], str]] = {
    "text": text,
    "json": as_json,
    "github": github,
    "junit": junit_xml,
}
