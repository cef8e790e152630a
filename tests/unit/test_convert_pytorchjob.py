"""`plinth convert` on Kubeflow PyTorchJobs (kubeflow.org/v1): fields, torchrun, findings.

Inputs are the corpus (tests/data/convert/pytorchjob-*.yaml) and small jobs built here.
The torchrun environment of the converted job, as `plinth render` gives it, is held
against what the Kubeflow training operator sets for the same job.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from plinth.api.v1alpha1 import TrainingJobSpec, parse_spec
from plinth.convert import Severity
from tests.support.convert import (
    convert_corpus,
    convert_one,
    converted,
    corpus_document,
    error_of,
    findings,
    kubeflow_pytorchjob_env,
    outcome_of,
    plinth_hostname,
    plinth_job,
    plinth_worker_env,
    spec_of,
)

RESNET = "pytorchjob-resnet.yaml"
ELASTIC = "pytorchjob-elastic.yaml"
WORKER = "spec.pytorchReplicaSpecs.Worker"
WORKER_CONTAINER = f"{WORKER}.template.spec.containers[0]"


def a_pytorchjob(workers: int = 2, *, master: bool = True, **spec: Any) -> dict[str, Any]:
    """A small PyTorchJob: a Master and `workers` Workers with one GPU each."""
    template = {
        "spec": {
            "containers": [
                {
                    "name": "pytorch",
                    "image": "ghcr.io/acme/train:1.0",
                    "command": ["torchrun", "train.py"],
                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                }
            ]
        }
    }
    replicas: dict[str, Any] = {"Worker": {"replicas": workers, "template": template}}
    if master:
        replicas["Master"] = {"replicas": 1, "template": copy.deepcopy(template)}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "ml"},
        "spec": {"pytorchReplicaSpecs": replicas, **spec},
    }


def worker_template(job: dict[str, Any], role: str = "Worker") -> dict[str, Any]:
    template: dict[str, Any] = job["spec"]["pytorchReplicaSpecs"][role]["template"]
    return template


# --------------------------------------------------------------------------------------
# Every listed field
# --------------------------------------------------------------------------------------


def test_every_field_of_a_master_worker_job_maps() -> None:
    outcome = outcome_of(convert_corpus(), RESNET)
    assert outcome.target == "TrainingJob/resnet50"
    assert spec_of(outcome) == {
        "image": "ghcr.io/acme/resnet:2.3",
        "command": ["torchrun", "train.py"],
        "args": ["--data=/data/imagenet", "--epochs=90", "--batch-size=256"],
        "env": [
            {"name": "NCCL_DEBUG", "value": "WARN"},
            {
                "name": "WANDB_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key"}},
            },
        ],
        "nodes": 4,
        "procsPerNode": 4,
        "resources": {"gpus": 4, "gpuType": "NVIDIA-A100-SXM4-80GB", "cpu": 32, "memory": "256Gi"},
        "restartPolicy": {"backoffLimit": 4},
        "activeDeadlineSeconds": 86400,
        "ttlSecondsAfterFinished": 3600,
        "suspend": False,
        "queueName": "research",
        "priorityClassName": "training-high",
        "scheduling": {"scheduleTimeoutSeconds": 600},
        "podTemplate": {
            "tolerations": [
                {
                    "key": "dedicated",
                    "operator": "Equal",
                    "value": "training",
                    "effect": "NoSchedule",
                }
            ],
            "volumes": [{"name": "imagenet", "persistentVolumeClaim": {"claimName": "imagenet"}}],
            "volumeMounts": [{"name": "imagenet", "mountPath": "/data/imagenet", "readOnly": True}],
            "serviceAccountName": "trainer",
            "imagePullSecrets": ["registry-credentials"],
            "annotations": {"sidecar.istio.io/inject": "false"},
        },
    }


def test_names_namespaces_labels_and_annotations_are_kept() -> None:
    manifest = outcome_of(convert_corpus(), RESNET).manifest
    assert manifest["apiVersion"] == "plinth.dev/v1alpha1"
    assert manifest["metadata"] == corpus_document(RESNET)["metadata"]


def test_the_output_is_ordered_as_the_typed_spec_declares_its_fields() -> None:
    manifest = outcome_of(convert_corpus(), RESNET).manifest
    assert list(manifest) == ["apiVersion", "kind", "metadata", "spec"]
    declared = [info.alias for info in TrainingJobSpec.model_fields.values()]
    written = list(spec_of(outcome_of(convert_corpus(), RESNET)))
    assert written == [name for name in declared if name in written]


def test_an_elastic_job_keeps_its_node_range_restarts_and_rendezvous_settings() -> None:
    outcome = outcome_of(convert_corpus(), ELASTIC)
    spec = spec_of(outcome)
    assert spec["elastic"] == {"minNodes": 2, "maxNodes": 6, "maxRestarts": 10}
    assert "nodes" not in spec
    assert {"name": "PET_RDZV_CONF", "value": "join_timeout=600"} in spec["env"]
    assert spec["queueName"] == "team-nlp"  # Kueue's label on the PyTorchJob
    assert spec["resources"] == {"gpus": 1, "cpu": "8", "memory": "64Gi"}
    dropped = findings(outcome, Severity.DROPPED)
    assert "spec.elasticPolicy.metrics" in dropped
    changed = findings(outcome, Severity.CHANGED)
    assert "limit 64Gi is used for both" in changed[f"{WORKER_CONTAINER}.resources.requests.memory"]


def test_elastic_bounds_default_as_kubeflow_defaults_them() -> None:
    only_max = converted(a_pytorchjob(3, master=False, elasticPolicy={"maxReplicas": 5}))
    assert spec_of(only_max)["elastic"] == {"minNodes": 5, "maxNodes": 5}
    neither = converted(a_pytorchjob(3, master=False, elasticPolicy={"maxRestarts": 2}))
    assert spec_of(neither)["elastic"] == {"minNodes": 3, "maxNodes": 3, "maxRestarts": 2}


# --------------------------------------------------------------------------------------
# torchrun: what the workers see
# --------------------------------------------------------------------------------------

TORCHRUN = ("PET_NNODES", "PET_NPROC_PER_NODE", "WORLD_SIZE")


def test_workers_get_the_torchrun_environment_the_training_operator_gives() -> None:
    source = corpus_document(RESNET)
    job = plinth_job(outcome_of(convert_corpus(), RESNET).manifest)
    pods = [("Master", 0)] + [("Worker", index) for index in range(3)]
    kubeflow = [kubeflow_pytorchjob_env(source, role, index) for role, index in pods]
    plinth = [plinth_worker_env(job, rank) for rank in range(len(pods))]
    for theirs, ours in zip(kubeflow, plinth, strict=True):
        assert {name: ours[name] for name in TORCHRUN} == {name: theirs[name] for name in TORCHRUN}
        # torchrun gives each of a node's processes its own RANK; the node rank is shared.
        assert ours["PET_NODE_RANK"] == theirs["PET_NODE_RANK"]
    assert sorted(int(env["PET_NODE_RANK"]) for env in kubeflow) == list(range(4))
    assert int(plinth[0]["WORLD_SIZE"]) == 4 * 4


def test_the_master_address_is_the_rank_0_pod_in_both() -> None:
    source = corpus_document(RESNET)
    job = plinth_job(outcome_of(convert_corpus(), RESNET).manifest)
    theirs = kubeflow_pytorchjob_env(source, "Worker", 2)
    ours = plinth_worker_env(job, 3)
    assert theirs["PET_MASTER_ADDR"] == "resnet50-master-0"  # the Master: rank 0
    host, service, namespace, *_ = ours["PET_MASTER_ADDR"].split(".")
    assert (host, service, namespace) == (plinth_hostname(job, 0), "resnet50", "vision")
    assert ours["MASTER_ADDR"] == ours["PET_MASTER_ADDR"]
    assert ours["PET_MASTER_PORT"].isdigit() and theirs["PET_MASTER_PORT"].isdigit()


def test_elastic_workers_get_the_node_range_and_c10d_rendezvous_kubeflow_gives() -> None:
    source = corpus_document(ELASTIC)
    job = plinth_job(outcome_of(convert_corpus(), ELASTIC).manifest)
    theirs = kubeflow_pytorchjob_env(source, "Worker", 1)
    ours = plinth_worker_env(job, 1)
    for name in ("PET_NNODES", "PET_MAX_RESTARTS", "PET_RDZV_BACKEND", "PET_RDZV_CONF"):
        assert ours.get(name) == theirs.get(name, ours.get(name)), name
    assert ours["PET_NNODES"] == theirs["PET_NNODES"] == "2:6"
    assert ours["PET_RDZV_ENDPOINT"].split(".")[0] == plinth_hostname(job, 0)
    assert theirs["PET_RDZV_ENDPOINT"].startswith("bert-elastic-worker-0:")


@pytest.mark.parametrize(
    ("nproc", "procs_per_node"), [("auto", None), ("gpu", None), ("2", 2), (None, None)]
)
def test_nproc_per_node_maps_to_procs_per_node(
    nproc: str | None, procs_per_node: int | None
) -> None:
    job = a_pytorchjob(1, **({"nprocPerNode": nproc} if nproc else {}))
    worker_template(job)["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 2}}
    worker_template(job, "Master")["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": 2}
    }
    spec = spec_of(converted(job))
    assert spec.get("procsPerNode") == procs_per_node
    typed = parse_spec("TrainingJob", spec)
    assert typed.effective_procs_per_node == 2


def test_auto_processes_on_a_cpu_node_are_noted() -> None:
    job = a_pytorchjob(1, nprocPerNode="auto")
    for role in ("Worker", "Master"):
        worker_template(job, role)["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 4}}
    outcome = converted(job)
    assert "one process per CPU core" in findings(outcome, Severity.CHANGED)["spec.nprocPerNode"]


def test_a_master_alone_is_one_node() -> None:
    job = a_pytorchjob(1)
    del job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert spec_of(converted(job))["nodes"] == 1


# --------------------------------------------------------------------------------------
# Restarts and run policy
# --------------------------------------------------------------------------------------


def test_restart_policy_never_fails_at_the_first_failure() -> None:
    job = a_pytorchjob(1)
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["restartPolicy"] = "Never"
    outcome = converted(job)
    assert spec_of(outcome)["restartPolicy"] == {"backoffLimit": 0}
    assert f"{WORKER}.restartPolicy" in findings(outcome, Severity.CHANGED)


def test_exit_code_restarts_point_at_permanent_exit_codes() -> None:
    job = a_pytorchjob(1)
    job["spec"]["pytorchReplicaSpecs"]["Worker"]["restartPolicy"] = "ExitCode"
    reason = findings(converted(job), Severity.CHANGED)[f"{WORKER}.restartPolicy"]
    assert "permanentExitCodes" in reason


def test_values_outside_plinths_bounds_are_clamped_and_said_so() -> None:
    policy = {"backoffLimit": 500, "schedulingPolicy": {"scheduleTimeoutSeconds": 5}}
    outcome = converted(a_pytorchjob(1, runPolicy=policy))
    spec = spec_of(outcome)
    assert spec["restartPolicy"] == {"backoffLimit": 100}
    assert spec["scheduling"] == {"scheduleTimeoutSeconds": 10}
    changed = findings(outcome, Severity.CHANGED)
    assert "100 is used" in changed["spec.runPolicy.backoffLimit"]
    assert "10 is used" in changed["spec.runPolicy.schedulingPolicy.scheduleTimeoutSeconds"]


def test_run_policy_fields_without_an_equivalent_are_dropped_with_reasons() -> None:
    policy = {
        "cleanPodPolicy": "All",
        "managedBy": "kueue.x-k8s.io/multikueue",
        "schedulingPolicy": {"minAvailable": 1, "minResources": {"cpu": "4"}},
    }
    dropped = findings(converted(a_pytorchjob(2, runPolicy=policy)), Severity.DROPPED)
    assert set(dropped) >= {
        "spec.runPolicy.cleanPodPolicy",
        "spec.runPolicy.managedBy",
        "spec.runPolicy.schedulingPolicy.minAvailable",
        "spec.runPolicy.schedulingPolicy.minResources",
    }


# --------------------------------------------------------------------------------------
# Findings: nothing dropped silently
# --------------------------------------------------------------------------------------


def test_every_unread_field_is_reported_with_its_path() -> None:
    job = a_pytorchjob(1)
    pod = worker_template(job)["spec"]
    pod["affinity"] = {"nodeAffinity": {}}
    pod["hostIPC"] = True
    pod["containers"][0]["workingDir"] = "/src"
    pod["containers"][0]["securityContext"] = {"runAsUser": 1000}
    dropped = findings(converted(job), Severity.DROPPED)
    assert "podTemplate has no affinity" in dropped[f"{WORKER}.template.spec.affinity"]
    assert f"{WORKER}.template.spec.hostIPC" in dropped
    assert "working directory" in dropped[f"{WORKER_CONTAINER}.workingDir"]
    assert f"{WORKER_CONTAINER}.securityContext" in dropped


def test_a_master_template_unlike_the_workers_is_reported() -> None:
    job = a_pytorchjob(1)
    worker_template(job, "Master")["spec"]["containers"][0]["image"] = "ghcr.io/acme/other:2"
    reason = findings(converted(job), Severity.DROPPED)["spec.pytorchReplicaSpecs.Master.template"]
    assert "image" in reason
    assert spec_of(converted(job))["image"] == "ghcr.io/acme/train:1.0"


def test_variables_plinth_sets_itself_are_noted_and_left_out() -> None:
    job = a_pytorchjob(1, master=False)
    worker_template(job)["spec"]["containers"][0]["env"] = [
        {"name": "MASTER_PORT", "value": "1234"},
        {"name": "OMP_NUM_THREADS", "value": "4"},
    ]
    outcome = converted(job)
    assert spec_of(outcome)["env"] == [{"name": "OMP_NUM_THREADS", "value": "4"}]
    assert "Plinth sets MASTER_PORT" in findings(outcome)[f"{WORKER_CONTAINER}.env[0]"]


def test_a_sidecar_next_to_the_pytorch_container_is_dropped() -> None:
    job = a_pytorchjob(1, master=False)
    containers = worker_template(job)["spec"]["containers"]
    containers.insert(0, {"name": "logger", "image": "fluent/fluent-bit:3"})
    outcome = converted(job)
    assert spec_of(outcome)["image"] == "ghcr.io/acme/train:1.0"
    assert (
        "'logger' is left out"
        in findings(outcome, Severity.DROPPED)[f"{WORKER}.template.spec.containers[0]"]
    )


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_several_containers_without_a_pytorch_one_is_an_error_naming_the_path() -> None:
    job = a_pytorchjob(1, master=False)
    containers = worker_template(job)["spec"]["containers"]
    containers[0]["name"] = "trainer"
    containers.append({"name": "logger", "image": "fluent/fluent-bit:3"})
    error = error_of(convert_one(job))
    assert f"{WORKER}.template.spec.containers: has 2 containers ('trainer', 'logger')" in error
    assert "none named 'pytorch'" in error
    assert error.startswith("input.yaml: PyTorchJob/train: ")


def test_an_unknown_api_version_of_pytorchjob_is_an_error() -> None:
    job = a_pytorchjob(1)
    job["apiVersion"] = "kubeflow.org/v2"
    error = error_of(convert_one(job))
    assert "apiVersion: PyTorchJob kubeflow.org/v2 is not a version" in error
    assert "kubeflow.org/v1" in error


@pytest.mark.parametrize(
    ("change", "path", "problem"),
    [
        (
            lambda j: j["spec"]["pytorchReplicaSpecs"].update(Chief={}),
            "pytorchReplicaSpecs.Chief",
            "Master or Worker",
        ),
        (
            lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"].update(replicas=2),
            "Master.replicas",
            "must be 1",
        ),
        (
            lambda j: j["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas="two"),
            "Worker.replicas",
            "must be an integer",
        ),
        (lambda j: j["spec"].update(nprocPerNode="many"), "spec.nprocPerNode", "auto, cpu, gpu"),
        (lambda j: j["spec"].pop("pytorchReplicaSpecs"), "spec.pytorchReplicaSpecs", "is required"),
    ],
)
def test_bad_jobs_are_errors_naming_the_path(change: Any, path: str, problem: str) -> None:
    job = a_pytorchjob(1)
    change(job)
    error = error_of(convert_one(job))
    assert path in error and problem in error, error


def test_a_job_plinth_would_refuse_is_an_error_naming_plinths_field() -> None:
    job = a_pytorchjob(1, nprocPerNode="4")  # 4 processes on 1 GPU
    error = error_of(convert_one(job))
    assert "spec.procsPerNode" in error and "not valid" in error
