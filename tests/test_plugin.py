"""The pytest plugin as users meet it: installed by its entry point, in a fresh pytest session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Pytester runs each inner session in this process and then forgets the modules it imported. The
# server imports FastAPI's part (the control API) lazily, on a worker thread, on its first control
# request: forgotten after one inner session, it came back half-made in the next, without its
# routes. Imported here, it is part of what every inner session starts with.
import mock_server.http.fastapi_app  # noqa: F401

README = Path(__file__).parent.parent / "README.md"


def readme_examples(section: str) -> list[str]:
    """The python blocks of a README section that are tests."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)
    return [block for block in blocks if "def test_" in block]


EXAMPLES = readme_examples("pytest plugin")
VERDICT_EXAMPLES = readme_examples("Client verdicts")


@pytest.mark.slow
@pytest.mark.parametrize(
    "example",
    [pytest.param(example, id=re.findall(r"def (test_\w+)", example)[0]) for example in EXAMPLES + VERDICT_EXAMPLES],
)
def test_readme_example_passes(pytester, example):
    pytester.makepyfile(example)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_readme_has_the_two_examples_and_a_verdict_example():
    assert len(VERDICT_EXAMPLES) == 1
    assert len(EXAMPLES) == 2
    assert "from openai import OpenAI" in EXAMPLES[0]
    assert "from httpx_sse import connect_sse" in EXAMPLES[1]


def test_plugin_is_installed_by_its_entry_point(pytester):
    assert "--mock-llm-scenarios=DIR" in pytester.runpytest("--help").stdout.str()
    pytester.makepyfile("def test_uses(mock_llm): pass")
    disabled = pytester.runpytest("-p", "no:mock_llm_sse")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'mock_llm' not found*"])


def test_mock_llm_is_reset_between_tests_and_the_server_is_shared(pytester):
    pytester.makepyfile(
        """
        import httpx

        urls = []

        def test_first(mock_llm):
            urls.append(mock_llm.url)
            mock_llm.add_scenario("mine", reply="hi")
            assert httpx.get(mock_llm.url + "/completions?messages=x&scenario=mine").status_code == 200
            assert len(mock_llm.requests) == 1

        def test_second(mock_llm, mock_llm_server):
            assert mock_llm is mock_llm_server
            assert mock_llm.url == urls[0]
            assert mock_llm.requests == []
            assert httpx.get(mock_llm.url + "/completions?messages=x&scenario=mine").status_code == 404
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_records_are_typed(pytester):
    pytester.makepyfile(
        """
        import httpx
        import pytest
        from mock_server import Outcome, RequestRecord

        def test_typed(mock_llm):
            params = {"messages": "hi", "fault": "drop@1"}
            with httpx.stream("GET", mock_llm.url + "/completions", params=params) as response:
                with pytest.raises(httpx.RemoteProtocolError):
                    response.read()
            (record,) = mock_llm.requests
            assert isinstance(record, RequestRecord)
            assert record.outcome is Outcome.DROPPED
            assert record.outcome == "dropped"
            assert record.query == {"messages": "hi", "fault": "drop@1"}
            assert record.events_sent == 2
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_failed_journal_assertion_shows_the_record_and_every_request(pytester):
    pytester.makepyfile(
        """
        import httpx

        def test_answer_was_complete(mock_llm):
            httpx.get(mock_llm.url + "/completions?messages=hi&scenario=rate-limited")
            assert mock_llm.last_request.outcome == "completed"

        def test_answer_had_events(mock_llm):
            httpx.get(mock_llm.url + "/completions?messages=hi&scenario=rate-limited")
            assert mock_llm.last_request.events_sent == 5
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    record = "GET /completions scenario='rate-limited' status=429 outcome='error_status' events_sent=0 *ms"
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert Outcome.ERROR_STATUS == 'completed'",
            "E         - completed",
            "E         + error_status",
            "*- mock-llm-sse requests at http://127.0.0.1:* -*",
            f"#1 {record}",
            "E       AssertionError: assert 0 == 5",
            f"E        +  where 0 = <RequestRecord #2 {record}>.events_sent",
            "E        +    where <RequestRecord #2 *> = <MockServer http://127.0.0.1:*>.last_request",
            "*- mock-llm-sse requests at http://127.0.0.1:* -*",
            f"#2 {record}",  # ids go on across resets, so `since=` stays meaningful
        ]
    )


def test_assert_client_behaved_fails_with_every_finding_its_advice_and_records(pytester):
    pytester.makepyfile(
        """
        import httpx

        def test_retries_a_401_blindly(mock_llm):
            for _ in range(3):
                httpx.get(mock_llm.url + "/completions", params={"messages": "hi", "scenario": "unauthorized"})
            mock_llm.assert_client_behaved()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    record = "GET /completions scenario='unauthorized' status=401 outcome='error_status' events_sent=0 *ms"
    result.stdout.fnmatch_lines(
        [
            ">       mock_llm.assert_client_behaved()",
            "E       AssertionError: The client misbehaved: 1 finding(s), 1 error(s) and 0 warning(s), "
            "in 3 request(s) in 1 call(s).",
            "E       1. [error] retried_non_retryable: Retried a request that cannot succeed",
            "E          #1 was answered 401, and #2 asked the same again; 1 more time(s) in this call.",
            "E          Fix: Do not retry 400, 401, 403, 404 or 422: *",
            f"E          #1 {record}",
            f"E          #2 {record}",
            f"E          #3 {record}",
            "test_assert_client_behaved_*.py:6: AssertionError",
        ]
    )


def test_assert_client_behaved_passes_a_good_client_and_accepts_ignored_codes(pytester):
    pytester.makepyfile(
        """
        import httpx
        import pytest

        def test_behaves(mock_llm):
            httpx.get(mock_llm.url + "/completions", params={"messages": "hi"})
            verdict = mock_llm.assert_client_behaved()
            assert (verdict.findings, verdict.calls) == ((), ((1,),))

        def test_ignores(mock_llm):
            for _ in range(2):
                httpx.get(mock_llm.url + "/completions", params={"messages": "hi", "scenario": "unauthorized"})
            mock_llm.assert_client_behaved(ignore=["retried_non_retryable"])
            assert [f.code for f in mock_llm.verdict().findings] == ["retried_non_retryable"]
            with pytest.raises(ValueError, match="unknown finding code"):
                mock_llm.assert_client_behaved(ignore=["retried_non_retriable"])
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_assert_client_behaved_waits_for_the_grace_before_passing_a_cut_stream(pytester):
    pytester.makepyfile(
        """
        import httpx

        def test_accepts_a_cut_answer(mock_llm):
            name = mock_llm.add_scenario(reply="one two", faults=[{"kind": "no_done"}], thresholds={"grace_ms": 200})
            httpx.get(mock_llm.url + "/completions", params={"messages": "hi", "scenario": name})
            mock_llm.assert_client_behaved()

        def test_cannot_vouch_before_it_knows(mock_llm):
            name = mock_llm.add_scenario(reply="one two", faults=[{"kind": "no_done"}])
            httpx.get(mock_llm.url + "/completions", params={"messages": "hi", "scenario": name})
            mock_llm.assert_client_behaved(wait_s=0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: The client misbehaved: 1 finding(s), 0 error(s) and 1 warning(s)*",
            "E       1. [warning] cut_stream_not_retried: No new request after a cut stream",
            "E       AssertionError: No findings in 1 request(s) in 1 call(s). 1 check(s) still waiting for time to "
            "pass (cut_stream_not_retried).",
            "E       They were not decided within wait_s=0; wait longer, or lower the scenario's thresholds *",
        ]
    )


SCENARIO = "description: from the test's own directory\nreply: custom reply\n"


@pytest.mark.parametrize("where", ["option", "ini"])
def test_scenarios_come_from_the_option_or_the_ini(pytester, where):
    (pytester.path / "llm").mkdir()
    (pytester.path / "llm" / "custom.yaml").write_text(SCENARIO)
    pytester.makepyfile(
        """
        import httpx

        def test_custom(mock_llm):
            scenario = httpx.get(mock_llm.url + "/_mock/scenarios/custom").json()
            assert scenario["description"] == "from the test's own directory"
        """
    )
    if where == "ini":
        pytester.makeini("[pytest]\nmock_llm_scenarios = llm\n")
        result = pytester.runpytest()
    else:
        result = pytester.runpytest("--mock-llm-scenarios", "llm")
    result.assert_outcomes(passed=1)


def test_the_option_replaces_the_ini(pytester):
    for folder in ("from_ini", "from_option"):
        (pytester.path / folder).mkdir()
        (pytester.path / folder / f"{folder}.yaml").write_text(SCENARIO)
    pytester.makeini("[pytest]\nmock_llm_scenarios = from_ini\n")
    pytester.makepyfile(
        """
        import httpx

        def test_which(mock_llm):
            names = {s["name"] for s in httpx.get(mock_llm.url + "/_mock/scenarios").json()}
            assert "from_option" in names
            assert "from_ini" not in names
        """
    )
    pytester.runpytest("--mock-llm-scenarios", "from_option").assert_outcomes(passed=1)


def test_invalid_scenarios_fail_the_fixture_with_every_problem(pytester):
    (pytester.path / "llm").mkdir()
    (pytester.path / "llm" / "broken.yaml").write_text("reply: hi\nchunk_ms: -5\nfaults: [{kind: dorp}]\n")
    pytester.makepyfile("def test_uses(mock_llm): pass")
    result = pytester.runpytest("--mock-llm-scenarios", "llm")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ScenarioError: *broken.yaml:2: chunk_ms: -5 is less than 0; use a number of milliseconds (0 or more)",
            "*broken.yaml:3: faults.0.kind: 'dorp' is not a fault kind; use one of drop, reset, *",
        ]
    )


@pytest.mark.slow
def test_each_xdist_worker_has_its_own_server(pytester):
    pytester.makepyfile(
        f"""
        import os
        import pathlib
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_record_url(mock_llm, n):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            (pathlib.Path({str(pytester.path)!r}) / f"{{worker}}-{{n}}.url").write_text(mock_llm.url)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    urls = {path.read_text() for path in pytester.path.glob("gw*.url")}
    workers = {path.name.split("-")[0] for path in pytester.path.glob("gw*.url")}
    assert workers == {"gw0", "gw1"}
    assert len(urls) == 2


REPORTED = """
import httpx

def test_retries_a_401_blindly(mock_llm):
    for _ in range(2):
        httpx.get(mock_llm.url + "/completions", params={"messages": "hi", "scenario": "unauthorized"})

def test_reads_one_answer(mock_llm):
    httpx.get(mock_llm.url + "/completions", params={"messages": "hi"})

def test_no_requests(mock_llm):
    pass
"""


def report_cases(path: Path) -> dict[str, list[str]]:
    """By test case name: the codes of its failures."""
    from xml.etree import ElementTree

    root = ElementTree.parse(path).getroot()
    return {
        f"{case.get('classname')} / {case.get('name')}": [f.get("type") or "" for f in case.findall("failure")]
        for case in root.iter("testcase")
    }


def test_report_option_writes_each_tests_verdict_as_junit(pytester):
    pytester.makepyfile(REPORTED)
    result = pytester.runpytest("--mock-llm-report", "verdicts.xml")
    result.assert_outcomes(passed=3)  # the report judges; it does not fail the tests
    assert report_cases(pytester.path / "verdicts.xml") == {
        "test_report_option_writes_each_tests_verdict_as_junit.py::test_reads_one_answer / "
        "call 1: GET /completions scenario='default' (#3)": [],
        "test_report_option_writes_each_tests_verdict_as_junit.py::test_retries_a_401_blindly / "
        "call 1: GET /completions scenario='unauthorized' (#1, #2)": ["retried_non_retryable"],
    }


def test_report_option_writes_text_and_json_by_the_files_suffix(pytester):
    import json

    pytester.makepyfile(REPORTED)
    pytester.runpytest("--mock-llm-report", "verdicts.json").assert_outcomes(passed=3)
    data = json.loads((pytester.path / "verdicts.json").read_text())
    assert [(v["suite"].split("::")[1], v["errors"]) for v in data] == [
        ("test_reads_one_answer", 0),
        ("test_retries_a_401_blindly", 1),
    ]
    pytester.runpytest("--mock-llm-report", "verdicts.txt").assert_outcomes(passed=3)
    text = (pytester.path / "verdicts.txt").read_text()
    assert "retried_non_retryable" in text
    assert "::test_reads_one_answer\nNo findings in 1 request(s) in 1 call(s)." in text


@pytest.mark.slow
def test_report_option_gathers_every_xdist_workers_verdicts(pytester):
    pytester.makepyfile(REPORTED)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "--mock-llm-report", "verdicts.xml")
    result.assert_outcomes(passed=3)
    cases = report_cases(pytester.path / "verdicts.xml")
    assert sorted(codes for codes in cases.values()) == [[], ["retried_non_retryable"]]
    assert all("scenario=" in name for name in cases)
