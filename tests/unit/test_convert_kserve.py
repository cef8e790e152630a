"""`plinth convert` on KServe InferenceServices (serving.kserve.io/v1beta1) into
ModelDeployments: Triton predictors convert, others are kept as they are."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from plinth.api.v1alpha1 import parse_spec
from plinth.convert import Severity
from tests.support.convert import (
    convert_corpus,
    convert_one,
    converted,
    corpus_document,
    error_of,
    findings,
    outcome_of,
    spec_of,
)

TRITON = "inferenceservice-triton.yaml"
SKLEARN = "inferenceservice-sklearn.yaml"
PREDICTOR = "spec.predictor"


def an_inferenceservice(**predictor: Any) -> dict[str, Any]:
    """A one-replica ONNX model on KServe's Triton runtime, with `predictor` fields added."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "clf", "namespace": "serving"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "onnx"},
                    "runtime": "kserve-tritonserver",
                    "storageUri": "pvc://models/clf",
                },
                **predictor,
            }
        },
    }


def test_every_field_of_a_triton_predictor_with_a_canary_maps() -> None:
    outcome = outcome_of(convert_corpus(), TRITON)
    assert outcome.target == "ModelDeployment/resnet-onnx"
    assert spec_of(outcome) == {
        "model": {"uri": "pvc://models/resnet50/v3", "format": "onnx"},
        "runtime": {
            "image": "nvcr.io/nvidia/tritonserver:24.08-py3",
            "args": ["--strict-model-config=false", "--log-verbose=1"],
            "env": [
                {"name": "AWS_REGION", "value": "eu-west-1"},
                {
                    "name": "AWS_ACCESS_KEY_ID",
                    "valueFrom": {"secretKeyRef": {"name": "model-store", "key": "access-key-id"}},
                },
            ],
        },
        "resources": {"gpus": 1, "gpuType": "NVIDIA-L4", "cpu": "4", "memory": "16Gi"},
        "autoscaling": {
            "minReplicas": 1,
            "maxReplicas": 5,
            "metric": "pendingRequests",
            "target": 8,
        },
        "rollout": {"canary": {"steps": [{"weight": 20}]}},
        "podTemplate": {"serviceAccountName": "model-reader"},
    }
    assert outcome.manifest["metadata"] == corpus_document(TRITON)["metadata"]
    changed = findings(outcome, Severity.CHANGED)
    assert "20%" in changed[f"{PREDICTOR}.canaryTrafficPercent"]
    assert "not read" in changed["metadata.annotations['serving.kserve.io/deploymentMode']"]
    assert parse_spec("ModelDeployment", spec_of(outcome)).autoscaling.target == 8


def test_a_predictor_not_served_by_triton_is_kept_as_it_is() -> None:
    outcome = outcome_of(convert_corpus(), SKLEARN)
    assert outcome.target is None
    assert outcome.manifest == corpus_document(SKLEARN)
    assert "Triton only" in findings(outcome, Severity.KEPT)[PREDICTOR]


@pytest.mark.parametrize(
    ("model", "converts"),
    [
        ({"modelFormat": {"name": "tensorrt"}}, True),
        ({"modelFormat": {"name": "tensorflow"}, "runtime": "kserve-tritonserver"}, True),
        ({"modelFormat": {"name": "tensorflow"}}, False),  # KServe picks TF Serving
        ({"modelFormat": {"name": "onnx"}, "runtime": "custom-onnx-server"}, False),
    ],
)
def test_triton_is_recognised_as_kserve_picks_runtimes(
    model: dict[str, Any], converts: bool
) -> None:
    service = an_inferenceservice()
    service["spec"]["predictor"]["model"] = {**model, "storageUri": "pvc://models/m"}
    assert (converted(service).target is not None) == converts


def test_a_triton_model_repository_is_an_error_naming_the_path() -> None:
    service = an_inferenceservice()
    service["spec"]["predictor"] = {"triton": {"storageUri": "pvc://models/repo"}}
    error = error_of(convert_one(service))
    assert f"{PREDICTOR}.triton: a Triton model repository does not say" in error


def test_a_storage_scheme_plinth_cannot_fetch_is_an_error_naming_the_path() -> None:
    service = an_inferenceservice()
    service["spec"]["predictor"]["model"]["storageUri"] = "s3://bucket/model"
    error = error_of(convert_one(service))
    assert f"{PREDICTOR}.model.storageUri" in error and "not s3://" in error


def test_scale_to_zero_becomes_one_replica() -> None:
    outcome = converted(
        an_inferenceservice(minReplicas=0, maxReplicas=3, scaleMetric="rps", scaleTarget=50)
    )
    assert spec_of(outcome)["autoscaling"] == {
        "minReplicas": 1,
        "maxReplicas": 3,
        "metric": "inferenceRate",
        "target": 50,
    }
    assert "scale to zero" in findings(outcome)[f"{PREDICTOR}.minReplicas"]


@pytest.mark.parametrize(
    ("predictor", "severity"),
    [
        ({"scaleMetric": "memory", "scaleTarget": 70}, Severity.DROPPED),
        ({}, Severity.CHANGED),  # KServe's default written out
    ],
)
def test_without_a_metric_plinth_has_kserves_cpu_default_is_used(
    predictor: dict[str, Any], severity: Severity
) -> None:
    outcome = converted(an_inferenceservice(minReplicas=1, maxReplicas=4, **predictor))
    autoscaling = spec_of(outcome)["autoscaling"]
    assert (autoscaling["metric"], autoscaling["target"]) == ("cpu", 80)
    assert f"{PREDICTOR}.scaleMetric" in findings(outcome, severity)


def test_a_cpu_hpa_metric_becomes_the_cpu_target() -> None:
    hpa = {
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60},
                },
            }
        ]
    }
    outcome = converted(an_inferenceservice(maxReplicas=4, autoScaling=hpa))
    assert spec_of(outcome)["autoscaling"]["target"] == 60
    assert not outcome.findings


def test_the_batcher_becomes_tritons_dynamic_batcher() -> None:
    outcome = converted(an_inferenceservice(batcher={"maxBatchSize": 16, "maxLatency": 20}))
    runtime = spec_of(outcome)["runtime"]
    assert runtime == {"maxBatchSize": 16, "dynamicBatching": {"maxQueueDelayMicroseconds": 20000}}
    assert f"{PREDICTOR}.batcher" in findings(outcome, Severity.CHANGED)


def test_a_raw_deployment_canary_gives_a_step_and_says_how_to_roll_it_out() -> None:
    service = an_inferenceservice()
    canary_predictor = copy.deepcopy(service["spec"]["predictor"])
    canary_predictor["model"]["storageUri"] = "pvc://models/clf-v2"
    service["spec"]["canary"] = [{"predictor": canary_predictor, "trafficPercent": 10}]
    outcome = converted(service)
    assert spec_of(outcome)["rollout"] == {"canary": {"steps": [{"weight": 10}]}}
    assert "pvc://models/clf-v2" in findings(outcome, Severity.DROPPED)["spec.canary[0].predictor"]


def test_fields_without_an_equivalent_are_dropped_with_reasons() -> None:
    service = an_inferenceservice(
        containerConcurrency=4,
        logger={"mode": "all"},
        canaryTrafficPercent=0,
        priorityClassName="serving-high",
    )
    service["spec"]["transformer"] = {"containers": [{"name": "t", "image": "x:1"}]}
    service["spec"]["predictor"]["model"]["args"] = ["--model-repository=/mnt/models", "--log-info"]
    outcome = converted(service)
    dropped = findings(outcome, Severity.DROPPED)
    assert set(dropped) >= {
        f"{PREDICTOR}.containerConcurrency",
        f"{PREDICTOR}.logger",
        f"{PREDICTOR}.canaryTrafficPercent",
        f"{PREDICTOR}.priorityClassName",
        "spec.transformer",
    }
    assert spec_of(outcome)["runtime"]["args"] == ["--log-info"]
    assert f"{PREDICTOR}.model.args[0]" in findings(outcome, Severity.CHANGED)


def test_an_unknown_api_version_of_inferenceservice_is_an_error() -> None:
    service = an_inferenceservice()
    service["apiVersion"] = "serving.kubeflow.org/v1alpha2"
    assert "InferenceService serving.kubeflow.org/v1alpha2 is not a version" in error_of(
        convert_one(service)
    )


def test_a_torchscript_model_is_an_error_naming_the_format() -> None:
    service = an_inferenceservice()
    service["spec"]["predictor"]["model"]["modelFormat"]["name"] = "pytorch"
    error = error_of(convert_one(service))
    assert f"{PREDICTOR}.model.modelFormat.name" in error and "inputs and outputs" in error


def test_knatives_default_target_is_written_out_when_none_is_given() -> None:
    outcome = converted(an_inferenceservice(maxReplicas=3, scaleMetric="concurrency"))
    autoscaling = spec_of(outcome)["autoscaling"]
    assert (autoscaling["metric"], autoscaling["target"]) == ("pendingRequests", 100)
    assert "default target" in findings(outcome, Severity.CHANGED)[f"{PREDICTOR}.scaleMetric"]
