"""Katib Experiment (kubeflow.org/v1beta1) into an AutoMLSweep.

The objective, algorithm, early stopping, search space and trial counts map onto the
sweep's objectives, algorithm, earlyStopping, parameters and budget, keeping Katib's
behaviour where the two differ in defaults (three trials in parallel, a trial's best value
as its result). The trial template (a PyTorchJob, a TrainJob or a batch Job, inline or in
a ConfigMap among the inputs) becomes `trialTemplate`, a TrainingJob spec, with Katib's
`${trialParameters.x}` placeholders rewritten to Plinth's `${params.<parameter>}` and
`${trial.name}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    PARAMETER_PLACEHOLDER,
    TRIAL_NAME_PLACEHOLDER,
)
from plinth.api.wellknown import LABEL_KUEUE_QUEUE_NAME, Manifest
from plinth.convert import pytorchjob, trainjob
from plinth.convert.document import Inputs
from plinth.convert.pods import (
    Workload,
    main_container,
    read_container,
    read_pod_metadata,
    read_pod_spec,
)
from plinth.convert.report import ConversionError, Path, Severity, format_path
from plinth.convert.source import Source

KIND = "Experiment"
API_VERSION_KATIB = "kubeflow.org/v1beta1"
#: Katib's defaults, kept where Plinth's differ.
KATIB_PARALLEL_TRIALS = 3
MEDIAN_STARTUP_TRIALS = 3
MEDIAN_START_STEP = 4
#: Bounds of the sweep's budget.
MAX_TRIALS = 1000
MAX_PARALLEL = 100
MAX_STARTUP_TRIALS = 100
REDUCTION_FACTOR_BOUNDS = (2, 10)

PARAMETER_TYPES = {
    "double": "float",
    "int": "int",
    "categorical": "categorical",
    "discrete": "categorical",
}
ALGORITHMS = {
    "random": "random",
    "grid": "grid",
    "tpe": "tpe",
    "multivariate-tpe": "tpe",
    "cmaes": "cmaes",
    "sobol": "qmc",
    "bayesianoptimization": "gp",
    "hyperband": "random",
}
ALGORITHM_CHANGES = {
    "multivariate-tpe": "Plinth's tpe samples each parameter on its own (not multivariate)",
    "bayesianoptimization": "Katib's scikit-optimize Gaussian process becomes Optuna's GP sampler",
    "hyperband": "Katib's hyperband becomes random sampling with hyperband early stopping "
    "on the steps trials report",
}
NAS_ALGORITHMS = ("enas", "darts")
METRICS_REPORTING = (
    "Katib read the metrics from the trials' output (or its SDK); Plinth trials report them "
    "with plinth_client.MetricsReporter.from_environment().report(step, {...}): make the "
    "training code report the objective metric"
)
TRIAL_PARAMETER = re.compile(r"\$\{trialParameters\.(.+?)\}")
TRIAL_METADATA = re.compile(r"^\$\{trialSpec\.(.+?)\}$")
METADATA_INDEX = re.compile(r"^(Labels|Annotations)\[(.+)\]$")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def convert(document: Source, inputs: Inputs) -> Manifest:
    """The AutoMLSweep spec of an Experiment document."""
    spec = document.require("spec")
    namespace = (document.value.get("metadata") or {}).get("namespace")
    parameters, names = _parameters(spec)
    algorithm, hyperband = _algorithm(spec.require("algorithm"))
    template = spec.require("trialTemplate")
    result = {
        "objectives": [_objective(spec.require("objective"))],
        "algorithm": algorithm,
        "earlyStopping": _early_stopping(spec.child("earlyStopping")) or hyperband,
        "parameters": parameters,
        "budget": _budget(spec),
        "trialTemplate": _trial_template(template, names, namespace, inputs),
    }
    _not_carried(spec)
    return {key: value for key, value in result.items() if value}


# --------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------


def _parameters(spec: Source) -> tuple[list[Manifest], dict[str, str]]:
    """Plinth's parameters, and each Katib name's Plinth name."""
    items = spec.children("parameters")
    if not items:
        spec.fail(
            "needs at least one parameter (neural architecture search is not offered)", "parameters"
        )
    parameters = [_parameter(item) for item in items]
    names = {
        str(item.value["name"]): str(parameter["name"])
        for item, parameter in zip(items, parameters, strict=True)
    }
    return parameters, names


def _parameter(item: Source) -> Manifest:
    name = item.text("name")
    if not name:
        item.fail("is required", "name")
    kind = item.text("parameterType") or ""
    if kind not in PARAMETER_TYPES:
        item.fail("must be double, int, discrete or categorical", "parameterType")
    space = item.require("feasibleSpace")
    parameter: Manifest = {"name": _plinth_name(item, name), "type": PARAMETER_TYPES[kind]}
    if kind == "discrete":
        reason = "discrete values become categorical choices (unordered to the optimiser)"
        item.note(Severity.CHANGED, reason, "parameterType")
    if PARAMETER_TYPES[kind] == "categorical":
        return parameter | _choices(space, kind)
    return parameter | _range(space, integer=kind == "int")


def _plinth_name(item: Source, name: str) -> str:
    if PARAMETER_NAME.match(name):
        return name
    plinth_name = re.sub(r"\W", "_", name)
    plinth_name = plinth_name if PARAMETER_NAME.match(plinth_name) else f"_{plinth_name}"
    reason = f"Plinth parameter names are identifiers: {plinth_name}"
    item.note(Severity.CHANGED, reason, "name")
    return plinth_name


def _choices(space: Source, kind: str) -> Manifest:
    values = space.raw("list")
    if not isinstance(values, list) or not values:
        space.fail("needs a list of values", "list")
    if kind == "categorical":
        return {"values": [str(value) for value in values]}
    return {"values": [_discrete(space, value) for value in values]}


def _discrete(space: Source, value: Any) -> int | str:
    """A discrete value: an integer, or a number kept as its text (choices are int or str)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        space.fail(f"discrete values must be numbers; got {value!r}", "list")
    return int(number) if number.is_integer() and "." not in text else text


def _range(space: Source, *, integer: bool) -> Manifest:
    convert: Callable[[float], float | int] = int if integer else float
    low, high = space.number("min"), space.number("max")
    if low is None or high is None:
        space.fail("needs min and max", "min" if low is None else "max")
    result: Manifest = {"min": convert(low), "max": convert(high)}
    step = space.number("step")
    distribution = space.text("distribution") or "uniform"
    if distribution in ("logUniform", "logNormal"):
        result["log"] = True
        space.changed("step", "Plinth samples on a log scale or in steps, not both: no step")
    elif step is not None:
        result["step"] = convert(step)
    if distribution in ("normal", "logNormal"):
        reason = "Plinth samples uniformly (or log-uniformly) between min and max"
        space.note(Severity.CHANGED, reason, "distribution")
    elif distribution not in ("uniform", "logUniform"):
        space.fail("must be uniform, logUniform, normal or logNormal", "distribution")
    return result


# --------------------------------------------------------------------------------------
# Objective, algorithm, early stopping, budget
# --------------------------------------------------------------------------------------


def _objective(objective: Source) -> Manifest:
    direction = objective.text("type")
    if direction not in ("minimize", "maximize"):
        objective.fail("must be minimize or maximize", "type")
    metric = objective.text("objectiveMetricName")
    if not metric:
        objective.fail("is required", "objectiveMetricName")
    result: Manifest = {"metric": metric, "direction": direction}
    goal = objective.number("goal")
    if goal is not None:
        result["goal"] = goal
    result["strategy"] = _strategy(objective, metric, direction)
    objective.changed(
        "additionalMetricNames",
        "Plinth keeps every metric a trial reports in its TrainingJob's status; only the "
        "objective is optimised",
    )
    return result


def _strategy(objective: Source, metric: str, direction: str) -> str:
    """min, max or latest: which of a trial's reported values is its result (Katib's
    default: the lowest when minimising, the highest when maximising)."""
    chosen = "min" if direction == "minimize" else "max"
    for item in objective.children("metricStrategies"):
        name, value = item.text("name"), item.text("value")
        if name != metric:
            reason = "Plinth keeps the latest, lowest and highest value of every metric"
            item.note(Severity.CHANGED, reason)
        elif value is not None:
            chosen = value
    if chosen not in ("min", "max", "latest"):
        objective.fail("strategies must be min, max or latest", "metricStrategies")
    return chosen


def _algorithm(algorithm: Source) -> tuple[Manifest, Manifest | None]:
    """The sampler, and for Katib's hyperband the early stopping that stands for it."""
    name = algorithm.text("algorithmName") or ""
    if name in NAS_ALGORITHMS:
        algorithm.fail(f"{name}: neural architecture search is not offered", "algorithmName")
    plinth = ALGORITHMS.get(name)
    if plinth is None:
        reason = f"Plinth has no {name or 'unnamed'} algorithm: tpe is used"
        algorithm.note(Severity.DROPPED, reason, "algorithmName")
    elif name in ALGORITHM_CHANGES:
        algorithm.note(Severity.CHANGED, ALGORITHM_CHANGES[name], "algorithmName")
    result: Manifest = {"name": plinth or "tpe"}
    hyperband: Manifest | None = {"name": "hyperband"} if name == "hyperband" else None
    for setting in algorithm.children("algorithmSettings"):
        _setting(setting, result, hyperband)
    return result, hyperband


def _setting(setting: Source, algorithm: Manifest, hyperband: Manifest | None) -> None:
    name = setting.text("name")
    setting.take("value")
    value = str(setting.value.get("value", ""))
    if name == "random_state" and value.isdigit():
        algorithm["seed"] = int(value)
    elif hyperband is not None and name == "eta":
        low, high = REDUCTION_FACTOR_BOUNDS
        hyperband["reductionFactor"] = min(max(int(float(value)), low), high)
    elif hyperband is not None and name == "r_l":
        hyperband["maxSteps"] = max(int(float(value)), 1)
    elif hyperband is not None and name == "resource_name":
        reason = (
            "Katib's hyperband sets this parameter as each trial's budget; Plinth searches "
            "it like the others and stops trials on the steps they report"
        )
        setting.note(Severity.DROPPED, reason)
    else:
        reason = f"Plinth's {algorithm['name']} sampler takes a seed (random_state) only"
        setting.note(Severity.DROPPED, reason)


def _early_stopping(early: Source | None) -> Manifest | None:
    if early is None:
        return None
    name = early.text("algorithmName")
    if name != "medianstop":
        reason = f"Plinth stops trials early with median, asha or hyperband; not {name}"
        early.note(Severity.DROPPED, reason, "algorithmName")
        return None
    settings = {"startupTrials": MEDIAN_STARTUP_TRIALS, "minSteps": MEDIAN_START_STEP}
    for setting in early.children("algorithmSettings"):
        _median_setting(setting, settings)
    return {"name": "median", **settings}


def _median_setting(setting: Source, settings: Manifest) -> None:
    name = setting.text("name")
    value = setting.integer("value")
    if name == "min_trials_required" and value is not None:
        settings["startupTrials"] = min(max(value, 0), MAX_STARTUP_TRIALS)
    elif name == "start_step" and value is not None:
        settings["minSteps"] = max(value, 1)
        reason = "Katib counts reported values; Plinth counts the steps the trials report"
        setting.note(Severity.CHANGED, reason)
    else:
        setting.note(Severity.DROPPED, "median stopping takes min_trials_required, start_step")


def _budget(spec: Source) -> Manifest:
    trials = spec.integer("maxTrialCount")
    if trials is None:
        reason = f"Katib runs trials without a limit; a Plinth sweep needs one: {MAX_TRIALS}"
        spec.note(Severity.CHANGED, reason, "maxTrialCount")
    trials = min(max(trials or MAX_TRIALS, 1), MAX_TRIALS)
    parallel = spec.integer("parallelTrialCount") or KATIB_PARALLEL_TRIALS
    budget: Manifest = {
        "maxTrials": trials,
        "parallelTrials": min(max(parallel, 1), trials, MAX_PARALLEL),
    }
    failed = spec.integer("maxFailedTrialCount")
    budget["maxFailedTrials"] = trials if failed is None else max(failed - 1, 0)
    if failed is not None:
        reason = (
            f"Katib fails at {failed} failed trials; Plinth fails past maxFailedTrials: "
            f"{budget['maxFailedTrials']}"
        )
        spec.note(Severity.CHANGED, reason, "maxFailedTrialCount")
    return budget


def _not_carried(spec: Source) -> None:
    collector = spec.child("metricsCollectorSpec")
    kind = (collector.value.get("collector") or {}).get("kind") if collector else None
    if kind in (None, "StdOut", "Push"):
        spec.note(Severity.CHANGED, METRICS_REPORTING, "metricsCollectorSpec")
    else:
        reason = f"Katib's {kind} metrics collector has no equivalent. {METRICS_REPORTING}"
        spec.note(Severity.DROPPED, reason, "metricsCollectorSpec")
    spec.dropped("nasConfig", "neural architecture search is not offered")
    spec.changed(
        "resumePolicy",
        "a sweep keeps its state in its status: raise budget.maxTrials to add trials later",
    )


# --------------------------------------------------------------------------------------
# Trial template
# --------------------------------------------------------------------------------------


def _trial_template(
    template: Source, names: dict[str, str], namespace: str | None, inputs: Inputs
) -> Manifest:
    _template_from_configmap(template, inputs)
    trial = template.require("trialSpec")
    placeholders = _placeholders(template, names, namespace, trial)
    _rewrite(trial.value, trial.path, placeholders)
    if template.flag("retain") is False:
        reason = "Plinth keeps trial TrainingJobs (set trialTemplate.ttlSecondsAfterFinished)"
        template.note(Severity.CHANGED, reason, "retain")
    template.changed("primaryPodLabels", "Plinth needs no labels to find a trial's pods")
    for key in ("successCondition", "failureCondition"):
        template.changed(key, "Plinth reads the trial TrainingJob's own conditions")
    return _trial_spec(trial, template.text("primaryContainerName"), inputs)


def _template_from_configmap(template: Source, inputs: Inputs) -> None:
    """A trial template kept in a ConfigMap among the inputs is read in as trialSpec."""
    source = template.child("configMap")
    if source is None:
        return
    name, key = source.text("configMapName"), source.text("templatePath")
    namespace = source.text("configMapNamespace")
    configmap = inputs.find("ConfigMap", name or "", namespace)
    text = ((configmap or {}).get("data") or {}).get(key)
    if not isinstance(text, str):
        source.fail(
            f"ConfigMap {namespace}/{name} with key {key} is not among the inputs: add it, "
            "or write the template inline as trialSpec"
        )
    try:
        template.value["trialSpec"] = yaml.safe_load(text)
    except yaml.YAMLError as error:
        source.fail(f"the template in ConfigMap {name} key {key} is not valid YAML: {error}")
    reason = (
        f"the template is read from ConfigMap {name} key {key}; the paths "
        f"{template.where('trialSpec')}... refer to it"
    )
    source.note(Severity.CHANGED, reason)


def _placeholders(
    template: Source, names: dict[str, str], namespace: str | None, trial: Source
) -> dict[str, str]:
    """Each Katib placeholder of the template and what Plinth writes instead."""
    placeholders: dict[str, str] = {}
    items = template.children("trialParameters")
    for item in items:
        name, reference = item.text("name"), item.text("reference")
        if not name or not reference:
            item.fail("needs name and reference")
        written = _meaning(item, reference, names, namespace, trial)
        placeholders[f"${{trialParameters.{name}}}"] = written
        reason = f"${{trialParameters.{name}}} is written {written} in trialTemplate"
        item.note(Severity.CHANGED, reason, "reference")
        item.take("description")
    return placeholders


def _meaning(
    item: Source, reference: str, names: dict[str, str], namespace: str | None, trial: Source
) -> str:
    metadata = TRIAL_METADATA.match(reference)
    if metadata is None:
        if reference not in names:
            item.fail("names no parameter in spec.parameters", "reference")
        return PARAMETER_PLACEHOLDER.format(name=names[reference])
    key = metadata.group(1)
    fixed = {
        "Name": TRIAL_NAME_PLACEHOLDER,
        "Namespace": namespace,
        "Kind": "TrainingJob",
        "APIVersion": f"{API_GROUP}/{API_VERSION}",
    }
    if fixed.get(key):
        return str(fixed[key])
    indexed = METADATA_INDEX.match(key)
    trial_metadata = trial.value.get("metadata") or {}
    values = trial_metadata.get(indexed.group(1).lower()) or {} if indexed else {}
    if indexed is None or indexed.group(2) not in values:
        item.fail(
            f"{reference} cannot be resolved (set metadata.namespace for Namespace)", "reference"
        )
    return str(values[indexed.group(2)])


def _rewrite(value: Any, path: Path, placeholders: dict[str, str]) -> Any:
    """Katib's placeholders replaced in every string under `value` (in place)."""
    if isinstance(value, str):
        return TRIAL_PARAMETER.sub(lambda match: _written(match, path, placeholders), value)
    if isinstance(value, dict):
        for key in value:
            value[key] = _rewrite(value[key], (*path, key), placeholders)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _rewrite(item, (*path, index), placeholders)
    return value


def _written(match: re.Match[str], path: Path, placeholders: dict[str, str]) -> str:
    if match.group(0) not in placeholders:
        raise ConversionError(
            format_path(path),
            f"{match.group(0)} names no entry of spec.trialTemplate.trialParameters",
        )
    return placeholders[match.group(0)]


def _trial_spec(trial: Source, primary: str | None, inputs: Inputs) -> Manifest:
    """The TrainingJob spec of the trial template, by its kind."""
    api_version, kind = trial.text("apiVersion"), trial.text("kind")
    _trial_metadata(trial)
    if (api_version, kind) == (pytorchjob.API_VERSION, pytorchjob.KIND):
        return pytorchjob.training_spec(trial)
    if (api_version, kind) == (trainjob.API_VERSION, trainjob.KIND):
        return trainjob.training_spec(trial, inputs)
    if (api_version, kind) == ("batch/v1", "Job"):
        return _batch_job(trial, primary)
    return trial.fail(
        f"{kind} {api_version}: Plinth trials are TrainingJobs, converted from a PyTorchJob "
        f"({pytorchjob.API_VERSION}), a TrainJob ({trainjob.API_VERSION}) or a batch/v1 Job"
    )


def _trial_metadata(trial: Source) -> None:
    """Katib names the trial's object itself; its labels other than Kueue's queue go."""
    metadata = trial.child("metadata")
    if metadata is None:
        return
    metadata.take("name", "namespace")
    labels = metadata.child("labels")
    if labels is not None:
        for key in labels.fields():
            if key == LABEL_KUEUE_QUEUE_NAME:
                labels.take(key)
            else:
                labels.note(Severity.DROPPED, "the sweep labels its trial TrainingJobs itself", key)
    metadata.dropped("annotations", "trial TrainingJobs carry no annotations of their own")


def _batch_job(trial: Source, primary: str | None) -> Manifest:
    """One node running the Job's primary container."""
    spec = trial.require("spec")
    template = spec.require("template")
    pod_spec = template.require("spec")
    how = "trialTemplate.primaryContainerName names none of them"
    workload = Workload()
    read_container(main_container(pod_spec, primary, how), workload)
    read_pod_spec(pod_spec, workload)
    read_pod_metadata(template.child("metadata"), workload)
    reason = "Plinth restarts a failed trial's pod up to restartPolicy.backoffLimit times"
    pod_spec.changed("restartPolicy", reason)
    for key in ("completions", "parallelism"):
        if (spec.integer(key) or 1) > 1:
            spec.note(Severity.DROPPED, "a trial is one program on one node here", key)
    backoff = spec.integer("backoffLimit")
    result = {
        "image": workload.image,
        "command": workload.command,
        "args": workload.args,
        "env": workload.env,
        "nodes": 1,
        "resources": workload.resources,
        "restartPolicy": {"backoffLimit": min(backoff, 100)} if backoff is not None else None,
        "activeDeadlineSeconds": spec.integer("activeDeadlineSeconds"),
        "ttlSecondsAfterFinished": spec.integer("ttlSecondsAfterFinished"),
        "suspend": spec.flag("suspend"),
        "priorityClassName": workload.priority_class_name,
        "podTemplate": workload.pod_template,
    }
    return {key: value for key, value in result.items() if value not in (None, {}, [])}
