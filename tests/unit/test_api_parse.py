"""parse_spec at the edge: good specs parse, bad ones are refused naming the field.

`INVALID_SPECS` is also meant for the integration tier: every case there must be refused by
a real API server with the CRDs installed, with the same field in the error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.api.v1alpha1 import (
    KINDS,
    AlgorithmName,
    AutoMLSweepSpec,
    InvalidSpecError,
    InvalidStatusError,
    ModelDeploymentSpec,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_spec,
    parse_status,
)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

Spec = dict[str, Any]


def training_job() -> Spec:
    return {"image": "ghcr.io/acme/train:1", "nodes": 1, "resources": {"gpus": 1}}


def sweep() -> Spec:
    return {
        "objectives": [{"metric": "loss", "direction": "minimize"}],
        "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "log": True}],
        "budget": {"maxTrials": 4},
        "trialTemplate": training_job(),
    }


def deployment() -> Spec:
    return {"model": {"uri": "s3://models/resnet", "format": "onnx"}}


BASES: dict[str, Callable[[], Spec]] = {
    "TrainingJob": training_job,
    "AutoMLSweep": sweep,
    "ModelDeployment": deployment,
}


@dataclass(frozen=True)
class InvalidCase:
    """A valid base spec of `kind` with `changes` merged in (None deletes a key)."""

    id: str
    kind: str
    changes: Spec
    field: str  # the field path the error must name, e.g. "spec.resources.gpus"

    def spec(self) -> Spec:
        return merged(BASES[self.kind](), self.changes)


def merged(base: Spec, changes: Spec) -> Spec:
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


INVALID_SPECS = [
    # TrainingJob
    InvalidCase("tj-no-image", "TrainingJob", {"image": None}, "spec.image"),
    InvalidCase("tj-unknown-field", "TrainingJob", {"gpus": 8}, "spec.gpus"),
    InvalidCase(
        "tj-nodes-and-elastic", "TrainingJob", {"elastic": {"minNodes": 1, "maxNodes": 2}}, "spec"
    ),
    InvalidCase("tj-neither-nodes-nor-elastic", "TrainingJob", {"nodes": None}, "spec"),
    InvalidCase("tj-zero-nodes", "TrainingJob", {"nodes": 0}, "spec.nodes"),
    InvalidCase(
        "tj-elastic-min-above-max",
        "TrainingJob",
        {"nodes": None, "elastic": {"minNodes": 4, "maxNodes": 2}},
        "spec.elastic.minNodes",
    ),
    InvalidCase(
        "tj-too-many-gpus", "TrainingJob", {"resources": {"gpus": 65}}, "spec.resources.gpus"
    ),
    InvalidCase(
        "tj-bad-memory", "TrainingJob", {"resources": {"memory": "16 GB"}}, "spec.resources.memory"
    ),
    InvalidCase(
        "tj-gpu-type-without-gpus",
        "TrainingJob",
        {"resources": {"gpus": 0, "gpuType": "NVIDIA-H100-80GB-HBM3"}},
        "spec.resources.gpuType",
    ),
    InvalidCase(
        "tj-more-procs-than-gpus",
        "TrainingJob",
        {"procsPerNode": 4, "resources": {"gpus": 2}},
        "spec.procsPerNode",
    ),
    InvalidCase(
        "tj-reserved-env", "TrainingJob", {"env": [{"name": "RANK", "value": "0"}]}, "spec.env"
    ),
    InvalidCase(
        "tj-duplicate-env",
        "TrainingJob",
        {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
        "spec.env",
    ),
    InvalidCase(
        "tj-env-value-and-value-from",
        "TrainingJob",
        {
            "env": [
                {
                    "name": "A",
                    "value": "1",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                }
            ]
        },
        "spec.env[0].valueFrom",
    ),
    InvalidCase(
        "tj-exit-code-out-of-range",
        "TrainingJob",
        {"restartPolicy": {"permanentExitCodes": [256]}},
        "spec.restartPolicy.permanentExitCodes[0]",
    ),
    InvalidCase(
        "tj-bad-checkpoint-uri",
        "TrainingJob",
        {"checkpoint": {"uri": "relative/dir"}},
        "spec.checkpoint.uri",
    ),
    InvalidCase(
        "tj-bad-on-timeout",
        "TrainingJob",
        {"scheduling": {"onTimeout": "wait"}},
        "spec.scheduling.onTimeout",
    ),
    InvalidCase(
        "tj-mount-of-unknown-volume",
        "TrainingJob",
        {"podTemplate": {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}},
        "spec.podTemplate.volumeMounts",
    ),
    InvalidCase(
        "tj-reserved-label",
        "TrainingJob",
        {"podTemplate": {"labels": {"plinth.dev/job": "x"}}},
        "spec.podTemplate.labels",
    ),
    InvalidCase(
        "tj-toleration-exists-with-value",
        "TrainingJob",
        {"podTemplate": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.podTemplate.tolerations[0].value",
    ),
    # AutoMLSweep
    InvalidCase("sweep-no-objectives", "AutoMLSweep", {"objectives": []}, "spec.objectives"),
    InvalidCase(
        "sweep-bad-direction",
        "AutoMLSweep",
        {"objectives": [{"metric": "loss", "direction": "down"}]},
        "spec.objectives[0].direction",
    ),
    InvalidCase(
        "sweep-bad-algorithm",
        "AutoMLSweep",
        {"algorithm": {"name": "bayes"}},
        "spec.algorithm.name",
    ),
    InvalidCase(
        "sweep-min-above-max",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 1, "max": 0.1}]},
        "spec.parameters[0].min",
    ),
    InvalidCase(
        "sweep-float-without-range",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float"}]},
        "spec.parameters[0].min",
    ),
    InvalidCase(
        "sweep-categorical-without-values",
        "AutoMLSweep",
        {"parameters": [{"name": "opt", "type": "categorical"}]},
        "spec.parameters[0].values",
    ),
    InvalidCase(
        "sweep-categorical-with-range",
        "AutoMLSweep",
        {"parameters": [{"name": "opt", "type": "categorical", "values": ["adam"], "min": 1}]},
        "spec.parameters[0].type",
    ),
    InvalidCase(
        "sweep-values-on-float",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 0, "max": 1, "values": [1]}]},
        "spec.parameters[0].values",
    ),
    InvalidCase(
        "sweep-log-from-zero",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 0, "max": 1, "log": True}]},
        "spec.parameters[0].log",
    ),
    InvalidCase(
        "sweep-int-with-fraction",
        "AutoMLSweep",
        {"parameters": [{"name": "layers", "type": "int", "min": 1.5, "max": 4}]},
        "spec.parameters[0].type",
    ),
    InvalidCase(
        "sweep-duplicate-parameter",
        "AutoMLSweep",
        {
            "parameters": [
                {"name": "lr", "type": "float", "min": 0, "max": 1},
                {"name": "lr", "type": "float", "min": 0, "max": 1},
            ]
        },
        "spec.parameters",
    ),
    InvalidCase(
        "sweep-grid-float-without-step",
        "AutoMLSweep",
        {"algorithm": {"name": "grid"}},
        "spec.parameters",
    ),
    InvalidCase(
        "sweep-parallel-above-max",
        "AutoMLSweep",
        {"budget": {"maxTrials": 2, "parallelTrials": 4}},
        "spec.budget.parallelTrials",
    ),
    InvalidCase("sweep-no-budget", "AutoMLSweep", {"budget": None}, "spec.budget"),
    InvalidCase(
        "sweep-pruning-two-objectives",
        "AutoMLSweep",
        {
            "objectives": [
                {"metric": "loss", "direction": "minimize"},
                {"metric": "latency", "direction": "minimize"},
            ],
            "earlyStopping": {"name": "asha"},
        },
        "spec.earlyStopping",
    ),
    InvalidCase(
        "sweep-setting-of-other-pruner",
        "AutoMLSweep",
        {"earlyStopping": {"name": "asha", "startupTrials": 3}},
        "spec.earlyStopping.startupTrials",
    ),
    InvalidCase(
        "sweep-bad-trial-template",
        "AutoMLSweep",
        {"trialTemplate": {"resources": {"gpus": -1}}},
        "spec.trialTemplate.resources.gpus",
    ),
    InvalidCase(
        "sweep-warm-start-unknown-metric",
        "AutoMLSweep",
        {"warmStart": {"trials": [{"parameters": {"lr": 0.01}, "values": {"accuracy": 0.9}}]}},
        "spec.warmStart",
    ),
    # ModelDeployment
    InvalidCase(
        "md-two-model-sources",
        "ModelDeployment",
        {"model": {"fromTrainingJob": {"name": "job"}}},
        "spec.model",
    ),
    InvalidCase("md-no-model-source", "ModelDeployment", {"model": {"uri": None}}, "spec.model"),
    InvalidCase(
        "md-bad-format", "ModelDeployment", {"model": {"format": "pickle"}}, "spec.model.format"
    ),
    InvalidCase(
        "md-min-above-max-replicas",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
    ),
    InvalidCase(
        "md-range-without-target",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}},
        "spec.autoscaling.target",
    ),
    InvalidCase(
        "md-scale-to-zero",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 0}},
        "spec.autoscaling.minReplicas",
    ),
    InvalidCase(
        "md-bad-backend",
        "ModelDeployment",
        {"autoscaling": {"backend": "knative"}},
        "spec.autoscaling.backend",
    ),
    InvalidCase(
        "md-batching-without-batch-size",
        "ModelDeployment",
        {"runtime": {"dynamicBatching": {}}},
        "spec.runtime.dynamicBatching",
    ),
    InvalidCase(
        "md-preferred-batch-too-big",
        "ModelDeployment",
        {"runtime": {"maxBatchSize": 8, "dynamicBatching": {"preferredBatchSizes": [16]}}},
        "spec.runtime.dynamicBatching.preferredBatchSizes",
    ),
    InvalidCase(
        "md-canary-weights-decreasing",
        "ModelDeployment",
        {"rollout": {"canary": {"steps": [{"weight": 50}, {"weight": 10}]}}},
        "spec.rollout.canary.steps",
    ),
    InvalidCase(
        "md-canary-weight-100",
        "ModelDeployment",
        {"rollout": {"canary": {"steps": [{"weight": 100}]}}},
        "spec.rollout.canary.steps[0].weight",
    ),
    InvalidCase(
        "md-error-rate-above-one",
        "ModelDeployment",
        {"rollout": {"canary": {"steps": [{"weight": 10}], "gates": {"maxErrorRate": 5}}}},
        "spec.rollout.canary.gates.maxErrorRate",
    ),
]


# --------------------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------------------


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and str(document.get("apiVersion", "")).startswith("plinth.dev/"):
                documents.append((f"{path.name}:{document['metadata']['name']}", document))
    return documents


@pytest.mark.parametrize(
    "document", [d for _, d in example_documents()], ids=[name for name, _ in example_documents()]
)
def test_every_example_parses(document: dict[str, Any]) -> None:
    spec = parse_spec(document["kind"], document["spec"])
    assert isinstance(spec, KINDS[document["kind"]].spec_model)


def test_examples_cover_every_kind() -> None:
    kinds = {document["kind"] for _, document in example_documents()}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("kind", list(BASES))
def test_the_minimal_specs_parse(kind: str) -> None:
    assert isinstance(parse_spec(kind, BASES[kind]()), KINDS[kind].spec_model)


def test_training_job_defaults_are_what_the_crd_says() -> None:
    spec = parse_spec("TrainingJob", {"image": "x", "nodes": 2})
    assert isinstance(spec, TrainingJobSpec)
    assert spec.resources.gpus == 0
    assert spec.restart_policy.backoff_limit == 3
    assert spec.scheduling.gang is True
    assert spec.scheduling.schedule_timeout_seconds == 300
    assert spec.suspend is False
    assert spec.effective_procs_per_node == 1
    assert (spec.min_nodes, spec.max_nodes) == (2, 2)


def test_procs_per_node_defaults_to_one_per_gpu() -> None:
    spec = parse_spec("TrainingJob", {"image": "x", "nodes": 1, "resources": {"gpus": 8}})
    assert spec.effective_procs_per_node == 8


def test_quantities_accept_integers_and_strings_and_keep_the_string_form() -> None:
    spec = parse_spec(
        "TrainingJob", {"image": "x", "nodes": 1, "resources": {"cpu": 4, "memory": "16Gi"}}
    )
    assert (spec.resources.cpu, spec.resources.memory) == ("4", "16Gi")


def test_fields_can_be_given_by_python_name_too() -> None:
    spec = TrainingJobSpec(image="x", nodes=1, procs_per_node=1)
    assert spec.procs_per_node == 1


def test_to_dict_round_trips_in_yaml_spelling() -> None:
    original = merged(
        training_job(),
        {
            "podTemplate": {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}]
            }
        },
    )
    spec = parse_spec("TrainingJob", original)
    dumped = spec.to_dict()
    assert dumped["podTemplate"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert parse_spec("TrainingJob", dumped) == spec


def test_specs_are_immutable() -> None:
    spec = parse_spec("TrainingJob", training_job())
    with pytest.raises(ValueError, match="frozen"):
        spec.image = "other"  # type: ignore[misc]


def test_typed_parse_results() -> None:
    assert isinstance(parse_spec("AutoMLSweep", sweep()), AutoMLSweepSpec)
    assert isinstance(parse_spec("ModelDeployment", deployment()), ModelDeploymentSpec)
    assert parse_spec("AutoMLSweep", sweep()).algorithm.name == AlgorithmName.TPE


def test_categorical_choices_are_integers_or_strings() -> None:
    spec = merged(
        sweep(),
        {
            "parameters": [
                {"name": "batch", "type": "categorical", "values": [32, 64]},
                {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
            ]
        },
    )
    parsed = parse_spec("AutoMLSweep", spec)
    assert [p.values for p in parsed.parameters] == [(32, 64), ("adam", "sgd")]
    with pytest.raises(InvalidSpecError, match=r"spec\.parameters\[0\]\.values\[0\]: .*quote"):
        parse_spec(
            "AutoMLSweep",
            merged(
                sweep(), {"parameters": [{"name": "p", "type": "categorical", "values": [0.1]}]}
            ),
        )


# --------------------------------------------------------------------------------------
# Invalid input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.id)
def test_invalid_specs_are_refused_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(case.kind, case.spec())
    named = [problem.split(": ", 1)[0] for problem in caught.value.problems]
    assert case.field in named, f"{case.field} not in {caught.value}"


def test_the_error_message_reads_path_colon_problem() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("TrainingJob", merged(training_job(), {"resources": {"gpus": 100}}))
    assert str(caught.value) == "spec.resources.gpus: Input should be less than or equal to 64"
    assert caught.value.kind == "TrainingJob"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("TrainingJob", {"nodes": 0, "resources": {"cpu": "lots"}})
    named = {problem.split(": ", 1)[0] for problem in caught.value.problems}
    assert named == {"spec.image", "spec.nodes", "spec.resources.cpu"}


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match=r"^spec: Input should be"):
        parse_spec("TrainingJob", "image: x")  # type: ignore[arg-type]


def test_unknown_kinds_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown kind 'Notebook'"):
        parse_spec("Notebook", {})


def test_python_only_rules_report_through_parse_spec() -> None:
    # CEL cannot see warm-start parameter values (they have no single type).
    spec = merged(sweep(), {"warmStart": {"trials": [{"parameters": {"momentum": 0.9}}]}})
    with pytest.raises(InvalidSpecError, match=r"spec\.warmStart: .*parameters of the sweep"):
        parse_spec("AutoMLSweep", spec)


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


def test_a_new_object_has_an_empty_status() -> None:
    status = parse_status("TrainingJob", None)
    assert isinstance(status, TrainingJobStatus)
    assert status.phase is None
    assert status.restarts == 0


def test_status_ignores_fields_it_does_not_know() -> None:
    status = parse_status("TrainingJob", {"phase": "Running", "fromNewerOperator": 1})
    assert status.phase == "Running"


def test_status_round_trips_with_kubernetes_timestamps() -> None:
    raw = {
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "AllWorkersRunning",
                "message": "2/2 workers running",
                "lastTransitionTime": "2025-01-02T03:04:05Z",
                "observedGeneration": 1,
            }
        ],
        "startTime": "2025-01-02T03:04:05.123456+00:00",
    }
    dumped = parse_status("TrainingJob", raw).to_dict()
    assert dumped["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    assert dumped["startTime"] == "2025-01-02T03:04:05Z"


def test_bad_status_names_the_field() -> None:
    with pytest.raises(InvalidStatusError, match=r"status\.restarts: "):
        parse_status("TrainingJob", {"restarts": -1})
