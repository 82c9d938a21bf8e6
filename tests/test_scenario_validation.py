"""Scenario files are validated before a server starts: every problem, each as `file:line: problem`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mock_server.errors import ScenarioError
from mock_server.scenarios.catalog import bundled_scenarios_dir, load_paths
from mock_server.scenarios.delays import MAX_DELAY_MS

FAULT_KINDS = (
    "use one of drop, reset, close, error, stall, malformed, split, delay, status, no_done, duplicate, unknown_event"
)


def problems_in(tmp_path: Path, text: str, name: str = "broken.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_paths([path])
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


def test_bundled_scenarios_are_valid() -> None:
    names = {entry.scenario.name for entry in load_paths([bundled_scenarios_dir()])}
    expected = {
        "default",
        "slow-chunks",
        "slow-first-token",
        "mid-stream-drop",
        "connection-reset",
        "close-event",
        "error-event",
        "stall",
        "malformed-json",
        "split-utf8",
        "no-done",
        "rate-limited",
        "server-error",
        "unauthorized",
        "wrong-content-type",
        "keepalive",
        "long-reply",
    }
    assert expected <= names


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    text = (
        "description: several mistakes\n"  # 1
        "reply: hi\n"  # 2
        "chunk_ms: soon\n"  # 3
        "chunck: word\n"  # 4
        "faults:\n"  # 5
        "  - {kind: drop, at: 2}\n"  # 6
        "  - kind: dorp\n"  # 7
        "    at: 3\n"  # 8
        "  - {kind: stall, at: -1}\n"  # 9
        "status: 302\n"  # 10
    )
    problems = problems_in(tmp_path, text)
    assert problems == [
        "broken.yaml:3: chunk_ms: 'soon' is not a number of milliseconds",
        "broken.yaml:4: unknown field 'chunck'; did you mean 'chunk'?",
        f"broken.yaml:7: faults.1.kind: 'dorp' is not a fault kind; {FAULT_KINDS}",
        "broken.yaml:9: faults.2.at: -1 is not a whole number (0 or more) or head",
        "broken.yaml:10: status: 302 is not a status to answer with; use 200 (a stream) or an error status 400-599",
    ]


def test_step_problems_point_at_the_step(tmp_path: Path) -> None:
    text = (
        "steps:\n"  # 1
        "  - text: Hello\n"  # 2
        "  - sleep_ms: -5\n"  # 3
        "  - stall: {ms: x}\n"  # 4
        "  - {wait: 3}\n"  # 5
        "  - finish: {reason: stop}\n"  # 6
    )
    problems = problems_in(tmp_path, text)
    assert problems == [
        "broken.yaml:3: steps.1.sleep_ms: -5 is less than 0; use a number of milliseconds (0 or more)",
        "broken.yaml:4: steps.2.stall.ms: 'x' is not a number of milliseconds (0 or more) or null",
        "broken.yaml:5: steps.3: {'wait': 3} is not a step; use a mapping of one key, one of text, reasoning, "
        "tool_call, sleep_ms, event, comment, raw, split, duplicate, malformed, unknown_event, drop, reset, stall, "
        "error, finish",
    ]


CHUNKING = "use word, char, or a number of characters (1 or more)"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "faults: [{kind: explode}]", f"faults.0.kind: 'explode' is not a fault kind; {FAULT_KINDS}", id="enum"
        ),
        pytest.param("steps: [{drop: false}]", "steps.0.drop: false is not true or null", id="literal"),
        pytest.param("chunk: paragraph", f"chunk: 'paragraph' is not a way to chunk a reply; {CHUNKING}", id="union"),
        pytest.param("chunk: 0", f"chunk: 0 is not a way to chunk a reply; {CHUNKING}", id="union-out-of-bounds"),
        pytest.param(
            "tool_calls: [{name: f, arguments: 5}]",
            "tool_calls.0.arguments: 5 is not a string, a mapping, or a list",
            id="union-of-kinds",
        ),
        pytest.param("chunk_ms: soon", "chunk_ms: 'soon' is not a number of milliseconds", id="number"),
        pytest.param("seed: 1.5", "seed: 1.5 is not a whole number", id="whole-number"),
        pytest.param("done: maybe", "done: 'maybe' is not true or false", id="bool"),
        pytest.param("reply: [1, 2]", "reply: [1, 2] is not a string", id="string"),
        pytest.param("faults: drop", "faults: 'drop' is not a list", id="list"),
        pytest.param("steps: [{split: 5}]", "steps.0.split: 5 is not a mapping {pieces, ms} or null", id="mapping"),
        pytest.param(
            "retry_ms: 1.5",
            "retry_ms: 1.5 is not a whole number of milliseconds (0 or more) or null",
            id="optional",
        ),
        pytest.param(
            "steps: [hello]",
            "steps.0: 'hello' is not a step; use a mapping of one key, one of text, reasoning, tool_call, sleep_ms, "
            "event, comment, raw, split, duplicate, malformed, unknown_event, drop, reset, stall, error, finish",
            id="step",
        ),
        pytest.param(
            "faults: [{at: 1}]",
            f"faults.0.kind: required field is missing; give a fault kind: {FAULT_KINDS.removeprefix('use ')}",
            id="missing",
        ),
        pytest.param("steps: [{split: {piece: 3}}]", "unknown field 'piece'; did you mean 'pieces'?", id="step-field"),
        pytest.param(
            "tool_calls: [{name: ''}]", "tool_calls.0.name: '' is too short; use at least 1 character", id="empty"
        ),
    ],
)
def test_a_problem_names_the_value_given_and_what_is_accepted(tmp_path: Path, text: str, problem: str) -> None:
    assert problems_in(tmp_path, text + "\n") == [f"broken.yaml:1: {problem}"]


def test_a_value_no_branch_of_a_union_takes_is_one_problem(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, "chunk: paragraph\ntool_calls: [{name: f, arguments: 5}]\nretry_ms: x\n")
    assert [problem.split(": ", 2)[1] for problem in problems] == ["chunk", "tool_calls.0.arguments", "retry_ms"]


def test_steps_after_a_stream_ending_step_are_a_problem(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, "steps:\n  - text: a\n  - drop: true\n  - text: b\n")
    assert problems == [
        "broken.yaml:1: step 1 (`drop`) ends the stream, so the 1 step(s) after it would never be sent; remove them"
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("reply: [unclosed\n", "broken.yaml:2: invalid YAML: expected ',' or ']'"),
        ("reply: a\nreply: b\n", "broken.yaml:2: duplicate key 'reply'"),
        ("- a list\n", "a scenario is a mapping of fields, not list"),
        ("match: {prompt: '(unclosed'}\n", "invalid regular expression '(unclosed'"),
        ("headers: {'Bad Name': x}\n", "header name 'Bad Name' is not a valid HTTP token"),
        ('headers: {X-Evil: "a\\r\\nSet-Cookie: x"}\n', "has a CR, LF or NUL"),
        ("headers: {Content-Length: '5'}\n", "is set by the server"),
        ("name: '../etc/passwd'\n", "name: '../etc/passwd' is not a scenario name; use 1 to 128 letters,"),
        ("chunk: 0\n", "chunk"),
        ("faults: [{kind: status}]\n", "a `status` fault needs `status`"),
        ("faults: [{kind: split, pieces: 1}]\n", "pieces: 1 is less than 2; use a whole number (2 to 64)"),
        ("faults: [{kind: drop, probability: 2}]\n", "probability: 2 is more than 1; use a number (0 to 1)"),
        ("thresholds: {grace_ms: -1}\n", "thresholds.grace_ms: -1 is less than 0; use a number of milliseconds"),
        ("thresholds: {patience_ms: 0}\n", "patience_ms: 0 is not more than 0; use a number of milliseconds (more"),
        ("thresholds: {max_attempts: 0}\n", "max_attempts: 0 is less than 1; use a whole number (1 or more)"),
        ("thresholds: {grace: 100}\n", "broken.yaml:1: unknown field 'grace'; did you mean 'grace_ms'?"),
        ("thresholds: 5\n", "thresholds: 5 is not a mapping {grace_ms, patience_ms, close_grace_ms, max_attempts}"),
        ("faults: [" + ", ".join(["{kind: drop}"] * 101) + "]\n", "faults: 101 items are too many; use at most 100"),
        ('reply: ok\ndescription: "\\ud800"\n', "broken.yaml:2: description: holds a lone surrogate"),
        ("tool_calls: [{name: f, arguments: {a: .nan}}]\n", "broken.yaml:1: tool_calls.0.arguments: holds NaN"),
        ('headers: {"X-\\udc00": v}\n', "broken.yaml:1: headers.X-\ufffd: holds a lone surrogate"),
    ],
)
def test_invalid_scenario_is_rejected_with_a_clear_message(tmp_path: Path, text: str, needle: str) -> None:
    problems = problems_in(tmp_path, text)
    assert any(needle in p for p in problems), problems


def test_json_scenarios_report_lines_too(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, '{\n  "reply": "hi",\n  "chunk_ms": "x"\n}\n', "broken.json")
    assert problems == ["broken.json:3: chunk_ms: 'x' is not a number of milliseconds"]


def test_invalid_json_reports_its_line(tmp_path: Path) -> None:
    problems = problems_in(tmp_path, '{\n  "reply": "hi",\n}\n', "broken.json")
    assert problems[0].startswith("broken.json:3: invalid JSON")


def test_problems_from_every_file_are_collected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("chunk_ms: x\n")
    (tmp_path / "b.yaml").write_text("jitter_ms: y\n")
    (tmp_path / "c.yaml").write_text("reply: fine\n")
    with pytest.raises(ScenarioError) as caught:
        load_paths([tmp_path])
    assert [p.source.rsplit("/", 1)[-1] for p in caught.value.problems] == ["a.yaml", "b.yaml"]


def test_two_files_with_one_name_in_a_directory_are_a_problem(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: same\n")
    (tmp_path / "b.yaml").write_text("name: same\n")
    with pytest.raises(ScenarioError, match="scenario name 'same' is also used by"):
        load_paths([tmp_path])


def test_a_later_directory_replaces_a_scenario_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("reply: mine\n")
    entries = {e.scenario.name: e for e in load_paths([bundled_scenarios_dir(), tmp_path])}
    assert entries["default"].scenario.reply == "mine"


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    (tmp_path / "my-scenario.yml").write_text("reply: hi\n")
    (entry,) = load_paths([tmp_path])
    assert entry.scenario.name == "my-scenario"


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no such file or directory"):
        load_paths([tmp_path / "nope"])


HOUR_BOUND = "ms is longer than the 3600000 ms (one hour) any delay may be"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("chunk_ms: 1e300\n", "chunk_ms"),
        ("first_chunk_ms: 3600001\n", "first_chunk_ms"),
        ("jitter_ms: 1e9\n", "jitter_ms"),
        ("keepalive_ms: 1e300\n", "keepalive_ms"),
        ("retry_ms: 99999999999\n", "retry_ms"),
        ("steps: [{sleep_ms: 1e300}]\n", "steps.0.sleep_ms"),
        ("steps: [{stall: {ms: 1e300}}]\n", "steps.0.stall.ms"),
        ("steps: [{split: {ms: 1e300}}]\n", "steps.0.split.ms"),
        ("steps: [{event: {retry: 99999999999}}]\n", "steps.0.event.retry"),
        ("faults: [{kind: delay, at: 1, ms: 1e300}]\n", "faults.0.ms"),
        ("faults: [{kind: stall, ms: 1e300}]\n", "faults.0.ms"),
        ("thresholds: {grace_ms: 1e300}\n", "thresholds.grace_ms"),
        ("thresholds: {patience_ms: 1e300}\n", "thresholds.patience_ms"),
        ("thresholds: {close_grace_ms: 1e300}\n", "thresholds.close_grace_ms"),
    ],
)
def test_every_delay_is_bounded_by_the_same_hour(tmp_path: Path, text: str, where: str) -> None:
    problems = problems_in(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"broken.yaml:1: {where}: ")
    assert HOUR_BOUND in problems[0]


def test_an_hour_itself_is_a_valid_delay(tmp_path: Path) -> None:
    (tmp_path / "hour.yaml").write_text("chunk_ms: 3600000\nthresholds: {patience_ms: 3600000}\n")
    assert load_paths([tmp_path])[0].scenario.chunk_ms == MAX_DELAY_MS


@pytest.mark.parametrize(
    ("pattern", "advice"),
    [
        (r"(\w+) \1", "RE2 has no backreferences; match the repeated text itself"),
        (r"(?P<word>\w+) (?P=word)", "RE2 has no backreferences"),
        (r"foo(?=bar)", "match the neighbouring text as part of the pattern (`foo(?=bar)` -> `foobar`)"),
        (r"(?<!not )sure", "RE2 has no lookahead or lookbehind"),
        (r"a++", "write `a+` for `a++`"),
        (r"(?>ab|a)c", "write `(?:...)` for `(?>...)`"),
        (r"done\Z", r"write `\z` for the end of the text"),
        (r"(?x) hello  # greeting", "RE2 has no verbose mode"),
        (r"\u263a", r"as `\x{263A}`"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_saying_what_to_write(tmp_path: Path, pattern: str, advice: str) -> None:
    problems = problems_in(tmp_path, f"match: {{prompt: {json.dumps(pattern)}}}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"broken.yaml:1: match.prompt: regular expression {pattern!r} cannot be used (")
    assert advice in problems[0]
    assert "RE2, which never takes more than linear time" in problems[0]


def test_bad_replies_are_reported_item_by_item(tmp_path: Path) -> None:
    text = (
        "replies:\n"  # 1
        "  - Hello\n"  # 2
        "  - [{text: a}, {drop: true}, {text: b}]\n"  # 3
        "  - {reply: x, steps: [{text: y}]}\n"  # 4
        "  - 3\n"  # 5
        "  - {reply: x, tool_call: {name: f}}\n"  # 6
    )
    assert problems_in(tmp_path, text) == [
        "broken.yaml:3: replies.1: step 1 (`drop`) ends the stream, so the 1 step(s) after it would never be sent; "
        "remove them",
        "broken.yaml:4: replies.2: steps script the whole reply; leave out reply (write them as `text`, `reasoning`, "
        "`tool_call` and `finish` steps)",
        "broken.yaml:5: replies.3: 3 is not a reply; use a text, a list of steps, or a mapping of reply, reasoning, "
        "tool_calls, finish_reason, steps",
        "broken.yaml:6: unknown field 'tool_call'; did you mean 'tool_calls'?",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("replies: []\n", "broken.yaml:1: replies: 0 items are too few; use at least 1"),
        (
            "reply: hi\nreplies: [a, b]\n",
            "broken.yaml:1: replies say what each request is answered; leave out reply, or make it an item of "
            "`replies`",
        ),
        ("cycle: true\n", "broken.yaml:1: cycle: true needs `replies`, the sequence to go round"),
        (
            "replies: [a]\nproxy: true\n",
            "broken.yaml:1: proxy and replies each say where the response comes from; keep one of them",
        ),
    ],
)
def test_replies_must_be_the_only_answer(tmp_path: Path, text: str, problem: str) -> None:
    assert problems_in(tmp_path, text) == [problem]


def test_bad_conversation_match_rules_say_what_is_accepted(tmp_path: Path) -> None:
    text = (
        "match:\n"  # 1
        "  turn: 0\n"  # 2
        "  last_role: tools\n"  # 3
        "  tool_result: {nam: get_weather}\n"  # 4
        "  tools_offered: maybe\n"  # 5
        '  system: "(?<=a)"\n'  # 6
    )
    problems = problems_in(tmp_path, text)
    assert problems[:4] == [
        "broken.yaml:2: match.turn: 0 is not a turn; use a number (1 for the first user message) or a range like "
        "{min: 2, max: 4}",
        "broken.yaml:3: match.last_role: 'tools' is not a role; use one of user, assistant, tool, system",
        "broken.yaml:4: unknown field 'nam'; did you mean 'name'?",
        "broken.yaml:5: match.tools_offered: 'maybe' is not true, false, or null",
    ]
    assert problems[4].startswith("broken.yaml:6: match.system: regular expression '(?<=a)' cannot be used")


@pytest.mark.parametrize(
    ("turn", "problem"),
    [
        ("{min: 3, max: 2}", "match.turn: min 3 is above max 2; no turn would match"),
        ("{}", "match.turn: a turn range needs `min`, `max` or both, like {min: 2} or {min: 2, max: 4}"),
    ],
)
def test_a_turn_range_needs_bounds_in_order(tmp_path: Path, turn: str, problem: str) -> None:
    assert problems_in(tmp_path, f"match:\n  turn: {turn}\n") == [f"broken.yaml:2: {problem}"]


def test_good_replies_and_conversation_rules_load(tmp_path: Path) -> None:
    text = (
        "replies:\n"
        "  - Hello\n"
        "  - [{text: Sunny}, {finish: {reason: stop}}]\n"
        "  - {tool_calls: [{name: get_weather, arguments: {city: Paris}}]}\n"
        "cycle: true\n"
        "match: {turn: {min: 2}, last_role: tool, tool_result: {name: get_weather, content: sunny}, "
        "tools_offered: true, system: pirate}\n"
    )
    (tmp_path / "agent.yaml").write_text(text)
    scenario = load_paths([tmp_path])[0].scenario
    assert scenario.replies is not None
    assert [scenario.reply_index(n) for n in range(1, 6)] == [0, 1, 2, 0, 1]
