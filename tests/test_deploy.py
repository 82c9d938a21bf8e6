"""deploy/, checked without Compose or Kubernetes: each file follows its schema, and what it says
must agree with the code and the image. The environment variables are ones `serve` reads, the
probes ask the path the server answers, the ports are the one the image exposes, the Redis URL names
the Redis service and its port, and nginx passes streams through unbuffered: set so, and, run in a
real nginx in front of two servers, doing so."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml
from jsonschema.validators import validator_for

from mock_server.cli import main
from mock_server.http.health import PATH as HEALTH_PATH
from mock_server.http.server import MockServer
from tests.conftest import wait_until
from tests.test_docker import DOCKERFILE, final_stage, free_port
from tests.wire import Ending, fetch

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
NGINX_CONF = DEPLOY / "nginx.conf"
KUBERNETES = DEPLOY / "kubernetes"
REDIS_PORT = 6379
WORKERS_ENV = "MOCK_LLM_WORKERS"
STATE_ENV = "MOCK_LLM_STATE"
# The oldest Kubernetes still common in managed clusters, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]

Manifest = dict[str, Any]


def serve_envvars() -> set[str]:
    """The environment variables `mock-llm-sse serve` reads, from its options."""
    serve = main.commands["serve"] if isinstance(main, click.Group) else None
    assert serve is not None
    names: set[str] = set()
    for param in serve.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    return names


def image_port() -> int:
    """The port the image listens on: its EXPOSE, which its MOCK_LLM_PORT must match."""
    stage = final_stage(DOCKERFILE.read_text())
    (exposed,) = stage.exposed
    assert stage.env["MOCK_LLM_PORT"] == exposed
    return int(exposed)


def check_environment(env: dict[str, str], redis_hosts: dict[str, int]) -> None:
    """Every MOCK_LLM_* variable is one `serve` reads; the state is Redis at one of `redis_hosts`
    (name: port); the workers are a count or `auto`."""
    unknown = {name for name in env if name.startswith("MOCK_LLM_")} - serve_envvars()
    assert not unknown, f"serve reads no {sorted(unknown)}"
    assert {WORKERS_ENV, STATE_ENV} <= set(env)
    workers = env[WORKERS_ENV]
    assert workers == "auto" or (workers.isdigit() and int(workers) >= 1), workers
    url = urlsplit(env[STATE_ENV])
    assert url.scheme == "redis"
    assert url.hostname in redis_hosts, f"{env[STATE_ENV]} names none of the Redis services {sorted(redis_hosts)}"
    assert url.port == redis_hosts[url.hostname]
    assert url.path.lstrip("/").isdigit(), "the URL names a database number"


def test_serve_reads_the_scaling_variables() -> None:
    assert serve_envvars() >= {WORKERS_ENV, STATE_ENV}


# -- docker-compose.yml ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Manifest:
    document: Manifest = yaml.safe_load(COMPOSE.read_text())
    return document


def test_compose_file_follows_the_compose_specification(compose: Manifest) -> None:
    # The Compose Specification's schema, as check-jsonschema ships it.
    schema = json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())

    problems = [schema_problem(error) for error in validator_for(schema)(schema).iter_errors(compose)]

    assert not problems


def schema_problem(error: jsonschema.ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) + f": {error.message}"


def redis_services(compose: Manifest) -> dict[str, int]:
    return {
        name: REDIS_PORT
        for name, service in compose["services"].items()
        if str(service.get("image", "")).split(":")[0] == "redis"
    }


def test_compose_replicas_build_the_repositorys_image_and_share_the_redis_service(compose: Manifest) -> None:
    server = compose["services"]["mock-llm"]

    assert (COMPOSE.parent / server["build"]["context"]).resolve() == DOCKERFILE.parent
    assert server["deploy"]["replicas"] >= 2
    assert "ports" not in server, "replicas are reached through the load balancer"
    env = {name: str(value) for name, value in server["environment"].items()}
    check_environment(env, redis_services(compose))
    assert server["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_redis_keeps_nothing_on_disk(compose: Manifest) -> None:
    (name,) = redis_services(compose)
    command = compose["services"][name]["command"]

    assert command[0] == "redis-server"
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--appendonly") + 1] == "no"
    assert "--port" not in command


def test_compose_exposes_one_port_the_load_balancer_listens_on(compose: Manifest) -> None:
    published = [(name, port) for name, service in compose["services"].items() for port in service.get("ports", [])]
    assert [name for name, _ in published] == ["lb"]
    ((_, port),) = published
    container_port = int(str(port).split(":")[-1])
    mount = next(v for v in compose["services"]["lb"]["volumes"] if v.split(":")[1] == "/etc/nginx/nginx.conf")

    assert (COMPOSE.parent / mount.split(":")[0]).resolve() == NGINX_CONF
    assert nginx_values(NGINX_CONF.read_text(), "server", "listen") == [[str(container_port)]]


# -- nginx.conf -----------------------------------------------------------------------------------


def nginx_directives(text: str) -> Iterator[tuple[list[list[str]], str, list[str]]]:
    """(enclosing blocks, each its name and arguments; directive; arguments) for each directive of an
    nginx configuration."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    blocks: list[list[str]] = []
    words: list[str] = []
    for token in tokens:
        if token == "{":
            blocks.append(words)
            words = []
        elif token == "}":
            blocks.pop()
        elif token == ";":
            yield list(blocks), words[0], words[1:]
            words = []
        else:
            words.append(token[1:-1] if token[0] in "\"'" else token)
    assert not blocks, "unbalanced braces"


def nginx_values(text: str, block: str, directive: str) -> list[list[str]]:
    """The arguments of each `directive` found inside a `block`."""
    return [
        args
        for blocks, name, args in nginx_directives(text)
        if name == directive and any(b[0] == block for b in blocks)
    ]


def test_nginx_passes_each_event_on_without_buffering() -> None:
    text = NGINX_CONF.read_text()

    assert nginx_values(text, "location", "proxy_buffering") == [["off"]]
    assert nginx_values(text, "location", "proxy_request_buffering") == [["off"]]
    assert nginx_values(text, "location", "proxy_http_version") == [["1.1"]]
    assert ["Connection", ""] in nginx_values(text, "location", "proxy_set_header")


def test_nginx_keeps_upstream_connections_and_long_streams(compose: Manifest) -> None:
    text = NGINX_CONF.read_text()
    (upstream,) = {b[1] for blocks, _, _ in nginx_directives(text) for b in blocks if b[0] == "upstream"}
    servers = nginx_values(text, "upstream", "server")
    (read_timeout,) = nginx_values(text, "location", "proxy_read_timeout")

    assert nginx_values(text, "location", "proxy_pass") == [[f"http://{upstream}"]]
    assert [args[0] for args in servers] == [f"mock-llm:{image_port()}"]
    assert "mock-llm" in compose["services"]
    assert int(nginx_values(text, "upstream", "keepalive")[0][0]) > 0
    assert read_timeout[0].endswith("s")
    assert int(read_timeout[0].removesuffix("s")) >= 600


# -- kubernetes/ ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = sorted(kustomization["resources"])
    on_disk = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert listed == on_disk, "kustomization.yaml lists every manifest"
    return [doc for name in listed for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container_ports(deployment: Manifest) -> dict[str, int]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {port.get("name", str(port["containerPort"])): port["containerPort"] for port in container["ports"]}


def service_target(service: Manifest, deployments: dict[str, Manifest]) -> tuple[Manifest, int, int]:
    """The Deployment a Service selects, and the Service's port and the container port it reaches."""
    selector = service["spec"]["selector"]
    (deployment,) = [
        d for d in deployments.values() if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= selector.items()
    (port,) = service["spec"]["ports"]
    target = port.get("targetPort", port["port"])
    ports = container_ports(deployment)
    return deployment, port["port"], ports[target] if isinstance(target, str) else target


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_follow_the_api_schemas(manifests: list[Manifest], version: str) -> None:
    problems = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{manifest['kind']} {manifest['metadata']['name']}: {schema_problem(error)}")

    assert not problems


def test_kubernetes_server_probes_health_on_the_images_port(manifests: list[Manifest]) -> None:
    deployment = of_kind(manifests, "Deployment")["mock-llm-sse"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = container_ports(deployment)

    assert list(ports.values()) == [image_port()]
    for probe in ("readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == HEALTH_PATH
        assert ports.get(http_get["port"], http_get["port"]) == image_port()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_kubernetes_server_shares_the_redis_services_state(manifests: list[Manifest]) -> None:
    deployments = of_kind(manifests, "Deployment")
    redis = {}
    for name, service in of_kind(manifests, "Service").items():
        deployment, port, target = service_target(service, deployments)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        if container["image"].split(":")[0] == "redis":
            assert target == REDIS_PORT
            redis[name] = port
    (container,) = deployments["mock-llm-sse"]["spec"]["template"]["spec"]["containers"]

    check_environment({e["name"]: e["value"] for e in container["env"]}, redis)


def test_kubernetes_service_reaches_the_server_on_the_images_port(manifests: list[Manifest]) -> None:
    service = of_kind(manifests, "Service")["mock-llm-sse"]

    deployment, _, target = service_target(service, of_kind(manifests, "Deployment"))

    assert deployment["metadata"]["name"] == "mock-llm-sse"
    assert target == image_port()


def test_kubernetes_workers_match_the_cpus_requested(manifests: list[Manifest]) -> None:
    (container,) = of_kind(manifests, "Deployment")["mock-llm-sse"]["spec"]["template"]["spec"]["containers"]
    workers = next(e["value"] for e in container["env"] if e["name"] == WORKERS_ENV)

    # `auto` counts the node's cores, not the container's share: a pod states its count.
    assert workers.isdigit()
    assert int(workers) == int(container["resources"]["requests"]["cpu"])


# -- nginx.conf, run by a real nginx ----------------------------------------------------------------


def local_nginx_conf(text: str, upstreams: list[str], port: int, directory: Path) -> str:
    """deploy/nginx.conf made to run here: in front of `upstreams` (host:port) instead of the compose
    service found through Docker's DNS, on 127.0.0.1:`port`, its files in `directory`."""
    (server,) = [line for line in text.splitlines() if line.strip().startswith("server mock-llm:")]
    (resolver,) = [line for line in text.splitlines() if line.strip().startswith("resolver ")]
    local = text.replace(server, "\n".join(f"        server {upstream};" for upstream in upstreams))
    local = local.replace(
        resolver, f"    client_body_temp_path {directory}/body;\n    proxy_temp_path {directory}/proxy;"
    )
    local = local.replace("worker_processes auto;", "worker_processes 1;")
    local = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", local)
    return f"daemon off;\npid {directory}/nginx.pid;\n{local}"


@dataclass
class Balanced:
    """A real nginx with deploy/nginx.conf at `url`, in front of `replicas`."""

    url: str
    replicas: list[MockServer]


@pytest.fixture
def balanced(make_server: Callable[..., MockServer], tmp_path: Path) -> Iterator[Balanced]:
    """deploy/nginx.conf in a real nginx, in front of two servers; skipped without nginx (Debian's
    is 1.22, without `resolve` for upstream servers: the compose file's name lookup is left out)."""
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/install-test-deps installs Debian's)")
    replicas = [make_server(), make_server()]
    port = free_port()
    conf = tmp_path / "nginx.conf"
    upstreams = [urlsplit(replica.url).netloc for replica in replicas]
    conf.write_text(local_nginx_conf(NGINX_CONF.read_text(), upstreams, port, tmp_path))
    command = [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: accepts(port) or process.poll() is not None, "nginx to listen")
        assert process.poll() is None, (tmp_path / "error.log").read_text()
        yield Balanced(f"http://127.0.0.1:{port}", replicas)
    finally:
        process.terminate()
        process.wait(10)


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_a_real_nginx_passes_each_event_on_as_it_is_written(balanced: Balanced) -> None:
    response = fetch(f"{balanced.url}/completions?messages=hello&chunk_ms=100")

    assert response.status == 200
    assert response.ending == Ending.COMPLETE
    first, last = response.arrived(response.data[0].encode()), response.arrived(b"[DONE]")
    # Each event reaches the client as the replica writes it, 100 ms apart, not all at the end.
    assert last - first >= 0.05 * (len(response.data) - 1), [at for at, _ in response.chunks]


@pytest.mark.slow
def test_a_real_nginx_spreads_requests_over_the_replicas(balanced: Balanced) -> None:
    for i in range(6):
        assert fetch(f"{balanced.url}/completions?messages=request+{i}").status == 200

    counts = [len(httpx.get(replica.url + "/_mock/requests").json()) for replica in balanced.replicas]

    assert sorted(counts) == [3, 3]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["drop", "reset"])
def test_a_real_nginx_ends_a_cut_stream_with_a_close(balanced: Balanced, fault: str) -> None:
    response = fetch(f"{balanced.url}/completions?messages=hello&fault={fault}@3")

    # What the README says of faults behind a balancer: a reset reaches the client as a close too.
    assert response.status == 200
    assert response.ending == Ending.EOF
