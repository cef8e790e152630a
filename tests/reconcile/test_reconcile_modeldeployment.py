"""ModelDeployment through the shared reconcile runtime against a real API server (no Kopf,
no operator process, no sweep controller): a model from a sweep's best trial, read from the
sweep's status as written through the status subresource, followed when the best trial
changes; a settled deployment is written once; an operator killed before any write of a
canary step's reconcile converges, restarted, on the same objects at the same step."""

from __future__ import annotations

import time
from typing import Any

from plinth.api.wellknown import ObjectRef
from tests.support.invalid_specs import sweep
from tests.support.reconcile import OperatorKilledError, ReconcileRig, condition
from tests.support.serving import a_modeldeployment

KIND = "ModelDeployment"
API = "plinth.dev/v1alpha1"


def create_sweep(rig: ReconcileRig, best: str) -> None:
    rig.create(
        {"apiVersion": API, "kind": "AutoMLSweep", "metadata": {"name": "search"}, "spec": sweep()}
    )
    set_best_trial(rig, best)


def set_best_trial(rig: ReconcileRig, trial: str) -> None:
    """What the sweep controller records: its best trial and where it checkpointed."""
    best = {
        "name": trial,
        "number": int(trial[-1]),
        "value": 0.1,
        "checkpointUri": f"/ckpt/{trial}",
    }
    rig.kube().patch_status(
        ObjectRef(API, "AutoMLSweep", rig.namespace, "search"), {"bestTrial": best}
    )


def deployments(rig: ReconcileRig) -> list[dict[str, Any]]:
    listed = rig.kube().list_objects("apps/v1", "Deployment", namespace=rig.namespace)
    return sorted(listed, key=lambda d: d["metadata"]["name"])


def loader_uri(deployment: dict[str, Any]) -> str:
    (loader,) = deployment["spec"]["template"]["spec"]["initContainers"]
    return next(a for a in loader["args"] if a.startswith("--uri=")).removeprefix("--uri=")


def test_a_sweeps_best_trial_is_served_and_followed(rig: ReconcileRig) -> None:
    create_sweep(rig, "search-3")
    factory = a_modeldeployment().named("best").with_model(uri=None, fromSweep={"name": "search"})
    rig.create(factory.body())
    rig.reconcile(KIND, "best")
    (first,) = deployments(rig)
    assert loader_uri(first) == "/ckpt/search-3/model"
    resource = rig.owner(KIND, "best")
    assert resource["status"]["model"]["uri"] == "/ckpt/search-3/model"
    resolved = condition(resource, "ModelResolved")
    assert resolved is not None and "best trial of AutoMLSweep search" in resolved["message"]

    set_best_trial(rig, "search-7")
    rig.reconcile(KIND, "best")
    old, new = sorted(
        deployments(rig), key=lambda d: d["metadata"]["creationTimestamp"] + d["metadata"]["name"]
    )
    assert {loader_uri(old), loader_uri(new)} == {"/ckpt/search-3/model", "/ckpt/search-7/model"}
    status = rig.owner(KIND, "best")["status"]
    assert status["model"]["uri"] == "/ckpt/search-3/model", (
        "the old model serves until the new is ready"
    )
    rolling = condition(rig.owner(KIND, "best"), "RollingOut")
    assert rolling is not None and (rolling["status"], rolling["reason"]) == ("True", "Replacing")


def test_a_settled_deployment_is_written_once(rig: ReconcileRig) -> None:
    rig.create(
        a_modeldeployment()
        .named("once")
        .from_uri("https://models.example/m.onnx")
        .with_model(format="onnx", inputs=None, outputs=None)
        .body()
    )
    rig.reconcile(KIND, "once")
    assert rig.writes_of("status") == [f"{KIND}/once"]
    created = {f"Deployment/{deployments(rig)[0]['metadata']['name']}", "Service/once"}
    assert created | {"PodDisruptionBudget/once"} == set(rig.writes_of("apply"))
    for _ in range(20):  # until kwok has made the replica Ready and status says so
        rig.reconcile(KIND, "once")
        if not rig.writes_of("status"):
            break
        time.sleep(0.5)
    assert rig.owner(KIND, "once")["status"]["phase"] == "Ready"
    rig.reconcile(KIND, "once")
    assert rig.writes_of("status", "event", "delete", "patch") == []


def test_a_killed_canary_step_converges_at_the_same_step(rig: ReconcileRig) -> None:
    base = a_modeldeployment().named("canary").with_canary(25, 50, duration=60)
    rig.create(base.body())
    rig.reconcile(KIND, "canary")
    rig.kube().merge_patch(
        {
            "apiVersion": API,
            "kind": KIND,
            "metadata": {"name": "canary", "namespace": rig.namespace},
            "spec": base.from_uri("/models/v2", version=2).spec_fields(),
        }
    )
    rig.reconcile(KIND, "canary")
    canary = rig.owner(KIND, "canary")["status"]["canary"]
    assert (canary["state"], canary["step"]) == ("Progressing", 0)
    ref = ObjectRef(API, KIND, rig.namespace, "canary")
    rig.kube().patch_status(ref, {"canary": {**canary, "step": 1}})
    kills = 0
    for die_after in range(20):  # killed before the first write, then the second, ...
        try:
            rig.reconcile(KIND, "canary", die_after=die_after)
        except OperatorKilledError:
            kills += 1
            continue
        break
    assert kills >= 3, "every write of the reconcile was interrupted once"
    rig.reconcile(KIND, "canary")
    status = rig.owner(KIND, "canary")["status"]
    assert (status["canary"]["state"], status["canary"]["step"]) == ("Progressing", 1)
    assert status["model"]["version"] == 1
    names = [d["metadata"]["name"] for d in deployments(rig)]
    assert len(names) == len(set(names)) == 2, names
