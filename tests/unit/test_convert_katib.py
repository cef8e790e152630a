"""`plinth convert` on Katib Experiments (kubeflow.org/v1beta1) into AutoMLSweeps.

The corpus has an Experiment over int, double (log-uniform), categorical and discrete
parameters with PyTorchJob trials and median stopping, and one with batch Job trials and
Katib's defaults left out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from plinth.api.v1alpha1 import parse_spec
from plinth.convert import InputFile, Severity
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

MNIST = "experiment-pytorchjob.yaml"
BATCH = "experiment-batchjob.yaml"
TRIAL_SPEC = "spec.trialTemplate.trialSpec"


def an_experiment() -> dict[str, Any]:
    """The corpus Experiment with batch Job trials."""
    return copy.deepcopy(corpus_document(BATCH))


def test_every_field_maps_for_int_double_categorical_and_discrete_parameters() -> None:
    outcome = outcome_of(convert_corpus(), MNIST)
    assert outcome.target == "AutoMLSweep/mnist-tpe"
    spec = spec_of(outcome)
    assert spec["objectives"] == [
        {"metric": "loss", "direction": "minimize", "goal": 0.05, "strategy": "min"}
    ]
    assert spec["algorithm"] == {"name": "tpe", "seed": 42}
    assert spec["earlyStopping"] == {"name": "median", "minSteps": 10, "startupTrials": 4}
    assert spec["parameters"] == [
        {"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "log": True},
        {"name": "hidden", "type": "int", "min": 64, "max": 512, "step": 64},
        {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam", "adamw"]},
        {"name": "batch_size", "type": "categorical", "values": [32, 64, 128]},
    ]
    assert spec["budget"] == {"maxTrials": 40, "parallelTrials": 4, "maxFailedTrials": 4}


def test_the_trial_template_is_a_trainingjob_with_plinth_placeholders() -> None:
    template = spec_of(outcome_of(convert_corpus(), MNIST))["trialTemplate"]
    assert template["command"] == [
        "python3",
        "/opt/pytorch-mnist/mnist.py",
        "--epochs=5",
        "--lr=${params.lr}",
        "--hidden=${params.hidden}",
        "--optimizer=${params.optimizer}",
        "--batch-size=${params.batch_size}",
        "--checkpoint-dir=/ckpt/${trial.name}",
    ]
    assert template["nodes"] == 2  # Master + Worker
    assert template["resources"] == {"gpus": 1, "cpu": "4", "memory": "16Gi"}
    assert "trialParameters" not in json.dumps(template)


def test_each_placeholder_rewrite_is_listed() -> None:
    changed = findings(outcome_of(convert_corpus(), MNIST), Severity.CHANGED)
    reason = changed["spec.trialTemplate.trialParameters[0].reference"]
    assert reason == "${trialParameters.learningRate} is written ${params.lr} in trialTemplate"
    assert "${trial.name}" in changed["spec.trialTemplate.trialParameters[4].reference"]
    assert "parameterType" in " ".join(changed)  # the discrete parameter
    assert "plinth_client" in changed["spec.metricsCollectorSpec"]


def test_katibs_defaults_are_kept_where_plinths_differ() -> None:
    spec = spec_of(outcome_of(convert_corpus(), BATCH))
    assert spec["objectives"] == [{"metric": "auc", "direction": "maximize", "strategy": "max"}]
    assert spec["budget"] == {"maxTrials": 20, "parallelTrials": 3, "maxFailedTrials": 20}
    assert spec["trialTemplate"]["nodes"] == 1
    assert spec["trialTemplate"]["restartPolicy"] == {"backoffLimit": 2}


def test_the_converted_sweeps_are_valid_sweeps() -> None:
    for name in (MNIST, BATCH):
        sweep = parse_spec("AutoMLSweep", spec_of(outcome_of(convert_corpus(), name)))
        assert sweep.trial_template.image


def test_a_latest_strategy_and_a_normal_distribution() -> None:
    experiment = an_experiment()
    experiment["spec"]["objective"]["metricStrategies"] = [{"name": "auc", "value": "latest"}]
    experiment["spec"]["parameters"][0]["feasibleSpace"]["distribution"] = "normal"
    outcome = converted(experiment)
    assert spec_of(outcome)["objectives"][0]["strategy"] == "latest"
    assert "uniformly" in findings(outcome)["spec.parameters[0].feasibleSpace.distribution"]


def test_a_parameter_name_plinth_cannot_take_is_renamed_everywhere() -> None:
    experiment = an_experiment()
    experiment["spec"]["parameters"][0]["name"] = "learning-rate"
    experiment["spec"]["trialTemplate"]["trialParameters"][0]["reference"] = "learning-rate"
    outcome = converted(experiment)
    assert spec_of(outcome)["parameters"][0]["name"] == "learning_rate"
    assert "--learning-rate=${params.learning_rate}" in spec_of(outcome)["trialTemplate"]["command"]
    assert "learning_rate" in findings(outcome)["spec.parameters[0].name"]


@pytest.mark.parametrize(
    ("algorithm", "settings", "expected"),
    [
        ("bayesianoptimization", [], {"name": "gp"}),
        ("sobol", [{"name": "random_state", "value": "7"}], {"name": "qmc", "seed": 7}),
        ("multivariate-tpe", [], {"name": "tpe"}),
        ("cmaes", [{"name": "sigma", "value": "0.2"}], {"name": "cmaes"}),
        ("pbt", [], {"name": "tpe"}),
    ],
)
def test_algorithms_map_onto_optuna_samplers(
    algorithm: str, settings: list[dict[str, str]], expected: dict[str, Any]
) -> None:
    experiment = an_experiment()
    experiment["spec"]["algorithm"] = {"algorithmName": algorithm, "algorithmSettings": settings}
    outcome = converted(experiment)
    assert spec_of(outcome)["algorithm"] == expected
    if algorithm == "pbt":
        assert (
            "no pbt algorithm"
            in findings(outcome, Severity.DROPPED)["spec.algorithm.algorithmName"]
        )
    if algorithm == "cmaes":
        assert "spec.algorithm.algorithmSettings[0]" in findings(outcome, Severity.DROPPED)


def test_hyperband_becomes_random_search_with_hyperband_stopping() -> None:
    experiment = an_experiment()
    experiment["spec"]["algorithm"] = {
        "algorithmName": "hyperband",
        "algorithmSettings": [
            {"name": "eta", "value": "3"},
            {"name": "r_l", "value": "27"},
            {"name": "resource_name", "value": "max_depth"},
        ],
    }
    outcome = converted(experiment)
    assert spec_of(outcome)["algorithm"] == {"name": "random"}
    assert spec_of(outcome)["earlyStopping"] == {
        "name": "hyperband",
        "reductionFactor": 3,
        "maxSteps": 27,
    }
    assert "spec.algorithm.algorithmSettings[2]" in findings(outcome, Severity.DROPPED)


def test_katib_collectors_other_than_stdout_are_dropped() -> None:
    experiment = an_experiment()
    experiment["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "TensorFlowEvent"}}
    reason = findings(converted(experiment), Severity.DROPPED)["spec.metricsCollectorSpec"]
    assert "TensorFlowEvent" in reason and "plinth_client" in reason


def test_an_unlimited_katib_experiment_gets_the_largest_budget_and_a_note() -> None:
    experiment = an_experiment()
    del experiment["spec"]["maxTrialCount"]
    outcome = converted(experiment)
    assert spec_of(outcome)["budget"]["maxTrials"] == 1000
    assert "spec.maxTrialCount" in findings(outcome, Severity.CHANGED)


def test_a_trial_template_in_a_configmap_among_the_inputs_is_read() -> None:
    experiment = an_experiment()
    template = experiment["spec"]["trialTemplate"].pop("trialSpec")
    experiment["spec"]["trialTemplate"]["configMap"] = {
        "configMapName": "trial-templates",
        "configMapNamespace": "tabular",
        "templatePath": "xgb.yaml",
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "trial-templates", "namespace": "tabular"},
        "data": {"xgb.yaml": yaml.safe_dump(template)},
    }
    outcome = converted(experiment, InputFile("cm.yaml", yaml.safe_dump(configmap)))
    assert spec_of(outcome)["trialTemplate"]["image"] == "ghcr.io/acme/tabular-train:3.0"
    assert "ConfigMap trial-templates" in findings(outcome)["spec.trialTemplate.configMap"]
    missing = error_of(convert_one(experiment))
    assert "spec.trialTemplate.configMap" in missing and "not among the inputs" in missing


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_a_placeholder_without_a_trial_parameter_is_an_error_naming_the_path() -> None:
    experiment = an_experiment()
    experiment["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] = ["--seed=${trialParameters.seed}"]
    error = error_of(convert_one(experiment))
    assert f"{TRIAL_SPEC}.spec.template.spec.containers[0].args[0]" in error
    assert "${trialParameters.seed} names no entry" in error


def test_a_trial_parameter_referring_to_no_parameter_is_an_error() -> None:
    experiment = an_experiment()
    experiment["spec"]["trialTemplate"]["trialParameters"][1]["reference"] = "depth"
    error = error_of(convert_one(experiment))
    assert "spec.trialTemplate.trialParameters[1].reference: names no parameter" in error


def test_a_trial_kind_plinth_cannot_run_is_an_error() -> None:
    experiment = an_experiment()
    experiment["spec"]["trialTemplate"]["trialSpec"]["apiVersion"] = "kubeflow.org/v1"
    experiment["spec"]["trialTemplate"]["trialSpec"]["kind"] = "TFJob"
    error = error_of(convert_one(experiment))
    assert f"{TRIAL_SPEC}: TFJob kubeflow.org/v1: Plinth trials are TrainingJobs" in error


def test_neural_architecture_search_is_an_error() -> None:
    experiment = an_experiment()
    experiment["spec"]["algorithm"] = {"algorithmName": "darts"}
    assert "neural architecture search" in error_of(convert_one(experiment))


def test_an_unknown_api_version_of_experiment_is_an_error() -> None:
    experiment = an_experiment()
    experiment["apiVersion"] = "kubeflow.org/v1alpha3"
    assert "Experiment kubeflow.org/v1alpha3 is not a version" in error_of(convert_one(experiment))
