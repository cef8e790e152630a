"""TrainingJob through the shared reconcile runtime against a real API server.

Objects in (a TrainingJob, sometimes children left by a crash or by Plinth 0.1), one
`Reconciler.reconcile` per step, objects, status and Events out. The jobs here ask for a GPU
model the emulated cluster does not have, so their workers stay Pending and the only
writers of a Job besides Plinth (the Job controller counting pods) settle quickly.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import yaml

import plinth.runtime.reconciler as reconciler_module
from plinth.api.wellknown import (
    LABEL_ROLE,
    LABEL_TRAININGJOB,
    LEGACY_LABEL_JOB_NAME,
    ROLE_WORKER,
    Manifest,
)
from plinth.builders.trainingjob import PLACEHOLDER_METRICS_BASE_URL, render_trainingjob
from plinth.runtime.reconciler import RESYNC_SECONDS
from plinth.runtime.store import Snapshot
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import EXAMPLES_DIR
from tests.support.factories import TrainingJobFactory, a_trainingjob
from tests.support.reconcile import (
    METRICS_BASE_URL,
    OperatorKilledError,
    ReconcileRig,
    condition,
)

TJ = "TrainingJob"
#: A PersistentVolumeClaim that exists but is never bound (no PersistentVolume, no storage
#: class): Plinth admits the gang and creates it, and the scheduler never places a worker.
UNBOUND_CLAIM = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "unbound"},
    "spec": {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "",
        "resources": {"requests": {"storage": "1Gi"}},
    },
}
UNBOUND_VOLUME = {"name": "data", "persistentVolumeClaim": {"claimName": "unbound"}}
#: (apiVersion, kind) of each child, and its name for a TrainingJob `name`.
CHILDREN = {
    ("v1", "Service"): "{name}",
    ("v1", "Secret"): "{name}-metrics-token",
    ("batch/v1", "Job"): "{name}-r0",
}


def unplaceable(name: str) -> TrainingJobFactory:
    """A CPU gang (no GPU admission: it never waits for GPUs other tests' pods hold on the
    shared cluster) whose workers the scheduler never places."""
    return a_trainingjob().named(name).on_cpu(1, "1Gi").with_pod_template(volumes=[UNBOUND_VOLUME])


def create_unplaceable(rig: ReconcileRig, name: str) -> Manifest:
    """A TrainingJob whose gang is admitted and created but never placed (its claim stays
    unbound), in the rig's namespace with its claim."""
    if not rig.objects("v1", "PersistentVolumeClaim"):
        rig.create(UNBOUND_CLAIM)
    return rig.create(unplaceable(name).body())


def owned(rig: ReconcileRig, api_version: str, kind: str, name: str) -> list[Manifest]:
    return rig.objects(api_version, kind, label_selector=f"{LABEL_TRAININGJOB}={name}")


def child_names(rig: ReconcileRig, name: str) -> dict[str, list[str]]:
    """The names of the TrainingJob's children, by kind."""
    return {
        kind: sorted(c["metadata"]["name"] for c in owned(rig, api_version, kind, name))
        for api_version, kind in CHILDREN
    }


def expected_children(name: str) -> dict[str, list[str]]:
    return {kind: [pattern.format(name=name)] for (_v, kind), pattern in CHILDREN.items()}


def resource_versions(rig: ReconcileRig, name: str) -> dict[str, str]:
    return {
        kind: rig.get(api_version, kind, pattern.format(name=name))["metadata"]["resourceVersion"]
        for (api_version, kind), pattern in CHILDREN.items()
    }


def gang_settled(rig: ReconcileRig, name: str, workers: int) -> bool:
    """The Job controller made every worker pod and counted it, and the scheduler found no
    node for any of them: nobody but Plinth has a reason to write the Job any more."""
    job = rig.get("batch/v1", "Job", f"{name}-r0")
    pods = rig.objects("v1", "Pod", label_selector=f"{LABEL_TRAININGJOB}={name}")
    unplaced = [
        pod
        for pod in pods
        if any(
            c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in (pod.get("status") or {}).get("conditions") or ()
        )
    ]
    return (job.get("status") or {}).get("active") == workers and len(unplaced) == workers


def contained(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` lacks or differs from what `expected` has (`actual` may hold more in
    mappings: the API server's defaults; it omits a false boolean, as Kubernetes' omitempty
    fields do); lists must match item by item."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not a mapping"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                contained(value, actual[key], f"{path}.{key}")
                if key in actual
                else ([] if value is False else [f"{path}.{key}: missing"])
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} is not {expected!r}"]
        return [
            problem
            for index, (want, got) in enumerate(zip(expected, actual, strict=True))
            for problem in contained(want, got, f"{path}[{index}]")
        ]
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]


# --------------------------------------------------------------------------------------
# A new TrainingJob
# --------------------------------------------------------------------------------------


def test_a_new_trainingjob_gets_owned_children_a_status_and_an_event(
    rig: ReconcileRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create_unplaceable(rig, "llm")

    again = rig.reconcile(TJ, "llm")

    # The Job first; the status of a gang just created is a step that moves on by itself
    # (its pods are created, placed, started), held back a few seconds for what follows.
    assert rig.writes == [
        ("apply", "Job/llm-r0"),
        ("apply", "Service/llm"),
        ("apply", "Secret/llm-metrics-token"),
    ]
    assert again is not None and 0 < again <= reconciler_module.STATUS_HOLD_SECONDS
    assert "status" not in rig.owner(TJ, "llm")

    monkeypatch.setattr(reconciler_module, "STATUS_HOLD_SECONDS", 0.0)  # the hold ran out
    again = rig.reconcile(TJ, "llm")

    assert again is not None and 0 < again <= RESYNC_SECONDS
    assert rig.writes_of("status", "event") == ["TrainingJob/llm", "AttemptCreated"]
    assert child_names(rig, "llm") == expected_children("llm")
    for (api_version, kind), pattern in CHILDREN.items():
        child = rig.get(api_version, kind, pattern.format(name="llm"))
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": created["apiVersion"],
                "kind": TJ,
                "name": "llm",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert child["metadata"]["labels"][LABEL_TRAININGJOB] == "llm"
    job = rig.owner(TJ, "llm")
    generation = job["metadata"]["generation"]
    assert job["status"]["phase"] == "Pending"
    assert job["status"]["observedGeneration"] == generation
    accepted, created_ = condition(job, "Accepted"), condition(job, "Created")
    assert (accepted["status"], accepted["reason"]) == ("True", "SpecValid")
    # the status is written after the children: the attempt it names exists
    assert (created_["status"], created_["reason"]) == ("True", "AttemptCreated")
    assert accepted["observedGeneration"] == generation
    # One Normal Event for the status update's transitions, named after the last
    (event,) = rig.events("llm")
    assert (event.type, event.reason) == ("Normal", "AttemptCreated")
    assert event.message == (
        "Accepted=True: The spec is valid and the operator is acting on it.; "
        "Created=True: Attempt 0 is Job llm-r0."
    )


def test_a_status_update_already_superseded_waits_for_the_next_reconcile(
    rig: ReconcileRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a burst, a status that newer queued events make stale is not written; the next
    reconcile writes the newer one, with the transitions of both in its Event. A status
    held back for STATUS_HOLD_SECONDS is written even if superseded."""
    create_unplaceable(rig, "llm")

    rig.reconcile(TJ, "llm", superseded=True)

    assert rig.writes_of("status", "event") == []
    assert child_names(rig, "llm") == expected_children("llm")  # the children are written
    assert "status" not in rig.owner(TJ, "llm")

    rig.reconcile(TJ, "llm")

    assert rig.writes_of("status") == ["TrainingJob/llm"]
    assert condition(rig.owner(TJ, "llm"), "Created")["status"] == "True"
    (event,) = rig.events("llm")
    assert "Accepted=True" in event.message and "Created=True" in event.message

    create_unplaceable(rig, "gpt")
    rig.reconcile(TJ, "gpt", superseded=True)
    monkeypatch.setattr(reconciler_module, "STATUS_HOLD_SECONDS", 0.0)
    rig.reconcile(TJ, "gpt", superseded=True)
    assert rig.writes_of("status") == ["TrainingJob/gpt"]


def test_a_new_phase_is_written_at_once_though_newer_events_are_queued(
    rig: ReconcileRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a status within one phase waits for newer events; a new phase (here a job
    suspended by its user) is told at once, with its Event, so no state is skipped."""
    create_unplaceable(rig, "llm")
    monkeypatch.setattr(reconciler_module, "STATUS_HOLD_SECONDS", 0.0)
    rig.reconcile(TJ, "llm")
    assert rig.owner(TJ, "llm")["status"]["phase"] == "Pending"
    monkeypatch.setattr(reconciler_module, "STATUS_HOLD_SECONDS", 5.0)
    rig.kube().merge_patch(
        {
            "apiVersion": "plinth.dev/v1alpha1",
            "kind": TJ,
            "metadata": {"name": "llm", "namespace": rig.namespace},
            "spec": {"suspend": True},
        }
    )

    rig.reconcile(TJ, "llm", superseded=True)

    assert rig.writes_of("status") == ["TrainingJob/llm"]
    assert rig.owner(TJ, "llm")["status"]["phase"] == "Suspended"


def test_in_a_burst_a_new_gang_gets_its_job_before_anything_else(rig: ReconcileRig) -> None:
    """While other new resources wait for their first writes, a reconcile creating a gang
    writes only its PodGroup and Job and comes back soon for the Service, the Secret, the
    status and its Event; it defers once, so it is never starved however busy the queue."""
    create_unplaceable(rig, "llm")

    again = rig.reconcile(TJ, "llm", others_waiting=True)

    assert rig.writes_of("apply", "patch", "status", "event") == ["Job/llm-r0"]
    assert again is not None and again <= 1.0
    assert "status" not in rig.owner(TJ, "llm")

    rig.reconcile(TJ, "llm", others_waiting=True)

    assert child_names(rig, "llm") == expected_children("llm")
    assert {"Service/llm", "Secret/llm-metrics-token"} <= set(rig.writes_of("apply"))
    assert condition(rig.owner(TJ, "llm"), "Created")["status"] == "True"
    assert len(rig.events("llm")) == 1


def test_reconciling_again_rewrites_nothing_and_repeats_no_event(rig: ReconcileRig) -> None:
    create_unplaceable(rig, "llm")
    rig.reconcile(TJ, "llm")
    wait_for(lambda: gang_settled(rig, "llm", 2), what="the gang counted, unplaced", timeout=30)
    versions = resource_versions(rig, "llm")
    first_events = rig.events("llm")

    rig.reconcile(TJ, "llm")  # now it sees its attempt and its unplaced workers

    # The Job's pod template is immutable: an existing attempt is patched, never re-applied;
    # what is sent again changes nothing on the server.
    assert rig.writes_of("apply", "patch") == [
        "Service/llm",
        "Secret/llm-metrics-token",
        "Job/llm-r0",
    ]
    assert ("apply", "Job/llm-r0") not in rig.writes
    assert resource_versions(rig, "llm") == versions
    assert child_names(rig, "llm") == expected_children("llm")
    job = rig.owner(TJ, "llm")
    assert condition(job, "Created")["reason"] == "AttemptCreated"
    assert condition(job, "Scheduled")["reason"] == "PersistentVolumeClaimUnbound"
    events = rig.events("llm")
    assert set(first_events) <= set(events)
    seen = Counter((e.type, e.reason, e.message) for e in events)
    assert max(seen.values()) == 1, seen
    assert all(e.count == 1 for e in events)

    status_version = job["metadata"]["resourceVersion"]
    rig.reconcile(TJ, "llm")  # the same inputs once more: a settled job is left alone

    assert rig.writes_of("status", "event") == []
    assert rig.owner(TJ, "llm")["metadata"]["resourceVersion"] == status_version
    assert resource_versions(rig, "llm") == versions
    assert rig.events("llm") == events


def test_what_plinth_render_shows_is_what_is_applied(rig: ReconcileRig) -> None:
    (document,) = yaml.safe_load_all((EXAMPLES_DIR / "trainingjob-multi-node.yaml").read_text())
    name = document["metadata"]["name"]
    created = rig.create(document)

    rig.reconcile(TJ, name)

    shown = json.loads(
        json.dumps(render_trainingjob(created)).replace(
            PLACEHOLDER_METRICS_BASE_URL, METRICS_BASE_URL
        )
    )
    assert [m["kind"] for m in shown] == ["Job", "Service", "Secret"]
    for manifest in shown:
        applied = rig.get(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
        assert applied["metadata"]["labels"] == manifest["metadata"]["labels"]
        assert applied["metadata"]["ownerReferences"] == manifest["metadata"]["ownerReferences"]
        if manifest["kind"] != "Secret":  # its data is the real token, render shows none
            assert not contained(manifest["spec"], applied["spec"], "spec")


# --------------------------------------------------------------------------------------
# What cannot be acted on, and what an earlier Plinth left
# --------------------------------------------------------------------------------------


def test_an_invalid_spec_fails_naming_the_field_and_creates_nothing(rig: ReconcileRig) -> None:
    create_unplaceable(rig, "bad")

    def with_bad_spec() -> Snapshot:
        # What a looser schema (an old or hand-edited CRD) would let through.
        snapshot = rig.snapshot(TJ, "bad")
        owner = json.loads(json.dumps(snapshot.owner))
        owner["spec"]["resources"]["gpus"] = -1
        return Snapshot(owner=owner, children=snapshot.children)

    assert rig.reconcile(TJ, "bad", snapshot=with_bad_spec()) is None

    assert rig.writes == [("status", "TrainingJob/bad"), ("event", "InvalidSpec")]
    job = rig.owner(TJ, "bad")
    assert job["status"]["phase"] == "Failed"
    accepted = condition(job, "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")
    assert "spec.resources.gpus" in accepted["message"]
    (event,) = rig.events("bad")
    assert (event.type, event.reason) == ("Warning", "InvalidSpec")
    assert "spec.resources.gpus" in event.message
    assert child_names(rig, "bad") == {kind: [] for _v, kind in CHILDREN}

    version = job["metadata"]["resourceVersion"]
    assert rig.reconcile(TJ, "bad", snapshot=with_bad_spec()) is None
    assert rig.writes == []
    assert rig.owner(TJ, "bad")["metadata"]["resourceVersion"] == version
    assert len(rig.events("bad")) == 1


def test_a_job_labelled_by_plinth_0_1_is_still_the_jobs_attempt(rig: ReconcileRig) -> None:
    created = create_unplaceable(rig, "old")
    legacy = render_trainingjob(created)[0]  # attempt 0, as 0.1 named it
    legacy_labels = {LEGACY_LABEL_JOB_NAME: "old"}
    legacy["metadata"]["labels"] = legacy_labels
    legacy["spec"]["template"]["metadata"]["labels"] = legacy_labels | {LABEL_ROLE: ROLE_WORKER}
    legacy_uid = rig.create(legacy)["metadata"]["uid"]

    snapshot = rig.snapshot(TJ, "old")
    assert [j["metadata"]["uid"] for j in snapshot.children["jobs"]] == [legacy_uid]
    rig.reconcile(TJ, "old", snapshot=snapshot)
    assert ("patch", "Job/old-r0") in rig.writes
    assert not [about for about in rig.writes_of("apply") if about.startswith("Job/")]
    rig.reconcile(TJ, "old")

    assert [j["metadata"]["uid"] for j in rig.objects("batch/v1", "Job")] == [legacy_uid]
    job = rig.owner(TJ, "old")
    created_condition = condition(job, "Created")
    assert (created_condition["status"], created_condition["reason"]) == ("True", "AttemptCreated")
    assert job["status"]["restarts"] == 0
    assert rig.find("v1", "Service", "old") is not None
    assert rig.find("v1", "Secret", "old-metrics-token") is not None


# --------------------------------------------------------------------------------------
# Crashes
# --------------------------------------------------------------------------------------

#: The first reconcile of a new job writes the Job, the Service, the Secret, its status
#: (statuses written at once here, not held), then its Event; the operator dies after this
#: many of those writes.
CRASH_POINTS = {
    "after-the-job": 1,
    "after-the-service": 2,
    "after-the-secret": 3,
    "after-the-status": 4,
}


@pytest.mark.parametrize("writes", CRASH_POINTS.values(), ids=CRASH_POINTS.keys())
def test_a_reconcile_killed_midway_converges_on_restart(
    rig: ReconcileRig, writes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler_module, "STATUS_HOLD_SECONDS", 0.0)
    create_unplaceable(rig, "llm")
    with pytest.raises(OperatorKilledError):
        rig.reconcile(TJ, "llm", die_after=writes)

    rig.reconcile(TJ, "llm")  # the restarted operator, from what the API server holds
    rig.reconcile(TJ, "llm")

    assert child_names(rig, "llm") == expected_children("llm")
    assert len(rig.objects("batch/v1", "Job")) == 1
    job = rig.owner(TJ, "llm")
    assert condition(job, "Created")["status"] == "True"
    assert condition(job, "Accepted")["status"] == "True"
    assert job["status"]["phase"] == "Pending"
