"""`plinth convert` on Kubeflow Trainer TrainJobs (trainer.kubeflow.org/v1alpha1).

The corpus TrainJob uses the torch-distributed ClusterTrainingRuntime, which is in the
corpus too: its image is the default the TrainJob's own fields override. The converted
job's torchrun environment is held against what the Trainer's torch plugin sets.
"""

from __future__ import annotations

from typing import Any

import yaml

from plinth.convert import InputFile, Severity
from tests.support.convert import (
    DATA_DIR,
    convert_corpus,
    convert_one,
    converted,
    corpus_document,
    error_of,
    findings,
    outcome_of,
    plinth_job,
    plinth_worker_env,
    spec_of,
    trainer_torch_env,
)

LLAMA = "trainjob-llama.yaml"
RUNTIME_FILE = "clustertrainingruntime-torch.yaml"
RUNTIME = InputFile(RUNTIME_FILE, (DATA_DIR / RUNTIME_FILE).read_text(encoding="utf-8"))
RUNTIME_IMAGE = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"


def a_trainjob(**trainer: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "ft", "namespace": "ml"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": trainer},
    }


def test_every_field_maps_with_the_runtime_giving_the_image() -> None:
    outcome = outcome_of(convert_corpus(), LLAMA)
    assert outcome.target == "TrainingJob/llama-finetune"
    assert spec_of(outcome) == {
        "image": RUNTIME_IMAGE,
        "command": ["torchrun", "finetune.py"],
        "args": ["--model=meta-llama/Llama-3.2-1B", "--output=/checkpoints"],
        "env": [{"name": "HF_HOME", "value": "/cache/huggingface"}],
        "nodes": 2,
        "procsPerNode": 8,
        "resources": {"gpus": 8, "cpu": "64", "memory": "512Gi"},
        "activeDeadlineSeconds": 172800,
        "suspend": True,
        "queueName": "llm-queue",
        "podTemplate": {
            "nodeSelector": {"node-pool": "h100"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "volumes": [
                {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "llm-checkpoints"}}
            ],
            "volumeMounts": [{"name": "checkpoints", "mountPath": "/checkpoints"}],
            "serviceAccountName": "llm-trainer",
            "labels": {"cost-center": "research"},
        },
    }
    assert "torch-distributed" in findings(outcome, Severity.CHANGED)["spec.runtimeRef"]


def test_the_runtime_passes_through_unchanged() -> None:
    outcome = outcome_of(convert_corpus(), RUNTIME_FILE)
    assert outcome.target is None
    assert outcome.manifest == corpus_document(RUNTIME_FILE)


def test_nodes_get_the_torchrun_environment_the_trainer_gives() -> None:
    source = corpus_document(LLAMA)
    job = plinth_job(outcome_of(convert_corpus(), LLAMA).manifest)
    for rank in range(2):
        theirs = trainer_torch_env(source, rank, nodes=1)
        ours = plinth_worker_env(job, rank)
        for name in ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_PORT"):
            assert ours[name] == theirs[name], name
        # Both name the rank-0 pod under the job's headless Service.
        their_host, their_service = theirs["PET_MASTER_ADDR"].split(".")
        our_host, our_service, _namespace, _svc = ours["PET_MASTER_ADDR"].split(".")
        assert their_host.endswith("-0") and our_host.endswith("-0")
        assert our_service == their_service == "llama-finetune"
    assert int(plinth_worker_env(job, 0)["WORLD_SIZE"]) == 2 * 8


def test_without_the_runtime_the_trainer_image_is_used_and_the_gap_noted() -> None:
    outcome = converted(a_trainjob(image="ghcr.io/acme/ft:1", numNodes=3))
    assert spec_of(outcome)["image"] == "ghcr.io/acme/ft:1"
    assert spec_of(outcome)["nodes"] == 3
    assert "not among the inputs" in findings(outcome, Severity.CHANGED)["spec.runtimeRef"]


def test_without_the_runtime_and_an_image_it_is_an_error_naming_the_field() -> None:
    error = error_of(convert_one(a_trainjob(numNodes=2)))
    assert "spec.trainer.image: is required" in error
    assert "runtime" in error and "image" in error


def test_on_cpu_nodes_auto_processes_follow_the_cpu_request_as_the_trainer_does() -> None:
    job = a_trainjob(resourcesPerNode={"requests": {"cpu": "3500m"}, "limits": {"cpu": "4"}})
    assert spec_of(converted(job, RUNTIME))["procsPerNode"] == 4
    gpu_job = a_trainjob(resourcesPerNode={"limits": {"nvidia.com/gpu": 2}})
    assert "procsPerNode" not in spec_of(converted(gpu_job, RUNTIME))


def test_initializers_and_other_runtime_jobs_are_dropped() -> None:
    job = a_trainjob(numNodes=1)
    job["spec"]["initializer"] = {"dataset": {"storageUri": "hf://tatsu-lab/alpaca"}}
    job["spec"]["podTemplateOverrides"] = [
        {"targetJobs": [{"name": "dataset-initializer"}], "spec": {"serviceAccountName": "x"}},
        {"targetJobs": [{"name": "node"}], "spec": {"nodeSelector": {"pool": "a100"}}},
    ]
    outcome = converted(job, RUNTIME)
    dropped = findings(outcome, Severity.DROPPED)
    assert "spec.initializer" in dropped
    assert "dataset-initializer" in dropped["spec.podTemplateOverrides[0]"]
    assert spec_of(outcome)["podTemplate"] == {"nodeSelector": {"pool": "a100"}}


def test_a_runtime_that_is_not_pytorch_is_an_error() -> None:
    runtime = yaml.safe_load(RUNTIME.text)
    runtime["spec"]["mlPolicy"] = {"numNodes": 1, "mpi": {"numProcPerNode": 1}}
    mpi = InputFile("runtime.yaml", yaml.safe_dump(runtime))
    error = error_of(convert_one(a_trainjob(numNodes=1), mpi))
    assert "spec.runtimeRef" in error and "mpi policy is not PyTorch" in error


def test_an_unknown_api_version_of_trainjob_is_an_error() -> None:
    job = a_trainjob(image="x:1")
    job["apiVersion"] = "trainer.kubeflow.org/v2"
    assert "apiVersion: TrainJob trainer.kubeflow.org/v2 is not a version" in error_of(
        convert_one(job)
    )
