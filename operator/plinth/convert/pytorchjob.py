"""Kubeflow PyTorchJob (kubeflow.org/v1) into a TrainingJob.

torchrun semantics carry over: a Master (1) and Worker (N) replica set is a gang of N+1
nodes (the Master is node rank 0, as in Kubeflow); `nprocPerNode` is `procsPerNode`
("auto" and "gpu" are Plinth's default of one process per GPU); `elasticPolicy` is
`elastic` (minNodes, maxNodes, maxRestarts); `runPolicy` maps onto the TrainingJob's
deadline, TTL, suspension, restart budget, queue and gang timeout. The pod template of the
Workers (or of the Master alone) gives image, command, environment, compute and the
`podTemplate` escape hatch; its main container is the one named `pytorch`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from plinth.api.wellknown import Manifest
from plinth.convert.document import Inputs, kueue_queue
from plinth.convert.pods import (
    Workload,
    main_container,
    read_container,
    read_pod_metadata,
    read_pod_spec,
)
from plinth.convert.report import Severity
from plinth.convert.source import Source

KIND = "PyTorchJob"
API_VERSION = "kubeflow.org/v1"
MAIN_CONTAINER = "pytorch"
#: The port Kubeflow adds to the main container for the Master's address.
KUBEFLOW_PORT_NAME = "pytorchjob-port"
MASTER, WORKER = "Master", "Worker"
#: Bounds of the TrainingJob fields some source values are clamped into.
MAX_BACKOFF = 100
MAX_ELASTIC_RESTARTS = 100
SCHEDULE_TIMEOUT_BOUNDS = (10, 86400)
#: The TrainingJob field each part of a replica template becomes.
PLINTH_NAMES = {"pod_template": "podTemplate", "priority_class_name": "priorityClassName"}

NO_MAIN = (
    f"none named {MAIN_CONTAINER!r}: Kubeflow runs the container named {MAIN_CONTAINER} as "
    "the training program; name yours so"
)
GANG_RESTART = (
    "Kubeflow restarts a failed container in place; Plinth restarts the whole gang from the "
    "last checkpoint, up to restartPolicy.backoffLimit times"
)


def convert(document: Source, inputs: Inputs) -> Manifest:
    """The TrainingJob spec of a PyTorchJob document."""
    return training_spec(document)


def training_spec(document: Source) -> Manifest:
    """The TrainingJob spec of a PyTorchJob (a document, or a Katib trial template)."""
    spec = document.require("spec")
    roles = _roles(spec.require("pytorchReplicaSpecs"))
    workload = _workload(roles)
    result: dict[str, Any] = {
        "image": workload.image,
        "command": workload.command,
        "args": workload.args,
        "env": workload.env,
        "resources": workload.resources,
        "priorityClassName": workload.priority_class_name,
        "podTemplate": workload.pod_template,
    }
    _topology(spec, roles, result)
    _restart_policy(spec, roles, result)
    _run_policy(spec.child("runPolicy"), result, _node_count(result))
    result["queueName"] = kueue_queue(document) or result.get("queueName")
    return {key: value for key, value in result.items() if value not in (None, {}, [])}


# --------------------------------------------------------------------------------------
# Replicas and their template
# --------------------------------------------------------------------------------------


def _roles(replica_specs: Source) -> dict[str, Source]:
    """Master and Worker replica specs (Kubeflow accepts the role names in any case)."""
    roles: dict[str, Source] = {}
    for key in replica_specs.fields():
        role = key.capitalize()
        if role not in (MASTER, WORKER):
            replica_specs.fail("must be Master or Worker (the PyTorchJob roles)", key)
        roles[role] = replica_specs.require(key)
    if not roles:
        replica_specs.fail("needs a Master or a Worker replica spec")
    master = roles.get(MASTER)
    if master is not None and (master.integer("replicas") or 1) != 1:
        master.fail("must be 1: a PyTorchJob has one Master", "replicas")
    return roles


def _replica_count(roles: dict[str, Source], role: str) -> int:
    replica = roles.get(role)
    if replica is None:
        return 0
    count = replica.integer("replicas")
    if count is not None and count < 1:
        replica.fail("must be at least 1", "replicas")
    return 1 if count is None else count


def _workload(roles: dict[str, Source]) -> Workload:
    """The Worker template (or the Master's alone): Plinth runs one template on every
    node, so a Master template that differs is noted field by field."""
    main = roles.get(WORKER) or roles[MASTER]
    workload = replica_workload(main)
    master = roles.get(MASTER)
    if master is not None and master is not main:
        master_workload = replica_workload(master)
        for name, value in asdict(master_workload).items():
            if value != getattr(workload, name):
                reason = (
                    f"the Master's template sets {PLINTH_NAMES.get(name, name)} differently from "
                    "the Worker's; Plinth runs the Worker template on every node"
                )
                master.note(Severity.DROPPED, reason, "template", mark=False)
    return workload


def replica_workload(replica: Source) -> Workload:
    """Image, command, environment, compute and pod settings of one replica template."""
    template = replica.require("template")
    pod_spec = template.require("spec")
    container = main_container(pod_spec, MAIN_CONTAINER, NO_MAIN)
    workload = Workload()
    read_container(container, workload)
    if workload.image is None:
        container.fail("is required", "image")
    _ports(container)
    read_pod_spec(pod_spec, workload)
    read_pod_metadata(template.child("metadata"), workload)
    pod_spec.changed(
        "schedulerName", "Plinth places the gang itself: no Volcano or other scheduler needed"
    )
    pod_spec.changed("restartPolicy", GANG_RESTART)
    return workload


def _ports(container: Source) -> None:
    for port in container.children("ports"):
        if port.value.get("name") == KUBEFLOW_PORT_NAME:
            reason = "Plinth wires the rendezvous port itself (MASTER_PORT, PET_MASTER_PORT)"
            port.note(Severity.CHANGED, reason)
        else:
            port.note(Severity.DROPPED, "Plinth opens the ports it needs itself")


# --------------------------------------------------------------------------------------
# Nodes, processes, elasticity
# --------------------------------------------------------------------------------------


def _topology(spec: Source, roles: dict[str, Source], result: dict[str, Any]) -> None:
    masters, workers = _replica_count(roles, MASTER), _replica_count(roles, WORKER)
    elastic = spec.child("elasticPolicy")
    if elastic is None:
        result["nodes"] = masters + workers
    else:
        result["elastic"] = _elastic(elastic, workers, result)
        if MASTER in roles:
            reason = "Plinth's elastic nodes are all alike: minNodes and maxNodes count every node"
            roles[MASTER].note(Severity.CHANGED, reason)
    result["procsPerNode"] = _procs_per_node(spec, elastic, result)


def _node_count(result: dict[str, Any]) -> int:
    elastic = result.get("elastic")
    return int(elastic["minNodes"]) if elastic else int(result.get("nodes") or 1)


def _elastic(elastic: Source, workers: int, result: dict[str, Any]) -> Manifest:
    """minNodes/maxNodes, defaulted as Kubeflow does (each other, then the Workers)."""
    low, high = elastic.integer("minReplicas"), elastic.integer("maxReplicas")
    low = low or high or workers
    high = high or low
    policy: Manifest = {"minNodes": low, "maxNodes": high}
    restarts = elastic.integer("maxRestarts")
    if restarts is not None:
        policy["maxRestarts"] = _clamped(elastic, "maxRestarts", restarts, 0, MAX_ELASTIC_RESTARTS)
    backend = elastic.text("rdzvBackend")
    if backend not in (None, "c10d"):
        reason = "Plinth uses torchrun's c10d rendezvous, hosted by node 0"
        elastic.note(Severity.CHANGED, reason, "rdzvBackend")
    for key in ("rdzvHost", "rdzvPort", "rdzvId"):
        elastic.changed(key, "Plinth sets the rendezvous endpoint and id itself")
    _rendezvous_conf(elastic, result)
    elastic.dropped("standalone", "Plinth always runs the rendezvous across the gang's nodes")
    elastic.dropped(
        "metrics",
        "Plinth does not scale a training job on metrics: an elastic job grows towards "
        "maxNodes as nodes are free",
    )
    return policy


def _rendezvous_conf(elastic: Source, result: dict[str, Any]) -> None:
    """rdzvConf becomes PET_RDZV_CONF, as Kubeflow sets it."""
    pairs = [f"{item.text('key')}={item.text('value')}" for item in elastic.children("rdzvConf")]
    if pairs:
        result["env"] = [*result["env"], {"name": "PET_RDZV_CONF", "value": ",".join(pairs)}]


def _procs_per_node(spec: Source, elastic: Source | None, result: dict[str, Any]) -> int | None:
    value = spec.raw("nprocPerNode")
    legacy = elastic.integer("nProcPerNode") if elastic else None
    if value is None and legacy is not None:
        value = legacy
    text = str(value) if value is not None else "auto"
    if text.isdigit() and int(text) >= 1:
        return int(text)
    if text not in ("auto", "gpu", "cpu"):
        spec.fail(f"must be auto, cpu, gpu or a number; got {value!r}", "nprocPerNode")
    if not result["resources"].get("gpus") and text != "gpu":
        reason = (
            "torchrun's auto/cpu starts one process per CPU core on a node without GPUs; "
            "Plinth starts one (set procsPerNode for more)"
        )
        spec.note(Severity.CHANGED, reason, "nprocPerNode")
    return None


# --------------------------------------------------------------------------------------
# Restarts and the run policy
# --------------------------------------------------------------------------------------


def _restart_policy(spec: Source, roles: dict[str, Source], result: dict[str, Any]) -> None:
    policies = {role: replica.text("restartPolicy") for role, replica in roles.items()}
    for role, policy in policies.items():
        replica = roles[role]
        if policy in ("OnFailure", "Always"):
            replica.note(Severity.CHANGED, GANG_RESTART, "restartPolicy")
        elif policy == "Never":
            reason = "a failed pod fails the job: restartPolicy.backoffLimit is 0"
            replica.note(Severity.CHANGED, reason, "restartPolicy")
            result["restartPolicy"] = {"backoffLimit": 0}
        elif policy == "ExitCode":
            reason = (
                "Kubeflow retries exit codes 128-255 only; Plinth retries every failure up to "
                "restartPolicy.backoffLimit except restartPolicy.permanentExitCodes (list the "
                "codes your program uses for errors no retry fixes)"
            )
            replica.note(Severity.CHANGED, reason, "restartPolicy")
        elif policy is not None:
            replica.fail("must be Always, OnFailure, Never or ExitCode", "restartPolicy")


def _run_policy(policy: Source | None, result: dict[str, Any], nodes: int) -> None:
    if policy is None:
        return
    backoff = policy.integer("backoffLimit")
    if backoff is not None and "restartPolicy" not in result:
        limit = _clamped(policy, "backoffLimit", backoff, 0, MAX_BACKOFF)
        result["restartPolicy"] = {"backoffLimit": limit}
    elif backoff is not None:
        policy.note(
            Severity.CHANGED, "restartPolicy Never fails at the first failure", "backoffLimit"
        )
    result["activeDeadlineSeconds"] = policy.integer("activeDeadlineSeconds")
    result["ttlSecondsAfterFinished"] = policy.integer("ttlSecondsAfterFinished")
    result["suspend"] = policy.flag("suspend")
    if policy.text("cleanPodPolicy") not in (None, "None"):
        reason = (
            "a finished TrainingJob's pods go when the job is deleted (ttlSecondsAfterFinished)"
        )
        policy.note(Severity.DROPPED, reason, "cleanPodPolicy")
    if policy.text("managedBy") not in (None, "kubeflow.org/training-operator"):
        policy.note(Severity.DROPPED, "Plinth manages every TrainingJob itself", "managedBy")
    scheduling = policy.child("schedulingPolicy")
    if scheduling is not None:
        _scheduling_policy(scheduling, result, nodes)


def _scheduling_policy(scheduling: Source, result: dict[str, Any], nodes: int) -> None:
    queue = scheduling.text("queue")
    if queue:
        result["queueName"] = queue
        reason = "a Volcano queue in Kubeflow; Plinth submits to the Kueue LocalQueue of this name"
        scheduling.note(Severity.CHANGED, reason, "queue")
    priority = scheduling.text("priorityClass")
    result["priorityClassName"] = result.get("priorityClassName") or priority
    timeout = scheduling.integer("scheduleTimeoutSeconds")
    if timeout is not None:
        low, high = SCHEDULE_TIMEOUT_BOUNDS
        seconds = _clamped(scheduling, "scheduleTimeoutSeconds", timeout, low, high)
        result["scheduling"] = {"scheduleTimeoutSeconds": seconds}
    if scheduling.integer("minAvailable") not in (None, nodes):
        reason = "Plinth places the whole gang together (an elastic job: minNodes)"
        scheduling.note(Severity.DROPPED, reason, "minAvailable")
    scheduling.dropped("minResources", "Plinth works out what the gang needs from its nodes")


def _clamped(source: Source, key: str, value: int, low: int, high: int) -> int:
    bounded = min(max(value, low), high)
    if bounded != value:
        reason = f"Plinth takes {low} to {high}: {bounded} is used"
        source.note(Severity.CHANGED, reason, key)
    return bounded
