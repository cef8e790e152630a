"""The operator process against the emulated cluster: every example is Accepted, observably."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.runtime.operator import MIN_RECONCILE_INTERVAL, REPORT_BATCH_SECONDS
from plinth_devcluster import ClusterInfo, podrunner
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    EXAMPLES_DIR,
    OperatorProcess,
    condition,
    events_of,
    http_get,
    kubectl,
    kubectl_json,
)

EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.yaml"))
#: 3x the longest of the operator's short waits (the 1 s per-object minimum interval, the
#: planner's 1-2 s rechecks of a job in transition, the 2 s report batching).
SETTLED_WATCH_SECONDS = 3 * max(MIN_RECONCILE_INTERVAL, REPORT_BATCH_SECONDS, 2.0)


def event_count(cluster: ClusterInfo, namespace: str, name: str) -> int:
    """How many Events are recorded on the object called `name`."""
    events = kubectl_json(
        cluster, "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}"
    )
    return len(events["items"])


def resources_in(path: Path) -> list[tuple[str, str]]:
    """(kind, name) of every Plinth resource in an example file."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [
        (d["kind"], d["metadata"]["name"]) for d in documents if "plinth.dev/" in d["apiVersion"]
    ]


def is_accepted(obj: dict[str, Any]) -> bool:
    accepted = condition(obj, "Accepted")
    generation = obj["metadata"]["generation"]
    return (
        accepted is not None
        and accepted["status"] == "True"
        and accepted["observedGeneration"] == generation
        and obj["status"].get("observedGeneration") == generation
    )


def get(cluster: ClusterInfo, namespace: str, kind: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl_json(cluster, "-n", namespace, "get", kind, name)
    return result


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_is_applied_and_accepted(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str, example: Path
) -> None:
    kubectl(cluster, "-n", namespace, "apply", "-f", str(example))
    for kind, name in resources_in(example):
        wait_for(
            lambda kind=kind, name=name: is_accepted(get(cluster, namespace, kind, name)),
            what=f"{kind}/{name} Accepted",
            timeout=30,
        )
        listing = kubectl(cluster, "-n", namespace, "get", kind, name).stdout
        assert "PHASE" in listing.splitlines()[0]


def test_settled_objects_are_left_alone_no_hot_loop(
    operator: OperatorProcess,
    cluster: ClusterInfo,
    namespace: str,
    pod_runner: podrunner.PodRunner,  # mlp-single trains for real
) -> None:
    for example in ("trainingjob-single-node.yaml", "modeldeployment-triton.yaml"):
        kubectl(cluster, "-n", namespace, "apply", "-f", str(EXAMPLES_DIR / example))
    wait_for(
        lambda: (
            get(cluster, namespace, "trainingjob", "mlp-single").get("status", {}).get("phase")
            == "Succeeded"
        ),
        what="the TrainingJob Succeeded",
        timeout=180,
    )
    (deployment,) = resources_in(EXAMPLES_DIR / "modeldeployment-triton.yaml")
    settled = [("trainingjob", "mlp-single"), deployment]
    wait_for(
        lambda: (
            is_accepted(md := get(cluster, namespace, *deployment))
            and md["status"].get("phase") == "Ready"
        ),
        what="the ModelDeployment Accepted and Ready (its replicas are kwok's)",
        timeout=60,
    )
    versions = [get(cluster, namespace, *ref)["metadata"]["resourceVersion"] for ref in settled]
    events = [event_count(cluster, namespace, name) for _kind, name in settled]
    # Longer than every short recheck a plan asks for and the per-object minimum interval:
    # a loop that rewrites a settled object would show within this window.
    time.sleep(SETTLED_WATCH_SECONDS)
    assert [
        get(cluster, namespace, *ref)["metadata"]["resourceVersion"] for ref in settled
    ] == versions
    assert [event_count(cluster, namespace, name) for _kind, name in settled] == events


def test_spec_change_is_observed_with_the_new_generation(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    example = EXAMPLES_DIR / "trainingjob-single-node.yaml"
    kubectl(cluster, "-n", namespace, "apply", "-f", str(example))
    kind, name = resources_in(example)[0]
    wait_for(lambda: is_accepted(get(cluster, namespace, kind, name)), what="Accepted", timeout=30)
    first = get(cluster, namespace, kind, name)
    transition = condition(first, "Accepted")["lastTransitionTime"]  # type: ignore[index]
    kubectl(
        cluster,
        "-n",
        namespace,
        "label",
        kind,
        name,
        "team=vision",
        "--overwrite",
    )
    kubectl(
        cluster,
        "-n",
        namespace,
        "patch",
        kind,
        name,
        "--type=merge",
        "-p",
        '{"spec": {"activeDeadlineSeconds": 7200}}',
    )
    wait_for(
        lambda: (
            get(cluster, namespace, kind, name)["status"]["observedGeneration"]
            == first["metadata"]["generation"] + 1
        ),
        what="the new generation observed",
        timeout=30,
    )
    after = get(cluster, namespace, kind, name)
    assert is_accepted(after)
    assert condition(after, "Accepted")["lastTransitionTime"] == transition  # type: ignore[index]


def test_accepted_transition_is_an_event(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    example = EXAMPLES_DIR / "trainingjob-single-node.yaml"
    kubectl(cluster, "-n", namespace, "apply", "-f", str(example))
    _kind, name = resources_in(example)[0]

    def accepted_events() -> list[dict[str, Any]]:
        events = events_of(cluster, namespace, name)
        return [e for e in events if "Accepted=True: " in e["message"]]

    wait_for(lambda: bool(accepted_events()), what="an Event recording Accepted=True", timeout=30)
    (event,) = accepted_events()
    # the transitions of one status update share a Normal Event, named after the last
    # (Created at least: the status is first written once the attempt's Job exists)
    assert event["type"] == "Normal"
    assert "Created=True: Attempt 0 is Job" in event["message"]


def test_probes_and_metrics(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    kubectl(
        cluster, "-n", namespace, "apply", "-f", str(EXAMPLES_DIR / "trainingjob-single-node.yaml")
    )
    assert http_get(operator.url("/healthz"))[0] == 200
    assert http_get(operator.url("/readyz"))[0] == 200

    def counted() -> bool:
        # The series exists at 0 from start; a reconcile makes it count.
        ok = 'plinth_reconciles_total{kind="TrainingJob",result="ok"} '
        body = http_get(operator.url("/metrics"))[1]
        return any(float(line[len(ok) :]) >= 1 for line in body.splitlines() if line.startswith(ok))

    wait_for(counted, what="TrainingJob reconciles in /metrics", timeout=30)
    body = http_get(operator.url("/metrics"))[1]
    assert 'plinth_reconcile_duration_seconds_bucket{kind="TrainingJob"' in body
    # a reconcile plans and renders on its own thread: its CPU time is counted
    cpu = 'plinth_reconcile_cpu_seconds_total{kind="TrainingJob"} '
    (line,) = [line for line in body.splitlines() if line.startswith(cpu)]
    assert float(line[len(cpu) :]) > 0
