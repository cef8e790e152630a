"""The invalid-input corpus of the API: specs, names and updates Plinth must refuse.

Two tiers run it: the unit tier against the Python twin (`parse_spec`), the integration tier
against a real API server with the generated CRDs installed. Each case says which field the
error must name and, when the case breaks a declared `Rule`, that rule's message, so that a
test tells a case that breaks its rule from one refused for some other reason.

`declared_spec_rules` and the kinds' transition and object rules enumerate every rule of the
API; the unit tier fails when one of them has no case here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from plinth.api.v1alpha1 import KINDS, ApiModel, Rule
from plinth.api.v1alpha1.env import RESERVED_ENV_MESSAGE
from plinth.api.v1alpha1.modeldeployment import MODEL_URI_MESSAGE

Spec = dict[str, Any]


# --------------------------------------------------------------------------------------
# Valid bases the cases change
# --------------------------------------------------------------------------------------


def training_job() -> Spec:
    """A minimal valid TrainingJob spec."""
    return {"image": "ghcr.io/acme/train:1", "nodes": 1, "resources": {"gpus": 1}}


def sweep() -> Spec:
    """A minimal valid AutoMLSweep spec: one objective, one float parameter."""
    return {
        "objectives": [{"metric": "loss", "direction": "minimize"}],
        "parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "log": True}],
        "budget": {"maxTrials": 4},
        "trialTemplate": training_job(),
    }


def deployment() -> Spec:
    """A minimal valid ModelDeployment spec."""
    return {"model": {"uri": "https://models.example/resnet.onnx", "format": "onnx"}}


BASES: dict[str, Callable[[], Spec]] = {
    "TrainingJob": training_job,
    "AutoMLSweep": sweep,
    "ModelDeployment": deployment,
}


def merged(base: Spec, changes: Spec) -> Spec:
    """`base` with `changes` merged in as a JSON merge patch does (None deletes a key)."""
    result = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


# --------------------------------------------------------------------------------------
# Case types
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidCase:
    """A valid base spec of `kind` with `changes` merged in, which must be refused.

    `field` is the path the error must name ("spec.resources.gpus"); `rule` the message of
    the cross-field rule the case breaks (None: a schema constraint refuses it). A rule
    without CEL is checked by the operator only: the API server accepts such a case.
    """

    id: str
    kind: str
    changes: Spec
    field: str
    rule: str | None = None
    server_refuses: bool = True

    def spec(self) -> Spec:
        return merged(BASES[self.kind](), self.changes)


@dataclass(frozen=True)
class InvalidName:
    """An object of `kind` (with its base spec) whose metadata.name breaks the kind's name
    rule: the API server refuses it, and so does `plinth render` (the rule's Python twin)."""

    id: str
    kind: str
    name: str
    rule: str
    field: str = "metadata.name"


@dataclass(frozen=True)
class InvalidUpdate:
    """A merge patch of the spec of a stored object (created from its base spec) that a
    transition rule refuses; only the API server sees the stored object."""

    id: str
    kind: str
    changes: Spec
    field: str
    rule: str


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------

TRAINING_JOB_SPECS = [
    InvalidCase("tj-no-image", "TrainingJob", {"image": None}, "spec.image"),
    InvalidCase("tj-unknown-field", "TrainingJob", {"gpus": 8}, "spec.gpus"),
    InvalidCase(
        "tj-nodes-and-elastic",
        "TrainingJob",
        {"elastic": {"minNodes": 1, "maxNodes": 2}},
        "spec",
        rule="set exactly one of nodes (a fixed count) or elastic (a node range)",
    ),
    InvalidCase(
        "tj-neither-nodes-nor-elastic",
        "TrainingJob",
        {"nodes": None},
        "spec",
        rule="set exactly one of nodes (a fixed count) or elastic (a node range)",
    ),
    InvalidCase("tj-zero-nodes", "TrainingJob", {"nodes": 0}, "spec.nodes"),
    InvalidCase(
        "tj-elastic-min-above-max",
        "TrainingJob",
        {"nodes": None, "elastic": {"minNodes": 4, "maxNodes": 2}},
        "spec.elastic.minNodes",
        rule="minNodes must be less than or equal to maxNodes",
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
        rule="gpuType needs gpus > 0",
    ),
    InvalidCase(
        "tj-more-procs-than-gpus",
        "TrainingJob",
        {"procsPerNode": 4, "resources": {"gpus": 2}},
        "spec.procsPerNode",
        rule="procsPerNode must not exceed resources.gpus (one process per GPU at most)",
    ),
    InvalidCase(
        "tj-reserved-env",
        "TrainingJob",
        {"env": [{"name": "RANK", "value": "0"}]},
        "spec.env",
        rule=RESERVED_ENV_MESSAGE,
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
        rule="set value or valueFrom, not both",
    ),
    InvalidCase(
        "tj-env-value-from-two-sources",
        "TrainingJob",
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "k"},
                        "fieldRef": {"fieldPath": "metadata.name"},
                    },
                }
            ]
        },
        "spec.env[0].valueFrom",
        rule="valueFrom needs exactly one of secretKeyRef, configMapKeyRef, fieldRef",
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
        rule="every volumeMounts[].name must name a volume in volumes",
    ),
    InvalidCase(
        "tj-reserved-label",
        "TrainingJob",
        {"podTemplate": {"labels": {"plinth.dev/job": "x"}}},
        "spec.podTemplate.labels",
        rule="labels must not use the plinth.dev/ prefix, which Plinth sets itself",
    ),
    InvalidCase(
        "tj-toleration-exists-with-value",
        "TrainingJob",
        {"podTemplate": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
        "spec.podTemplate.tolerations[0].value",
        rule="value must be unset when operator is Exists",
    ),
]

TWO_OBJECTIVES = [
    {"metric": "loss", "direction": "minimize"},
    {"metric": "latency", "direction": "minimize"},
]

SWEEP_SPECS = [
    InvalidCase("sweep-no-objectives", "AutoMLSweep", {"objectives": []}, "spec.objectives"),
    InvalidCase(
        "sweep-bad-direction",
        "AutoMLSweep",
        {"objectives": [{"metric": "loss", "direction": "down"}]},
        "spec.objectives[0].direction",
    ),
    InvalidCase(
        "sweep-goal-with-two-objectives",
        "AutoMLSweep",
        {"objectives": [{**TWO_OBJECTIVES[0], "goal": 0.1}, TWO_OBJECTIVES[1]]},
        "spec.objectives",
        rule="goal applies to a single objective only",
    ),
    InvalidCase(
        "sweep-bad-algorithm",
        "AutoMLSweep",
        {"algorithm": {"name": "bayes"}},
        "spec.algorithm.name",
    ),
    InvalidCase(
        "sweep-cmaes-two-objectives",
        "AutoMLSweep",
        {"objectives": TWO_OBJECTIVES, "algorithm": {"name": "cmaes"}},
        "spec.algorithm",
        rule="algorithm cmaes optimises a single objective",
    ),
    InvalidCase(
        "sweep-qmc-categorical",
        "AutoMLSweep",
        {
            "algorithm": {"name": "qmc"},
            "parameters": [{"name": "opt", "type": "categorical", "values": ["adam", "sgd"]}],
        },
        "spec.algorithm",
        rule="algorithms cmaes and qmc search float and int parameters only",
    ),
    InvalidCase(
        "sweep-min-above-max",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 1, "max": 0.1}]},
        "spec.parameters[0].min",
        rule="min must be less than or equal to max",
    ),
    InvalidCase(
        "sweep-float-without-range",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float"}]},
        "spec.parameters[0].min",
        rule="float and int parameters need min and max",
    ),
    InvalidCase(
        "sweep-categorical-without-values",
        "AutoMLSweep",
        {"parameters": [{"name": "opt", "type": "categorical"}]},
        "spec.parameters[0].values",
        rule="categorical parameters need values",
    ),
    InvalidCase(
        "sweep-categorical-with-range",
        "AutoMLSweep",
        {"parameters": [{"name": "opt", "type": "categorical", "values": ["adam"], "min": 1}]},
        "spec.parameters[0].type",
        rule="categorical parameters take values, not min, max, step or log",
    ),
    InvalidCase(
        "sweep-values-on-float",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 0, "max": 1, "values": [1]}]},
        "spec.parameters[0].values",
        rule="values applies to categorical parameters only; use min and max",
    ),
    InvalidCase(
        "sweep-log-from-zero",
        "AutoMLSweep",
        {"parameters": [{"name": "lr", "type": "float", "min": 0, "max": 1, "log": True}]},
        "spec.parameters[0].log",
        rule="log needs min > 0",
    ),
    InvalidCase(
        "sweep-log-and-step",
        "AutoMLSweep",
        {
            "parameters": [
                {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "log": True, "step": 0.01}
            ]
        },
        "spec.parameters[0].step",
        rule="set log or step, not both",
    ),
    InvalidCase(
        "sweep-int-with-fraction",
        "AutoMLSweep",
        {"parameters": [{"name": "layers", "type": "int", "min": 1.5, "max": 4}]},
        "spec.parameters[0].type",
        rule="min, max and step of an int parameter must be whole numbers",
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
        rule="algorithm grid needs a step on every float parameter",
    ),
    InvalidCase(
        "sweep-parallel-above-max",
        "AutoMLSweep",
        {"budget": {"maxTrials": 2, "parallelTrials": 4}},
        "spec.budget.parallelTrials",
        rule="parallelTrials must be less than or equal to maxTrials",
    ),
    InvalidCase("sweep-no-budget", "AutoMLSweep", {"budget": None}, "spec.budget"),
    InvalidCase(
        "sweep-pruning-two-objectives",
        "AutoMLSweep",
        {"objectives": TWO_OBJECTIVES, "earlyStopping": {"name": "asha"}},
        "spec.earlyStopping",
        rule="earlyStopping needs a single objective",
    ),
    InvalidCase(
        "sweep-settings-without-pruner",
        "AutoMLSweep",
        {"earlyStopping": {"name": "none", "minSteps": 5}},
        "spec.earlyStopping.name",
        rule="name none takes no settings",
    ),
    InvalidCase(
        "sweep-max-steps-without-hyperband",
        "AutoMLSweep",
        {"earlyStopping": {"name": "asha", "maxSteps": 100}},
        "spec.earlyStopping.maxSteps",
        rule="maxSteps applies to hyperband only",
    ),
    InvalidCase(
        "sweep-reduction-factor-for-median",
        "AutoMLSweep",
        {"earlyStopping": {"name": "median", "reductionFactor": 3}},
        "spec.earlyStopping.reductionFactor",
        rule="reductionFactor applies to asha and hyperband only",
    ),
    InvalidCase(
        "sweep-startup-trials-for-asha",
        "AutoMLSweep",
        {"earlyStopping": {"name": "asha", "startupTrials": 3}},
        "spec.earlyStopping.startupTrials",
        rule="startupTrials applies to median only",
    ),
    InvalidCase(
        "sweep-min-steps-above-max-steps",
        "AutoMLSweep",
        {"earlyStopping": {"name": "hyperband", "minSteps": 10, "maxSteps": 5}},
        "spec.earlyStopping.minSteps",
        rule="minSteps must be less than or equal to maxSteps",
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
        rule="warmStart.trials[].values may only name objective metrics",
    ),
    InvalidCase(
        # Parameter values have no single type, so CEL cannot see them: the operator
        # refuses this one (an InvalidSpec condition), the API server stores it.
        "sweep-warm-start-unknown-parameter",
        "AutoMLSweep",
        {"warmStart": {"trials": [{"parameters": {"momentum": 0.9}}]}},
        "spec.warmStart",
        rule="warmStart.trials[].parameters may only name parameters of the sweep",
        server_refuses=False,
    ),
    InvalidCase(
        # Placeholders sit anywhere in the template's strings: the operator refuses this.
        "sweep-template-refers-to-undeclared-parameter",
        "AutoMLSweep",
        {"trialTemplate": {"args": ["--lr=${params.lr}", "--momentum=${params.momentum}"]}},
        "spec.trialTemplate",
        rule=(
            "trialTemplate may only refer to declared parameters as ${params.<name>} "
            "and to the trial as ${trial.name} or ${trial.number}"
        ),
        server_refuses=False,
    ),
]

DEPLOYMENT_SPECS = [
    InvalidCase(
        "md-two-model-sources",
        "ModelDeployment",
        {"model": {"fromTrainingJob": {"name": "job"}}},
        "spec.model",
        rule="set exactly one of uri, fromTrainingJob or fromSweep",
    ),
    InvalidCase(
        "md-no-model-source",
        "ModelDeployment",
        {"model": {"uri": None}},
        "spec.model",
        rule="set exactly one of uri, fromTrainingJob or fromSweep",
    ),
    InvalidCase(
        "md-bad-format", "ModelDeployment", {"model": {"format": "pickle"}}, "spec.model.format"
    ),
    InvalidCase(
        "md-min-above-max-replicas",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
        rule="minReplicas must be less than or equal to maxReplicas",
    ),
    InvalidCase(
        "md-range-without-target",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 1, "maxReplicas": 4}},
        "spec.autoscaling.target",
        rule="target is required when maxReplicas > minReplicas",
    ),
    InvalidCase(
        "md-scale-to-zero",
        "ModelDeployment",
        {"autoscaling": {"minReplicas": 0, "maxReplicas": 2, "target": 5}},
        "spec.autoscaling.minReplicas",
        rule="minReplicas 0 (scale to zero) needs backend keda",
    ),
    InvalidCase(
        "md-unknown-uri-scheme",
        "ModelDeployment",
        {"model": {"uri": "ftp://models/resnet.onnx"}},
        "spec.model.uri",
        rule=MODEL_URI_MESSAGE,
    ),
    InvalidCase(
        "md-pytorch-without-tensors",
        "ModelDeployment",
        {"model": {"format": "pytorch"}},
        "spec.model.inputs",
        rule="format pytorch needs inputs and outputs: Triton cannot read them from a "
        "TorchScript file",
    ),
    InvalidCase(
        "md-keda-without-prometheus",
        "ModelDeployment",
        {"autoscaling": {"backend": "keda"}},
        "spec.autoscaling.prometheusAddress",
        rule="prometheusAddress is required with backend keda, and only used by it",
    ),
    InvalidCase(
        "md-gpu-metric-without-gpus",
        "ModelDeployment",
        {"autoscaling": {"metric": "gpuUtilization"}},
        "spec.autoscaling.metric",
        rule="metric gpuUtilization needs resources.gpus > 0",
    ),
    InvalidCase(
        "md-cpu-metric-without-cpu-request",
        "ModelDeployment",
        {"autoscaling": {"metric": "cpu", "backend": "hpa"}},
        "spec.autoscaling.metric",
        rule="metric cpu with backend hpa or keda needs resources.cpu (utilisation is "
        "measured against the request)",
    ),
    InvalidCase(
        "md-gpu-instances-without-gpus",
        "ModelDeployment",
        {"runtime": {"instanceGroups": [{"count": 2, "kind": "gpu"}]}},
        "spec.runtime.instanceGroups",
        rule="instanceGroups of kind gpu need resources.gpus > 0",
    ),
    InvalidCase(
        "md-canary-weight-over-100",
        "ModelDeployment",
        {"rollout": {"canary": {"steps": [{"weight": 150}]}}},
        "spec.rollout.canary.steps[0].weight",
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
        rule="dynamicBatching needs maxBatchSize > 0",
    ),
    InvalidCase(
        "md-preferred-batch-too-big",
        "ModelDeployment",
        {"runtime": {"maxBatchSize": 8, "dynamicBatching": {"preferredBatchSizes": [16]}}},
        "spec.runtime.dynamicBatching.preferredBatchSizes",
        rule="dynamicBatching.preferredBatchSizes must lie between 1 and maxBatchSize",
    ),
    InvalidCase(
        "md-canary-weights-decreasing",
        "ModelDeployment",
        {"rollout": {"canary": {"steps": [{"weight": 50}, {"weight": 10}]}}},
        "spec.rollout.canary.steps",
        rule="steps must have increasing weights",
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

INVALID_SPECS = [*TRAINING_JOB_SPECS, *SWEEP_SPECS, *DEPLOYMENT_SPECS]


# --------------------------------------------------------------------------------------
# Names and updates (API server only)
# --------------------------------------------------------------------------------------

NAME_RULE = (
    "metadata.name must be at most {length} characters of lowercase letters, digits and '-', "
    "starting with a letter ({reason})"
)

INVALID_NAMES = [
    InvalidName(
        "tj-name-too-long",
        "TrainingJob",
        "a" * 49,
        NAME_RULE.format(length=48, reason="it names the job's Service and pods"),
    ),
    InvalidName(
        "tj-name-with-a-dot",
        "TrainingJob",
        "llm.v2",
        NAME_RULE.format(length=48, reason="it names the job's Service and pods"),
    ),
    InvalidName(
        "tj-name-starts-with-digit",
        "TrainingJob",
        "7b-llm",
        NAME_RULE.format(length=48, reason="it names the job's Service and pods"),
    ),
    InvalidName(
        "sweep-name-too-long",
        "AutoMLSweep",
        "a" * 41,
        NAME_RULE.format(length=40, reason="trials are named <sweep>-<number>"),
    ),
    InvalidName(
        "md-name-starts-with-digit",
        "ModelDeployment",
        "1-resnet",
        NAME_RULE.format(length=48, reason="it names the deployment's Service and pods"),
    ),
]


def _immutable(kind: str, field: str, changes: Spec) -> InvalidUpdate:
    return InvalidUpdate(
        f"{kind.lower()}-change-{field}",
        kind,
        changes,
        f"spec.{field}",
        f"{field} is immutable: create a new object to change it",
    )


INVALID_UPDATES = [
    _immutable("TrainingJob", "image", {"image": "ghcr.io/acme/train:2"}),
    _immutable("TrainingJob", "command", {"command": ["python", "train.py"]}),
    _immutable("TrainingJob", "args", {"args": ["--steps=10"]}),
    _immutable("TrainingJob", "env", {"env": [{"name": "A", "value": "1"}]}),
    _immutable("TrainingJob", "nodes", {"nodes": 2}),
    _immutable(
        "TrainingJob", "elastic", {"nodes": None, "elastic": {"minNodes": 1, "maxNodes": 2}}
    ),
    _immutable("TrainingJob", "procsPerNode", {"procsPerNode": 1}),
    _immutable("TrainingJob", "resources", {"resources": {"gpus": 2}}),
    _immutable("TrainingJob", "checkpoint", {"checkpoint": {"uri": "s3://team/llm"}}),
    _immutable(
        "AutoMLSweep", "objectives", {"objectives": [{"metric": "loss", "direction": "maximize"}]}
    ),
    _immutable("AutoMLSweep", "algorithm", {"algorithm": {"name": "random"}}),
    _immutable("AutoMLSweep", "earlyStopping", {"earlyStopping": {"name": "median"}}),
    _immutable(
        "AutoMLSweep",
        "parameters",
        {"parameters": [{"name": "lr", "type": "float", "min": 0.0001, "max": 0.5, "log": True}]},
    ),
    _immutable("AutoMLSweep", "trialTemplate", {"trialTemplate": {"image": "ghcr.io/acme/x:2"}}),
    _immutable(
        "AutoMLSweep", "warmStart", {"warmStart": {"trials": [{"parameters": {"lr": 0.01}}]}}
    ),
]


# --------------------------------------------------------------------------------------
# The rules the API declares
# --------------------------------------------------------------------------------------


def reachable_models(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """`model` and every model reachable from its fields, each once."""
    seen: set[type[BaseModel]] = set()
    pending = [model]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for field in current.model_fields.values():
            pending.extend(_models_in(field.annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()):
        found.extend(_models_in(argument))
    return found


def api_models() -> list[type[BaseModel]]:
    """Every model of every kind's spec and status, by name."""
    models = {
        model
        for info in KINDS.values()
        for root in (info.spec_model, info.status_model)
        for model in reachable_models(root)
    }
    return sorted(models, key=lambda m: m.__name__)


def declared_spec_rules() -> list[tuple[type[ApiModel], Rule[Any]]]:
    """Every cross-field rule of every model a spec is made of, with its model."""
    return [
        (model, rule)
        for model in api_models()
        if issubclass(model, ApiModel)
        for rule in model.cross_field_rules()
    ]
