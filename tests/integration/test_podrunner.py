"""The local pod runner: pods annotated `runner: local` run as real processes on this machine.

Pure parts first (addresses and commands made local), then on the emulated cluster: an
Indexed Job of two pods wired like a TrainingJob attempt trains the reference trainer for
real and completes with checkpoints on disk; exit codes become pod phases; deleting a pod
stops its process (SIGTERM, then SIGKILL after the grace period) and removes the pod at
once; a missing Secret holds a pod until it appears; stopping the runner leaves no process.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster import ClusterInfo, GpuNodePool, add_gpu_nodes, podrunner
from plinth_devcluster.nodes import GPU_RESOURCE
from plinth_devcluster.podrunner import (
    DEFAULT_IMAGES,
    REFERENCE_TRAINER,
    LocalAddresses,
    PodFacts,
    PodRunner,
    local_argv,
)
from plinth_devcluster.waiting import wait_for

INDEX = "batch.kubernetes.io/job-completion-index"
LOCAL = {"devcluster.plinth.dev/runner": "local"}
TRAINER_IMAGE = "ghcr.io/plinth-dev/plinth-trainer:0.1.0"
TRAIN_TIMEOUT = 180


# ---- pure: addresses and commands ---------------------------------------------------------


def facts(name: str, attempt: str, namespace: str = "team") -> PodFacts:
    return PodFacts.parse(
        {
            "metadata": {
                "uid": f"uid-{name}",
                "namespace": namespace,
                "name": name,
                "labels": {"plinth.dev/job-name": "mlp", "plinth.dev/attempt": attempt},
                "annotations": LOCAL,
            },
            "spec": {"subdomain": "mlp", "containers": [{"name": "worker", "image": "x"}]},
        }
    )


def test_pods_of_one_attempt_share_local_ports_and_attempts_do_not() -> None:
    addresses = LocalAddresses()
    contract = {
        "PET_MASTER_ADDR": "mlp-r0-0.mlp.team.svc",
        "PET_MASTER_PORT": "29500",
        "MASTER_PORT": "29500",
        "PET_RDZV_ENDPOINT": "mlp-r0-0.mlp.team.svc:29400",
        "METRICS": "http://plinth.plinth-system.svc.cluster.local:8080/report",
        "PLAIN": "29500",
    }

    first = addresses.localize(facts("mlp-r0-0", "0"), contract)
    second = addresses.localize(facts("mlp-r0-1", "0"), contract)
    retried = addresses.localize(facts("mlp-r1-0", "1"), contract)

    assert first == second
    assert first["PET_MASTER_ADDR"] == "127.0.0.1"
    assert first["PET_MASTER_PORT"] == first["MASTER_PORT"] != "29500"
    host, port = first["PET_RDZV_ENDPOINT"].split(":")
    assert host == "127.0.0.1"
    assert port not in ("29400", first["PET_MASTER_PORT"])
    assert first["METRICS"] == "http://127.0.0.1:8080/report", "other services keep their port"
    served = LocalAddresses({"plinth.plinth-system": 41234}).localize(facts("a", "0"), contract)
    assert served["METRICS"] == "http://127.0.0.1:41234/report"
    assert first["PLAIN"] == "29500"
    assert retried["PET_MASTER_PORT"] not in (first["PET_MASTER_PORT"], "29500")


def test_commands_run_with_this_interpreter_and_images_map_to_local_files() -> None:
    environment = {"STEPS": "7"}

    entrypoint = local_argv(
        {"image": TRAINER_IMAGE, "args": ["--steps", "$(STEPS)", "$$(STEPS)"]},
        environment,
        DEFAULT_IMAGES,
    )
    torchrun = local_argv(
        {"image": "any", "command": ["torchrun", "/opt/plinth/train.py"]},
        environment,
        DEFAULT_IMAGES,
    )
    python = local_argv({"image": "any", "command": ["/usr/bin/python3.12", "-V"]}, {}, {})

    assert entrypoint == [
        sys.executable,
        "-m",
        "plinth_client.launch",
        str(REFERENCE_TRAINER),
        "--steps",
        "7",
        "$(STEPS)",
    ]
    assert torchrun == [sys.executable, "-m", "torch.distributed.run", "/opt/plinth/train.py"]
    assert python == [sys.executable, "-V"]


# ---- on the emulated cluster --------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def pod_runner(cluster: ClusterInfo, namespace: str, tmp_path: Path) -> Iterator[PodRunner]:
    """A runner for the test's namespace; afterwards, none of its processes may be left."""
    with podrunner.running(cluster.kubeconfig, tmp_path / "pods", namespace=namespace) as runner:
        yield runner
    assert not [p.pid for p in runner.started() if process_alive(p.pid)]


def field_ref(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def trainer_env(namespace: str, checkpoints: Path) -> list[dict[str, Any]]:
    """The environment a TrainingJob `mlp` renders for attempt 0 of 2 nodes x 1 process."""
    master = f"mlp-r0-0.mlp.{namespace}.svc"
    rank = field_ref(f"metadata.annotations['{INDEX}']")
    plain = {
        "PLINTH_CHECKPOINT_URI": f"file://{checkpoints}",
        "PET_NNODES": "2",
        "PET_NPROC_PER_NODE": "1",
        "PET_MASTER_ADDR": master,
        "PET_MASTER_PORT": "29500",
        "MASTER_ADDR": master,
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "2",
    }
    return [
        {"name": "PLINTH_JOB_NAME", **field_ref("metadata.labels['plinth.dev/job-name']")},
        {"name": "PLINTH_NAMESPACE", **field_ref("metadata.namespace")},
        {"name": "PET_NODE_RANK", **rank},
        {"name": "RANK", **rank},
        *({"name": name, "value": value} for name, value in plain.items()),
        {
            "name": "PLINTH_METRICS_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "mlp-token", "key": "token"}},
        },
        {
            "name": "TRAIN_STEPS",
            "valueFrom": {"configMapKeyRef": {"name": "mlp-settings", "key": "steps"}},
        },
    ]


def trainer_job(namespace: str, checkpoints: Path) -> dict[str, Any]:
    """Attempt 0 of TrainingJob `mlp` as Plinth builds it: an Indexed Job of 2 local pods."""
    labels = {"plinth.dev/job-name": "mlp", "plinth.dev/attempt": "0", "plinth.dev/role": "worker"}
    container = {
        "name": "worker",
        "image": TRAINER_IMAGE,
        "args": ["--checkpoint-every", "3", "--report-every", "3", "--dist-timeout", "60"],
        "env": trainer_env(namespace, checkpoints),
        "resources": {"limits": {GPU_RESOURCE: "1"}},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "mlp-r0", "labels": labels},
        "spec": {
            "completions": 2,
            "parallelism": 2,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels, "annotations": LOCAL},
                "spec": {
                    "restartPolicy": "Never",
                    "subdomain": "mlp",
                    "containers": [container],
                },
            },
        },
    }


def create_settings(core: client.CoreV1Api, namespace: str) -> None:
    token = base64.b64encode(b"s3cret").decode()
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="mlp-token"), data={"token": token}),
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="mlp-settings"), data={"steps": "6"}),
    )


def job_complete(batch: client.BatchV1Api, namespace: str, name: str) -> bool:
    status = batch.read_namespaced_job_status(name, namespace).status
    conditions = {c.type: c.status for c in status.conditions or []}
    if conditions.get("Failed") == "True":
        raise AssertionError(f"Job {name} failed: {status}")
    return conditions.get("Complete") == "True"


def test_indexed_job_of_two_local_pods_trains_and_completes(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner, tmp_path: Path
) -> None:
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    checkpoints = tmp_path / "checkpoints"
    create_settings(core, namespace)
    batch.create_namespaced_job(namespace, trainer_job(namespace, checkpoints))

    def logs() -> str:
        return "\n".join(pod_runner.log_text(namespace, p.name) for p in pod_runner.started())

    try:
        wait_for(
            lambda: job_complete(batch, namespace, "mlp-r0"),
            what="the training Job to complete",
            timeout=TRAIN_TIMEOUT,
        )
    except Exception as error:
        raise AssertionError(f"{error}\n{logs()}") from error

    pods = core.list_namespaced_pod(namespace, label_selector="plinth.dev/job-name=mlp").items
    assert [p.status.phase for p in pods] == ["Succeeded", "Succeeded"]
    for pod in pods:
        (status,) = pod.status.container_statuses
        assert (status.state.terminated.exit_code, status.state.terminated.reason) == (
            0,
            "Completed",
        )
        assert pod.status.pod_ip.startswith("127.") and pod.status.pod_ip != "127.0.0.1"
    assert {"step-3.pt", "step-6.pt"} <= {p.name for p in checkpoints.iterdir()}

    started = {p.environment["PET_NODE_RANK"]: p for p in pod_runner.started(namespace)}
    assert set(started) == {"0", "1"}
    ports = {p.environment["PET_MASTER_PORT"] for p in started.values()}
    assert len(ports) == 1
    assert ports != {"29500"}
    for pod_started in started.values():
        env = pod_started.environment
        assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "127.0.0.1"
        assert env["MASTER_PORT"] == env["PET_MASTER_PORT"]
        assert (env["PLINTH_JOB_NAME"], env["PLINTH_NAMESPACE"]) == ("mlp", namespace)
        assert (env["PLINTH_METRICS_TOKEN"], env["TRAIN_STEPS"]) == ("s3cret", "6")
        assert pod_started.argv[:4] == (
            sys.executable,
            "-m",
            "plinth_client.launch",
            str(REFERENCE_TRAINER),
        )
    rank_zero_log = pod_runner.log_text(namespace, started["0"].name)
    assert "saved checkpoint step-6.pt" in rank_zero_log
    assert "final loss" in rank_zero_log


def local_pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": LOCAL},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "worker", "image": "registry.example/tool:1", "command": command}
            ],
            **spec,
        },
    }


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod | None:
    try:
        return core.read_namespaced_pod(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def wait_phase(core: client.CoreV1Api, namespace: str, name: str, phase: str) -> client.V1Pod:
    found: list[client.V1Pod] = []

    def reached() -> bool:
        pod = read_pod(core, namespace, name)
        found[:] = [pod] if pod else []
        return pod is not None and pod.status.phase == phase

    wait_for(reached, what=f"pod {name} to be {phase}", timeout=60)
    return found[0]


def test_exit_code_of_the_process_becomes_the_pods(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    command = ["python3", "-c", "import sys; print('bad config'); sys.exit(3)"]
    core.create_namespaced_pod(namespace, local_pod("exit-three", command))

    pod = wait_phase(core, namespace, "exit-three", "Failed")

    (status,) = pod.status.container_statuses
    assert (status.state.terminated.exit_code, status.state.terminated.reason) == (3, "Error")
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
    assert "bad config" in pod_runner.log_text(namespace, "exit-three")


SLEEPER = """
import os, signal, sys, time
def on_term(*_):
    print("got SIGTERM", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if sys.argv[1] == "ignore" else on_term)
print("pid", os.getpid(), flush=True)
while True:
    time.sleep(1)
"""


def started_pid(runner: PodRunner, namespace: str, name: str) -> int:
    """The pid the pod's process printed (its own, not a launcher's)."""
    found: list[int] = []

    def printed() -> bool:
        lines = [ln for ln in runner.log_text(namespace, name).splitlines() if ln.startswith("pid")]
        found[:] = [int(lines[0].split()[1])] if lines else []
        return bool(found)

    wait_for(printed, what=f"the process of {name} to start", timeout=30)
    return found[0]


@pytest.mark.parametrize(("on_sigterm", "grace"), [("exit", 30), ("ignore", 2)])
def test_deleting_a_running_pod_stops_its_process_and_removes_the_pod(
    api_client: client.ApiClient,
    namespace: str,
    pod_runner: PodRunner,
    on_sigterm: str,
    grace: int,
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        namespace, local_pod("sleeper", ["python", "-c", SLEEPER, on_sigterm])
    )
    wait_phase(core, namespace, "sleeper", "Running")
    pid = started_pid(pod_runner, namespace, "sleeper")

    core.delete_namespaced_pod("sleeper", namespace, grace_period_seconds=grace)
    deleted = time.monotonic()
    wait_for(
        lambda: read_pod(core, namespace, "sleeper") is None,
        what="the pod to be removed",
        timeout=20,
    )

    took = time.monotonic() - deleted
    assert not process_alive(pid)
    if on_sigterm == "exit":
        assert "got SIGTERM" in pod_runner.log_text(namespace, "sleeper")
        assert took < grace, "removed as soon as the process exited"
    else:
        assert took >= grace - 0.5, "SIGKILL only after the grace period"


def test_missing_secret_holds_the_pod_until_it_exists(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    pod = local_pod("needs-secret", ["python", "-c", "import os; print(os.environ['TOKEN'])"])
    secret_ref = {"secretKeyRef": {"name": "late", "key": "token"}}
    pod["spec"]["containers"][0]["env"] = [{"name": "TOKEN", "valueFrom": secret_ref}]
    core.create_namespaced_pod(namespace, pod)

    def waiting_reason() -> str | None:
        found = read_pod(core, namespace, "needs-secret")
        statuses = found.status.container_statuses if found else None
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting else None

    wait_for(
        lambda: waiting_reason() == "CreateContainerConfigError",
        what="CreateContainerConfigError",
        timeout=30,
    )
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="late"),
            data={"token": base64.b64encode(b"arrived").decode()},
        ),
    )

    wait_phase(core, namespace, "needs-secret", "Succeeded")
    assert "arrived" in pod_runner.log_text(namespace, "needs-secret")


def test_stopping_the_runner_kills_its_processes_and_leaves_the_pods(
    cluster: ClusterInfo, api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, local_pod("left", ["python", "-c", SLEEPER, "ignore"]))

    with podrunner.running(
        cluster.kubeconfig, tmp_path, namespace=namespace, stop_grace_seconds=1
    ) as runner:
        wait_phase(core, namespace, "left", "Running")
        pid = started_pid(runner, namespace, "left")
        assert process_alive(pid)

    assert not process_alive(pid)
    pod = read_pod(core, namespace, "left")
    assert pod is not None
    assert pod.status.phase == "Running", "a kubelet that goes away reports nothing"
    assert os.path.exists(tmp_path / namespace / "left.log")


def test_a_pod_that_fits_no_node_is_never_run(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    too_big = local_pod("too-big", ["python", "-c", "print('ran')"])
    too_big["spec"]["containers"][0]["resources"] = {"limits": {GPU_RESOURCE: "9"}}
    core.create_namespaced_pod(namespace, too_big)
    core.create_namespaced_pod(namespace, local_pod("fits", ["python", "-c", "print('ran')"]))

    wait_phase(core, namespace, "fits", "Succeeded")

    pod = read_pod(core, namespace, "too-big")
    assert pod is not None
    assert (pod.status.phase, pod.spec.node_name) == ("Pending", None)
    assert [p.name for p in pod_runner.started(namespace)] == ["fits"]


def test_deleting_the_node_kills_the_process_and_reports_nothing(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    pool = GpuNodePool(count=1, name_prefix=f"lost-{secrets.token_hex(3)}", taint=True)
    add_gpu_nodes(api_client, pool, timeout=60)
    (node,) = pool.node_names()
    placement = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}],
    }
    command = ["python", "-c", SLEEPER, "exit"]
    core.create_namespaced_pod(namespace, local_pod("on-lost-node", command, **placement))
    wait_phase(core, namespace, "on-lost-node", "Running")
    pid = started_pid(pod_runner, namespace, "on-lost-node")

    core.delete_node(node)

    wait_for(lambda: not process_alive(pid), what="the process to die with its node", timeout=20)
    pod = read_pod(core, namespace, "on-lost-node")
    assert pod is not None
    assert pod.status.phase == "Running", "no kubelet is left to report (until the pod GC)"
    assert "got SIGTERM" not in pod_runner.log_text(namespace, "on-lost-node"), "SIGKILL"


# ---- as a kubelet: init containers, volumes, pod IPs, probes, restarts ---------------------

SERVE = [
    "python",
    "-c",
    "import http.server, functools, os; "
    "handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='/work'); "
    "http.server.HTTPServer((os.environ['POD_IP'], 8080), handler).serve_forever()",
]


def served_pod(name: str, init_command: list[str]) -> dict[str, Any]:
    """A pod whose init container writes into an emptyDir the container then serves, ready
    once /work/ready.txt is served at its pod IP."""
    pod = local_pod(
        name,
        SERVE,
        restartPolicy="Always",
        volumes=[{"name": "work", "emptyDir": {}}],
        initContainers=[
            {
                "name": "prepare",
                "image": "registry.example/tool:1",
                "command": init_command,
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            }
        ],
    )
    container = pod["spec"]["containers"][0]
    container["env"] = [{"name": "POD_IP", **field_ref("status.podIP")}]
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    container["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    container["readinessProbe"] = {
        "httpGet": {"path": "/ready.txt", "port": "http"},
        "periodSeconds": 1,
    }
    return pod


def test_init_containers_prepare_a_volume_and_readiness_follows_the_probe(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    write = ["python", "-c", "open('/work/ready.txt', 'w').write('ok')"]
    core.create_namespaced_pod(namespace, served_pod("served", write))

    def ready() -> bool:
        pod = read_pod(core, namespace, "served")
        conditions = {c.type: c.status for c in (pod.status.conditions or [])} if pod else {}
        return conditions.get("Ready") == "True"

    wait_for(ready, what="the pod Ready by its readiness probe", timeout=60)
    pod = read_pod(core, namespace, "served")
    assert pod is not None
    assert pod.status.pod_ip.startswith("127.") and pod.status.pod_ip != "127.0.0.1"
    (init,) = pod.status.init_container_statuses
    assert init.state.terminated.exit_code == 0
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:8080/ready.txt", timeout=5) as answer:
        assert answer.read() == b"ok"


def test_a_failing_init_container_is_retried_with_its_last_line_reported(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    fail = [
        "python",
        "-c",
        "print('fetching'); raise SystemExit('cannot fetch the model: HTTP 404')",
    ]
    core.create_namespaced_pod(namespace, served_pod("unfetched", fail))

    def reported() -> bool:
        pod = read_pod(core, namespace, "unfetched")
        statuses = (pod.status.init_container_statuses or []) if pod else []
        return bool(statuses) and statuses[0].restart_count >= 1

    wait_for(reported, what="the init container retried", timeout=60)
    pod = read_pod(core, namespace, "unfetched")
    assert pod is not None and pod.status.phase == "Pending"
    (init,) = pod.status.init_container_statuses
    assert init.last_state.terminated.exit_code == 1
    assert init.last_state.terminated.message == "cannot fetch the model: HTTP 404"


def test_a_failing_liveness_probe_restarts_the_container(
    api_client: client.ApiClient, namespace: str, pod_runner: PodRunner
) -> None:
    core = client.CoreV1Api(api_client)
    pod = local_pod(
        "deaf", ["python", "-c", "import time; time.sleep(600)"], restartPolicy="Always"
    )
    container = pod["spec"]["containers"][0]
    container["ports"] = [{"containerPort": 8080}]
    container["livenessProbe"] = {
        "tcpSocket": {"port": 8080},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    core.create_namespaced_pod(namespace, pod)

    def restarted() -> bool:
        found = read_pod(core, namespace, "deaf")
        statuses = (found.status.container_statuses or []) if found else []
        return bool(statuses) and statuses[0].restart_count >= 1

    wait_for(restarted, what="the container restarted by its liveness probe", timeout=60)
    found = read_pod(core, namespace, "deaf")
    assert found is not None and found.status.phase == "Running"
    assert (
        "Liveness probe failed" in found.status.container_statuses[0].last_state.terminated.message
    )
