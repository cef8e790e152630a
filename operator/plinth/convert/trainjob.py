"""Kubeflow Trainer TrainJob (trainer.kubeflow.org/v1alpha1) into a TrainingJob.

A TrainJob names a (Cluster)TrainingRuntime, a template published by an admin, and
overrides parts of it in `spec.trainer`. Plinth has no runtimes: the TrainingJob carries
the image and everything else itself. When the referenced runtime is among the inputs, its
trainer container (the `node` container of the `node` job) gives the defaults, as the
Trainer would apply them; `spec.trainer` then wins field by field. Pod settings from
`runtimePatches` (or the older `podTemplateOverrides`) aimed at the `node` job go into
`podTemplate`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from plinth.api.wellknown import Manifest
from plinth.convert.document import Inputs, kueue_queue
from plinth.convert.pods import (
    Workload,
    compute,
    env_list,
    main_container,
    merge_env,
    read_pod_metadata,
    read_pod_spec,
    volume_mount,
)
from plinth.convert.report import ConversionError, Severity
from plinth.convert.source import Source

KIND = "TrainJob"
API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIME_GROUP = "trainer.kubeflow.org"
CLUSTER_RUNTIME = "ClusterTrainingRuntime"
RUNTIME_KINDS = (CLUSTER_RUNTIME, "TrainingRuntime")
#: The runtime job and container that run the training program (Trainer's naming).
NODE = "node"
DEFAULT_MANAGER = "trainer.kubeflow.org/trainjob-controller"
OVERRIDE_KEYS = ("podTemplateOverrides", "podSpecOverrides")
MAX_PROCS = 128


def convert(document: Source, inputs: Inputs) -> Manifest:
    """The TrainingJob spec of a TrainJob document."""
    return training_spec(document, inputs)


def training_spec(document: Source, inputs: Inputs) -> Manifest:
    """The TrainingJob spec of a TrainJob (a document, or a Katib trial template)."""
    spec = document.require("spec")
    base = _runtime(spec.require("runtimeRef"), document, inputs)
    workload, nodes, procs = _trainer(spec.child("trainer"), base)
    if workload.image is None:
        spec.fail(
            "is required: neither spec.trainer nor a runtime among the inputs gives the "
            "image (add the runtime's YAML to the input, or set spec.trainer.image)",
            "trainer",
            "image",
        )
    _patches(spec, workload)
    _not_carried(spec)
    result: dict[str, Any] = {
        "image": workload.image,
        "command": workload.command,
        "args": workload.args,
        "env": workload.env,
        "nodes": nodes,
        "procsPerNode": procs,
        "resources": workload.resources,
        "activeDeadlineSeconds": spec.integer("activeDeadlineSeconds"),
        "suspend": spec.flag("suspend"),
        "queueName": kueue_queue(document),
        "podTemplate": workload.pod_template,
    }
    return {key: value for key, value in result.items() if value not in (None, {}, [])}


# --------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------


def _runtime(ref: Source, document: Source, inputs: Inputs) -> tuple[Workload, int | None]:
    """The trainer defaults of the referenced runtime, when it is among the inputs."""
    name = ref.text("name")
    kind = ref.text("kind") or CLUSTER_RUNTIME
    group = ref.text("apiGroup") or RUNTIME_GROUP
    if not name:
        ref.fail("is required", "name")
    if group != RUNTIME_GROUP or kind not in RUNTIME_KINDS:
        ref.fail(f"must refer to a {' or '.join(RUNTIME_KINDS)} of {RUNTIME_GROUP}")
    namespace = None if kind == CLUSTER_RUNTIME else _namespace(document)
    runtime = inputs.find(kind, name, namespace)
    if runtime is None:
        reason = (
            f"Plinth has no training runtimes, and {kind} {name!r} is not among the inputs: "
            "nothing is taken from it (add its YAML to the input to use its image, command "
            "and resources)"
        )
        ref.note(Severity.CHANGED, reason)
        return Workload(), None
    reason = (
        f"Plinth has no training runtimes: image, command, args, env, resources and node "
        f"count come from {kind} {name!r} (in the inputs); the rest of it (initializers, "
        "JobSet and pod settings) is not carried over"
    )
    ref.note(Severity.CHANGED, reason)
    try:
        return _runtime_defaults(Source.document(runtime))
    except ConversionError as error:
        raise ConversionError(ref.where(), f"{kind} {name!r}: {error}") from None


def _runtime_defaults(runtime: Source) -> tuple[Workload, int | None]:
    spec = runtime.require("spec")
    policy = spec.child("mlPolicy")
    if policy is not None:
        others = [key for key in policy.fields() if key not in ("numNodes", "torch")]
        if others:
            policy.fail(f"the {others[0]} policy is not PyTorch: Plinth runs torchrun only")
    nodes = policy.integer("numNodes") if policy else None
    workload = Workload()
    jobs = spec.require("template").require("spec").children("replicatedJobs")
    for job in jobs:
        if job.text("name") == NODE:
            pod = job.require("template").require("spec").require("template")
            container = main_container(pod.require("spec"), NODE, "none named node")
            workload.image = container.text("image")
            workload.command = container.texts("command")
            workload.args = container.texts("args")
            workload.env = env_list(container)
            workload.resources = compute(container.child("resources"))
    return workload, nodes


def _namespace(document: Source) -> str | None:
    metadata = document.value.get("metadata") or {}
    namespace = metadata.get("namespace")
    return str(namespace) if namespace else None


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


def _trainer(
    trainer: Source | None, base: tuple[Workload, int | None]
) -> tuple[Workload, int, int | None]:
    """spec.trainer over the runtime's defaults: the workload, nodes, processes per node."""
    workload, nodes = replace(base[0]), base[1]
    if trainer is None:
        return workload, nodes or 1, None
    workload.image = trainer.text("image") or workload.image
    workload.command = trainer.texts("command") or workload.command
    workload.args = trainer.texts("args") or workload.args
    workload.env = merge_env(workload.env, env_list(trainer))
    workload.resources = compute(trainer.child("resourcesPerNode")) or workload.resources
    nodes = trainer.integer("numNodes") or nodes or 1
    return workload, nodes, _procs_per_node(trainer, workload.resources)


def _procs_per_node(trainer: Source, resources: Manifest) -> int | None:
    """numProcPerNode; "auto" (or unset) on a node without GPUs is the node's CPU count,
    as the Trainer sets it, and Plinth's default (one per GPU) with GPUs."""
    value = trainer.raw("numProcPerNode")
    text = "auto" if value is None else str(value)
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text not in ("auto", "cpu", "gpu"):
        trainer.fail(f"must be auto or a number; got {value!r}", "numProcPerNode")
    if resources.get("gpus") or text == "gpu":
        return None
    cpus = _whole_cpus(resources.get("cpu"))
    return min(cpus, MAX_PROCS) if cpus > 1 else None


def _whole_cpus(quantity: Any) -> int:
    """A CPU quantity rounded up to whole CPUs (as Kubernetes' Quantity.Value() does)."""
    if quantity is None:
        return 0
    text = str(quantity)
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return 0
    return math.ceil(cores)


# --------------------------------------------------------------------------------------
# Pod settings from patches
# --------------------------------------------------------------------------------------


def _patches(spec: Source, workload: Workload) -> None:
    for patch in spec.children("runtimePatches"):
        patch.take("manager", "time")
        jobs = patch.under("trainingRuntimeSpec", "template", "spec")
        for job in jobs.children("replicatedJobs") if jobs else ():
            if _for_node(job, job.text("name")):
                _pod_patch(job.under("template", "spec", "template"), workload)
    for key in OVERRIDE_KEYS:
        for override in spec.children(key):
            targets = [target.text("name") for target in override.children("targetJobs")]
            if _for_node(override, NODE if NODE in targets else str(targets)):
                override.take("manager")
                _pod_patch(override, workload)


def _for_node(patch: Source, target: str | None) -> bool:
    if target == NODE:
        return True
    reason = f"patches the runtime's {target} job; Plinth runs the training nodes only"
    patch.note(Severity.DROPPED, reason)
    return False


def _pod_patch(pod: Source | None, workload: Workload) -> None:
    """Pod metadata and pod spec of a patch (or an override) aimed at the node job."""
    if pod is None:
        return
    read_pod_metadata(pod.child("metadata"), workload)
    pod_spec = pod.child("spec")
    if pod_spec is None:
        return
    read_pod_spec(pod_spec, workload)
    for container in pod_spec.children("containers"):
        if container.text("name") != NODE:
            reason = "patches a container Plinth does not run; only the node container is kept"
            container.note(Severity.DROPPED, reason)
            continue
        workload.env = merge_env(workload.env, env_list(container))
        mounts = [volume_mount(mount) for mount in container.children("volumeMounts")]
        if mounts:
            workload.pod_template["volumeMounts"] = mounts


def _not_carried(spec: Source) -> None:
    spec.dropped(
        "initializer",
        "Plinth has no dataset or model initializers: fetch them in the training code",
    )
    for key in ("labels", "annotations"):
        spec.dropped(key, "labels and annotations of the Trainer's JobSet; use podTemplate")
    if spec.text("managedBy") not in (None, DEFAULT_MANAGER):
        spec.note(Severity.DROPPED, "Plinth manages every TrainingJob itself", "managedBy")
