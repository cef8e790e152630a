"""kwok's pod stages, driven by `devcluster.plinth.dev/*` annotations, as a Job sees them.

On the emulated cluster (real Job controller, scheduler and pod garbage collector; kwok as
the kubelet): a Job's pod runs for `run-seconds`, or forever; `exit-code` fails it with that
code, optionally for one completion index only, and a podFailurePolicy reacts to it; pods for
the local pod runner are left alone; and a node deleted under running pods, which is how
Plinth will see preemption and node loss.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from plinth_devcluster import GpuNodePool, add_gpu_nodes
from plinth_devcluster.nodes import GPU_RESOURCE, GPU_TAINT
from plinth_devcluster.waiting import wait_for

pytestmark = pytest.mark.cluster

ANNOTATION = "devcluster.plinth.dev/"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
GC_TIMEOUT = 150  # the pod garbage collector waits 40 s, checking every 20 s


def job_manifest(
    name: str,
    annotations: dict[str, str] | None = None,
    *,
    completions: int = 1,
    spec: dict[str, Any] | None = None,
    pod_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An Indexed Job of `completions` parallel one-GPU pods, never restarted in place."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": completions,
            "completionMode": "Indexed",
            **(spec or {}),
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "worker",
                            "image": "registry.example/trainer:1",
                            "resources": {"limits": {GPU_RESOURCE: "1"}},
                        }
                    ],
                    **(pod_spec or {}),
                },
            },
        },
    }


def create_job(api: client.ApiClient, namespace: str, manifest: dict[str, Any]) -> None:
    client.BatchV1Api(api).create_namespaced_job(namespace, manifest)


def job_pods(api: client.ApiClient, namespace: str, job: str) -> list[client.V1Pod]:
    """The Job's pods, ordered by completion index."""
    pods = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job}")
        .items
    )
    return sorted(pods, key=lambda pod: int(pod.metadata.annotations[INDEX_ANNOTATION]))


def wait_pod_phases(
    api: client.ApiClient, namespace: str, job: str, phases: list[str], timeout: float = 60
) -> list[client.V1Pod]:
    """Wait until the Job's pods (by index) are in `phases`; return them."""
    found: list[client.V1Pod] = []

    def reached() -> bool:
        found[:] = job_pods(api, namespace, job)
        return [pod.status.phase for pod in found] == phases

    wait_for(reached, what=f"pods of Job {job} to be {phases}", timeout=timeout)
    return found


def job_condition(api: client.ApiClient, namespace: str, job: str, kind: str) -> Any:
    """The Job's condition of type `kind` when it is True, else None."""
    status = client.BatchV1Api(api).read_namespaced_job_status(job, namespace).status
    for condition in status.conditions or []:
        if condition.type == kind and condition.status == "True":
            return condition
    return None


def wait_job_condition(
    api: client.ApiClient, namespace: str, job: str, kind: str, timeout: float = 60
) -> Any:
    found: list[Any] = []

    def reached() -> bool:
        found[:] = [job_condition(api, namespace, job, kind)]
        return found[0] is not None

    wait_for(reached, what=f"Job {job} to be {kind}", timeout=timeout)
    return found[0]


def terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    (status,) = pod.status.container_statuses
    assert status.state.terminated is not None, status
    return status.state.terminated


def seconds_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def test_job_pod_runs_for_run_seconds_then_succeeds(
    api_client: client.ApiClient, namespace: str
) -> None:
    create_job(api_client, namespace, job_manifest("three", {f"{ANNOTATION}run-seconds": "3"}))

    (running,) = wait_pod_phases(api_client, namespace, "three", ["Running"])
    seen_running = time.monotonic()
    (done,) = wait_pod_phases(api_client, namespace, "three", ["Succeeded"], timeout=30)
    seen_done = time.monotonic()

    assert {c.type: c.status for c in running.status.conditions}["Ready"] == "True"
    state = terminated(done)
    assert (state.exit_code, state.reason) == (0, "Completed")
    # Timestamps have one-second resolution: a 3 s run spans 3 to 5 of them.
    assert 3 <= seconds_between(state.started_at, state.finished_at) <= 5
    assert seen_done - seen_running >= 2
    wait_job_condition(api_client, namespace, "three", "Complete")


def test_run_forever_pod_stays_running_while_others_finish(
    api_client: client.ApiClient, namespace: str
) -> None:
    create_job(api_client, namespace, job_manifest("forever", {f"{ANNOTATION}run-forever": "true"}))
    create_job(api_client, namespace, job_manifest("witness", {f"{ANNOTATION}run-seconds": "3"}))
    create_job(api_client, namespace, job_manifest("plain"))

    wait_job_condition(api_client, namespace, "plain", "Complete")
    wait_job_condition(api_client, namespace, "witness", "Complete")

    (forever,) = job_pods(api_client, namespace, "forever")
    assert forever.status.phase == "Running"
    (status,) = forever.status.container_statuses
    assert status.state.running is not None
    assert job_condition(api_client, namespace, "forever", "Complete") is None


def test_exit_code_fails_the_pod_and_a_fail_job_rule_fails_the_job(
    api_client: client.ApiClient, namespace: str
) -> None:
    policy = {
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]
        },
    }
    annotations = {f"{ANNOTATION}exit-code": "3", f"{ANNOTATION}run-seconds": "1"}
    create_job(api_client, namespace, job_manifest("bad-config", annotations, spec=policy))

    failed = wait_job_condition(api_client, namespace, "bad-config", "Failed")

    assert failed.reason == "PodFailurePolicy"
    assert "exit code 3" in failed.message
    (pod,) = job_pods(api_client, namespace, "bad-config")
    assert pod.status.phase == "Failed"
    state = terminated(pod)
    assert (state.exit_code, state.reason) == (3, "Error")
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"


def test_fail_index_fails_only_that_completion_index(
    api_client: client.ApiClient, namespace: str
) -> None:
    annotations = {f"{ANNOTATION}exit-code": "42", f"{ANNOTATION}fail-index": "1"}
    per_index = {"backoffLimitPerIndex": 0, "maxFailedIndexes": 1}
    create_job(
        api_client, namespace, job_manifest("one-bad", annotations, completions=2, spec=per_index)
    )

    first, second = wait_pod_phases(api_client, namespace, "one-bad", ["Succeeded", "Failed"])

    assert terminated(first).exit_code == 0
    assert terminated(second).exit_code == 42
    wait_job_condition(api_client, namespace, "one-bad", "Failed")
    status = client.BatchV1Api(api_client).read_namespaced_job_status("one-bad", namespace).status
    assert (status.completed_indexes, status.failed_indexes) == ("0", "1")


def test_kwok_leaves_local_runner_pods_alone_but_reaps_them_after_their_grace_period(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    create_job(api_client, namespace, job_manifest("local", {f"{ANNOTATION}runner": "local"}))
    create_job(api_client, namespace, job_manifest("witness", {f"{ANNOTATION}run-seconds": "2"}))

    wait_job_condition(api_client, namespace, "witness", "Complete")

    (pod,) = job_pods(api_client, namespace, "local")
    assert pod.spec.node_name, "the scheduler still binds it"
    assert pod.status.phase == "Pending"
    assert not pod.status.container_statuses
    name = pod.metadata.name
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=1)
    deleted = time.monotonic()

    def pod_gone() -> bool:
        try:
            core.read_namespaced_pod(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    wait_for(pod_gone, what=f"kwok to reap {name}", timeout=30)
    assert time.monotonic() - deleted >= 4, "reaped only after deletionTimestamp + 5 s"


class PodHistory:
    """Every state of a namespace's pods seen by a watch, recorded in a background thread."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._watch = watch.Watch()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._thread = threading.Thread(target=self._record, name="pod-history", daemon=True)

    def _record(self) -> None:
        version = self._core.list_namespaced_pod(self._namespace).metadata.resource_version
        while not self._stopping.is_set():
            stream = self._watch.stream(
                self._core.list_namespaced_pod,
                self._namespace,
                resource_version=version,
                timeout_seconds=2,
            )
            for event in stream:
                raw = event["raw_object"]
                version = raw["metadata"]["resourceVersion"]
                with self._lock:
                    self.events.append((event["type"], raw))

    def states(self, predicate: Callable[[dict[str, Any]], bool]) -> list[tuple[str, Any]]:
        with self._lock:
            return [(kind, pod) for kind, pod in self.events if predicate(pod)]

    @contextmanager
    def recording(self) -> Iterator[PodHistory]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stopping.set()
            self._thread.join(timeout=10)


def condition_of(pod: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = pod.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def on_node(node: str) -> dict[str, Any]:
    """Pod spec fields that place a pod on `node` (and only there)."""
    return {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
    }


def test_deleting_a_node_fails_its_pods_with_disruption_target_and_jobs_see_it(
    api_client: client.ApiClient, namespace: str
) -> None:
    """Findings: the pod garbage collector (not kwok) handles pods of a deleted node.

    After its 40 s quarantine it patches each such pod to phase Failed with condition
    DisruptionTarget=True (reason DeletionByPodGC) and force-deletes it; the containers keep
    their last (running) state. So a Job's podFailurePolicy sees node loss through
    onPodConditions DisruptionTarget: FailJob fails the Job with reason PodFailurePolicy,
    Ignore replaces the pod without counting a failure, and with no policy it counts
    against backoffLimit like any other failure.
    """
    pool = GpuNodePool(count=1, name_prefix=f"doomed-{secrets.token_hex(3)}", taint=True)
    add_gpu_nodes(api_client, pool, timeout=60)
    (node,) = pool.node_names()
    forever = {f"{ANNOTATION}run-forever": "true"}
    disrupted = [{"type": "DisruptionTarget"}]
    policies = {
        "fail-job": {"rules": [{"action": "FailJob", "onPodConditions": disrupted}]},
        "ignore": {"rules": [{"action": "Ignore", "onPodConditions": disrupted}]},
    }
    for name, policy in policies.items():
        spec = {"backoffLimit": 3, "podFailurePolicy": policy}
        create_job(
            api_client, namespace, job_manifest(name, forever, spec=spec, pod_spec=on_node(node))
        )
    create_job(
        api_client,
        namespace,
        job_manifest("no-policy", forever, spec={"backoffLimit": 3}, pod_spec=on_node(node)),
    )
    for job in ("fail-job", "ignore", "no-policy"):
        wait_pod_phases(api_client, namespace, job, ["Running"])

    with PodHistory(api_client, namespace).recording() as history:
        client.CoreV1Api(api_client).delete_node(node)
        failed = wait_job_condition(api_client, namespace, "fail-job", "Failed", GC_TIMEOUT)

        def replaced(job: str) -> bool:
            return len(job_pods(api_client, namespace, job)) == 1 and any(
                pod.status.phase == "Pending" for pod in job_pods(api_client, namespace, job)
            )

        for job in ("ignore", "no-policy"):
            wait_for(lambda job=job: replaced(job), what=f"{job} to replace its pod", timeout=60)

    assert failed.reason == "PodFailurePolicy"
    assert "DisruptionTarget" in failed.message
    batch = client.BatchV1Api(api_client)
    assert batch.read_namespaced_job_status("ignore", namespace).status.failed in (None, 0)
    assert batch.read_namespaced_job_status("no-policy", namespace).status.failed == 1

    def was_on_node(pod: dict[str, Any]) -> bool:
        return pod["spec"].get("nodeName") == node

    marked = [
        pod for _, pod in history.states(was_on_node) if pod["status"].get("phase") == "Failed"
    ]
    assert {pod["metadata"]["labels"][JOB_NAME_LABEL] for pod in marked} == set(policies) | {
        "no-policy"
    }
    for pod in marked:
        disruption = condition_of(pod, "DisruptionTarget")
        assert disruption is not None
        assert (disruption["status"], disruption["reason"]) == ("True", "DeletionByPodGC")
        (container,) = pod["status"]["containerStatuses"]
        assert "running" in container["state"], "the last state kwok reported stays"
    deletions = {kind for kind, _ in history.states(was_on_node)}
    assert "DELETED" in deletions
