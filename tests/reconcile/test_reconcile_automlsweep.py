"""AutoMLSweep through the shared reconcile runtime against a real API server: trials are
TrainingJobs it creates and owns, its status records them, and reconciling again with
nothing changed writes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.runtime.store import Snapshot
from tests.plinth_testing import EXAMPLES_DIR
from tests.support.reconcile import OperatorKilledError, ReconcileRig, condition
from tests.support.sweeps import trainer_sweep

TRAININGJOBS = "plinth.dev/v1alpha1"
#: Never written: no trial runs in this tier (no pod runner), the template only names it.
CHECKPOINTS = Path("/checkpoints")


def create_sweep(rig: ReconcileRig, name: str, **spec: Any) -> None:
    rig.create(trainer_sweep(name, CHECKPOINTS, **spec))


def trials(rig: ReconcileRig, sweep: str) -> list[dict[str, Any]]:
    return rig.objects(TRAININGJOBS, "TrainingJob", f"plinth.dev/automlsweep={sweep}")


def test_a_sweep_creates_its_first_trials_and_records_them_once(rig: ReconcileRig) -> None:
    create_sweep(rig, "lr", budget={"maxTrials": 4, "parallelTrials": 2})

    rig.reconcile("AutoMLSweep", "lr")

    assert rig.writes_of("apply") == ["TrainingJob/lr-0", "TrainingJob/lr-1"]
    created = sorted(trials(rig, "lr"), key=lambda t: t["metadata"]["name"])
    assert [t["metadata"]["labels"]["plinth.dev/trial"] for t in created] == ["0", "1"]
    for trial in created:
        (owner,) = trial["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("AutoMLSweep", "lr", True)
        assert trial["spec"]["args"][-1].startswith("--lr=0.")
    sweep = rig.owner("AutoMLSweep", "lr")
    status = sweep["status"]
    assert status["phase"] == "Running"
    assert status["trialCounts"]["total"] == 2
    assert [t["name"] for t in status["trials"]] == ["lr-0", "lr-1"]
    assert condition(sweep, "Accepted")["status"] == "True"
    reasons = [e.reason for e in rig.events("lr")]
    assert reasons.count("TrialCreated") == 2

    rig.reconcile("AutoMLSweep", "lr")

    assert rig.writes == []  # the trials exist and the status says so: nothing to write
    assert len(trials(rig, "lr")) == 2
    assert [e.reason for e in rig.events("lr")] == reasons


def test_a_sweep_killed_after_creating_a_trial_records_it_without_a_second(
    rig: ReconcileRig,
) -> None:
    create_sweep(rig, "crash", budget={"maxTrials": 4, "parallelTrials": 2})
    with pytest.raises(OperatorKilledError):
        rig.reconcile("AutoMLSweep", "crash", die_after=1)  # dies after creating crash-0
    assert [t["metadata"]["name"] for t in trials(rig, "crash")] == ["crash-0"]

    rig.reconcile("AutoMLSweep", "crash")

    names = sorted(t["metadata"]["name"] for t in trials(rig, "crash"))
    assert names == ["crash-0", "crash-1"]
    recorded = rig.owner("AutoMLSweep", "crash")["status"]["trials"]
    assert [(t["number"], t["name"]) for t in recorded] == [(0, "crash-0"), (1, "crash-1")]


def test_a_template_naming_an_undeclared_parameter_is_refused_and_starts_nothing(
    rig: ReconcileRig,
) -> None:
    create_sweep(rig, "typo")
    snapshot = rig.snapshot("AutoMLSweep", "typo")
    spec = snapshot.owner["spec"]
    template = {**spec["trialTemplate"], "args": ["--lr=${params.learning_rate}"]}
    owner = {**snapshot.owner, "spec": {**spec, "trialTemplate": template}}

    assert rig.reconcile("AutoMLSweep", "typo", snapshot=Snapshot(owner, snapshot.children)) is None

    assert trials(rig, "typo") == []
    accepted = condition(rig.owner("AutoMLSweep", "typo"), "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")
    assert "spec.trialTemplate" in accepted["message"]
    (event,) = rig.events("typo")
    assert (event.type, event.reason) == ("Warning", "InvalidSpec")


def test_a_modeldeployment_example_is_accepted(rig: ReconcileRig) -> None:
    path = EXAMPLES_DIR / "modeldeployment-triton.yaml"
    (document,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    name = str(rig.create(document)["metadata"]["name"])

    rig.reconcile("ModelDeployment", name)

    resource = rig.owner("ModelDeployment", name)
    accepted = condition(resource, "Accepted")
    assert (accepted["status"], accepted["reason"]) == ("True", "SpecValid")
    assert resource["status"]["observedGeneration"] == resource["metadata"]["generation"]
    assert "InvalidSpec" not in [e.reason for e in rig.events(name)]
