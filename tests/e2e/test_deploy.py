"""The files of deploy/ (docs/deploy.md) hold together with taskward as it is.

No image can be pulled or built here, so each file is checked as far as this machine allows:
the compose file by Debian's docker-compose (``config``), the systemd unit by
``systemd-analyze verify``, the Dockerfile and the Kubernetes manifests by reading them,
with the numbers the docs promise (grace periods above ``--grace``, probe paths and ports
that are the worker's flags, metric names that exist). Then the worker runs as the
Kubernetes manifest starts it, and is stopped as the kubelet stops it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_helpers import free_port, new_task

from taskward.api.metrics import Metrics
from taskward.app import App
from taskward.loading import load_app
from taskward.models import Status
from taskward.worker import Worker
from taskward.worker_metrics import WorkerMetrics
from waiting import eventually, wait_status

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBE = DEPLOY / "kubernetes"
#: What a stop takes after --grace: releasing the runs still going, their last writes.
STOP_MARGIN = 5


def flag(command: list[str], name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in a command line."""
    for i, arg in enumerate(command):
        if arg == name:
            return command[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} is not in {command}")


def documents(path: Path) -> dict[str, dict[str, Any]]:
    """The objects of a manifest by kind."""
    out = {}
    for doc in yaml.safe_load_all(path.read_text()):
        assert doc["kind"] not in out, f"two {doc['kind']} in {path}"
        out[doc["kind"]] = doc
    return out


def metric_names() -> set[str]:
    """Every metric and sample name that ``serve`` and a worker expose."""
    registries = [Metrics().registry, WorkerMetrics(Worker(App("memory://"))).registry]
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.update(f"{family.name}{s}" for s in ("_total", "_bucket", "_count", "_sum"))
    return names


def image_user() -> tuple[int, int]:
    """The uid and gid the Dockerfile's USER sets."""
    [user] = re.findall(r"^USER (\d+):(\d+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    return int(user[0]), int(user[1])


def check_app(spec: str) -> None:
    """``spec`` loads from deploy/ and has the example's task."""
    module = spec.partition(":")[0]
    assert module not in sys.modules  # no other test's module of that name stands in
    sys.path.insert(0, str(DEPLOY))
    try:
        app = load_app(spec)
    finally:
        sys.path.remove(str(DEPLOY))
        sys.modules.pop(module, None)
    assert "resize" in app.tasks


# -- Docker ----------------------------------------------------------------------------------


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")} | env
    return subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
        check=False,
    )


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match[1])


def test_docker_compose_validates_the_compose_file() -> None:
    done = compose_config({"TASKWARD_API_TOKEN": "a-token"})
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "migrate", "serve", "worker-1", "worker-2"}
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["taskward", "migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("serve", "worker-1", "worker-2"):
        service = services[name]
        assert service["build"]["context"] == str(DEPLOY)
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert service["stop_signal"] == "SIGTERM"
        assert service["environment"]["TASKWARD_LOG_FORMAT"] == "json"
        check_app(service["environment"]["TASKWARD_APP"])
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        command = worker["command"]
        assert command[:2] == ["taskward", "worker"]
        assert seconds(worker["stop_grace_period"]) >= float(flag(command, "--grace")) + 10
        assert flag(command, "--metrics-host") == "0.0.0.0"
        port = flag(command, "--metrics-port")
        probe = " ".join(worker["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in probe
    serve = services["serve"]
    assert serve["command"][:2] == ["taskward", "serve"]
    assert serve["environment"]["TASKWARD_API_TOKEN"] == "a-token"
    port = flag(serve["command"], "--port")
    assert f"http://127.0.0.1:{port}/health/ready" in " ".join(serve["healthcheck"]["test"])
    assert serve["ports"] == [f"127.0.0.1:{port}:{port}/tcp"]


def test_compose_does_not_start_without_an_api_token() -> None:
    done = compose_config({})
    assert done.returncode != 0
    assert "set TASKWARD_API_TOKEN to the API token" in done.stderr


def test_the_dockerfile_runs_taskward_as_pid_1_and_not_as_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("FROM python:3.")
    uid, gid = image_user()
    assert uid != 0
    assert f"--uid {uid}" in text
    assert f"--gid {gid}" in text
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    command = json.loads(cmd.removeprefix("CMD "))  # exec form: a JSON array, no shell
    assert command[:2] == ["taskward", "serve"]
    assert not any(line.startswith("ENTRYPOINT") for line in lines)
    assert lines.index(f"USER {uid}:{gid}") < lines.index(cmd)
    assert "COPY myapp/ ./myapp/" in text
    [app_spec] = re.findall(r"^ENV TASKWARD_APP=(\S+)$", text, re.M)
    check_app(app_spec)
    requirements = (DEPLOY / "requirements.txt").read_text()
    assert re.search(r"^taskward\[server,postgres\]", requirements, re.M)
    ignored = (DEPLOY / ".dockerignore").read_text().split()
    assert {"*", "!requirements.txt", "!myapp/"} <= set(ignored)


# -- Kubernetes ------------------------------------------------------------------------------


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [one] = deployment["spec"]["template"]["spec"]["containers"]
    box: dict[str, Any] = one
    return box


def port_of(box: dict[str, Any], name: str) -> int:
    [port] = [p["containerPort"] for p in box["ports"] if p["name"] == name]
    return int(port)


def check_pod(deployment: dict[str, Any]) -> None:
    """Labels select the pods, the pods run as the image's user, the app loads."""
    spec = deployment["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    security = spec["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == image_user()
    env = {e["name"]: e for e in container(deployment)["env"]}
    check_app(env["TASKWARD_APP"]["value"])
    assert env["TASKWARD_DB"]["valueFrom"]["secretKeyRef"]["name"] == "taskward"


def test_the_worker_deployment_probes_its_metrics_port_and_outlasts_its_grace() -> None:
    deployment = documents(KUBE / "worker.yaml")["Deployment"]
    check_pod(deployment)
    pod = deployment["spec"]["template"]
    box = container(deployment)
    command = box["command"]
    assert command[:2] == ["taskward", "worker"]
    grace = float(flag(command, "--grace"))
    assert pod["spec"]["terminationGracePeriodSeconds"] >= grace + STOP_MARGIN
    port = int(flag(command, "--metrics-port"))
    assert flag(command, "--metrics-host") == "0.0.0.0"  # probes come to the pod's address
    assert port_of(box, "metrics") == port
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        assert box[probe]["httpGet"] == {"path": path, "port": "metrics"}
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_serve_deployment_and_its_service() -> None:
    docs = documents(KUBE / "serve.yaml")
    deployment, service = docs["Deployment"], docs["Service"]
    check_pod(deployment)
    box = container(deployment)
    command = box["command"]
    assert command[:2] == ["taskward", "serve"]
    assert "--no-worker" in command
    assert flag(command, "--host") == "0.0.0.0"
    port = int(flag(command, "--port"))
    assert port_of(box, "http") == port
    env = {e["name"]: e for e in box["env"]}
    assert env["TASKWARD_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "api-token"
    for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
        assert box[probe]["httpGet"] == {"path": path, "port": "http"}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_keda_scales_the_worker_deployment_on_a_metric_serve_has() -> None:
    scaled = documents(KUBE / "keda-scaledobject.yaml")["ScaledObject"]
    worker = documents(KUBE / "worker.yaml")["Deployment"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    used = set(re.findall(r"\btaskward_\w+", query))
    assert used == {"taskward_queue_depth"}
    assert used <= metric_names()
    statuses = set(re.findall(r'status="(\w+)"', query))
    assert statuses == {Status.PENDING.value}
    assert float(trigger["metadata"]["threshold"]) > 0


def test_the_migrate_job() -> None:
    job = documents(KUBE / "migrate-job.yaml")["Job"]
    [box] = job["spec"]["template"]["spec"]["containers"]
    assert box["command"] == ["taskward", "migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_metric_names_in_the_docs_exist() -> None:
    known = metric_names()
    for doc in ("observability.md", "deploy.md"):
        text = (ROOT / "docs" / doc).read_text()
        named = set(re.findall(r"\btaskward_[a-z_]+[a-z]", text))
        assert named, doc
        assert named <= known, (doc, named - known)


def test_the_docs_quote_the_files_as_they_are() -> None:
    # Every line of deploy.md's quotes (YAML, ini, Dockerfile; "..." marks a cut) is a line
    # of one of the files, so a number changed in a file cannot stay old in the docs.
    files = [
        path for path in DEPLOY.rglob("*") if path.is_file() and "__pycache__" not in path.parts
    ]
    lines = {line.strip() for path in files for line in path.read_text().splitlines()}
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"^ *```(?:yaml|ini|dockerfile)\n(.*?)^ *```", text, re.M | re.S)
    assert len(blocks) >= 5
    for block in blocks:
        for line in block.splitlines():
            quoted = line.strip()
            if quoted and quoted != "...":
                assert quoted in lines, quoted


# -- systemd ---------------------------------------------------------------------------------


def unit_settings(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] not in "#;"
    )


def test_systemd_verifies_the_unit_and_it_outlasts_the_grace(tmp_path: Path) -> None:
    unit = DEPLOY / "systemd" / "taskward-worker.service"
    text = unit.read_text()
    settings = unit_settings(text)
    command = settings["ExecStart"].split()
    assert command[0] == "/srv/myapp/.venv/bin/taskward"
    assert command[1] == "worker"
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["KillMode"] == "mixed"
    assert settings["Restart"] == "on-failure"
    assert float(settings["TimeoutStopSec"]) >= float(flag(command, "--grace")) + STOP_MARGIN
    check_app(settings["Environment"].removeprefix("TASKWARD_APP="))
    # verify checks that ExecStart's program exists: the same unit, with one that does.
    taskward = shutil.which("taskward", path=str(Path(sys.executable).parent))
    assert taskward is not None
    copy = tmp_path / unit.name
    copy.write_text(text.replace(command[0], taskward))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even for settings it could not parse and ignores: none may be reported.
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# -- the worker, as Kubernetes runs and stops it ---------------------------------------------


@pytest.fixture
def manifest_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """The worker container's command and env from worker.yaml, run here on a SQLite file
    (the metrics port moved to a free one on loopback)."""
    deployment = documents(KUBE / "worker.yaml")["Deployment"]
    box = container(deployment)
    port = free_port()
    command = [
        arg.replace(
            f"--metrics-port={flag(box['command'], '--metrics-port')}", f"--metrics-port={port}"
        ).replace("--metrics-host=0.0.0.0", "--metrics-host=127.0.0.1")
        for arg in box["command"]
    ]
    assert command[0] == "taskward"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKWARD_")}
    env |= {e["name"]: e["value"] for e in box["env"] if "value" in e}
    env |= {"TASKWARD_DB": f"sqlite:///{tmp_path / 'tasks.db'}", "PYTHONPATH": str(DEPLOY)}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskward", *command[1:]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    info = {
        "base": f"http://127.0.0.1:{port}",
        "db": env["TASKWARD_DB"],
        "log": log,
        "grace_period": deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        "live": box["livenessProbe"]["httpGet"]["path"],
        "ready": box["readinessProbe"]["httpGet"]["path"],
    }
    try:
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_manifests_worker_answers_its_probes_and_drains_at_sigterm(
    manifest_worker: tuple[subprocess.Popen[bytes], dict[str, Any]],
) -> None:
    proc, info = manifest_worker
    base = info["base"]

    async def status(client: httpx.AsyncClient, path: str, code: int) -> httpx.Response | None:
        assert proc.poll() is None, info["log"].read_text()
        try:
            response = await client.get(f"{base}{path}")
        except httpx.TransportError:
            return None
        return response if response.status_code == code else None

    app = App(info["db"])
    async with httpx.AsyncClient(timeout=3) as client:
        await eventually(lambda: status(client, info["live"], 200), timeout=20, interval=0.1)
        await eventually(lambda: status(client, info["ready"], 200), timeout=20, interval=0.1)
        try:
            [task] = await app.submit_many([new_task("resize", {"image": "cat.png", "seconds": 2})])
            assert task.id is not None
            await wait_status(app, task.id, Status.RUNNING, timeout=10)
            proc.send_signal(signal.SIGTERM)  # what the kubelet sends to the container's PID 1
            await eventually(lambda: status(client, info["ready"], 503), timeout=5)
            assert proc.wait(info["grace_period"]) == 0
            done = await wait_status(app, task.id, Status.COMPLETED)
            assert (done.attempts, done.result) == (1, "cat.png resized")
        finally:
            await app.close()
    lines = [json.loads(line) for line in info["log"].read_text().splitlines() if line]
    [resizing] = [line for line in lines if line["message"] == "resizing cat.png"]
    assert (resizing["logger"], resizing["task"], resizing["task_id"]) == (
        "myapp",
        "resize",
        str(task.id),
    )
