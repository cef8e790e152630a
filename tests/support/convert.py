"""What the `plinth convert` tests share: the input corpus, conversion helpers, and the
torchrun environment the Kubeflow operators give a job, to hold Plinth's against.

The corpus under tests/data/convert/ is written from the source projects' public API
types (Kubeflow training operator v1, Kubeflow Trainer v2, Katib v1beta1, KServe v1beta1).
`kubeflow_pytorchjob_env` and `trainer_torch_env` restate what those operators set in each
pod (training-operator pkg/controller.v1/pytorch/{envvar,master,elastic}.go with the
PyTorchJob defaults; trainer pkg/runtime/framework/plugins/torch/torch.go).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from plinth.api.wellknown import ANNOTATION_COMPLETION_INDEX, Manifest
from plinth.builders.trainingjob import render_trainingjob
from plinth.convert import Conversion, InputFile, Outcome, Severity, convert_files

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "convert"

#: Kubeflow's defaults: the port of the Master's container, the Trainer's rendezvous port.
KUBEFLOW_MASTER_PORT = 23456
TRAINER_MASTER_PORT = 29500


# --------------------------------------------------------------------------------------
# Inputs and outcomes
# --------------------------------------------------------------------------------------


def corpus() -> list[InputFile]:
    """Every input file of the corpus, named by file name."""
    return [
        InputFile(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(DATA_DIR.glob("*.yaml"))
    ]


def corpus_document(name: str) -> dict[str, Any]:
    """The first document of a corpus file, parsed."""
    document: dict[str, Any] = yaml.safe_load((DATA_DIR / name).read_text(encoding="utf-8"))
    return document


def convert_corpus(*, strict: bool = False) -> Conversion:
    return convert_files(corpus(), strict=strict)


def outcome_of(conversion: Conversion, file: str) -> Outcome:
    """The outcome of the (first) document of `file`."""
    return next(outcome for outcome in conversion.outcomes if outcome.file == file)


def convert_one(
    document: Mapping[str, Any] | str, *extra: InputFile, strict: bool = False
) -> Conversion:
    """Convert one document (a mapping or YAML text), next to `extra` inputs."""
    text = document if isinstance(document, str) else yaml.safe_dump(dict(document))
    return convert_files([InputFile("input.yaml", text), *extra], strict=strict)


def converted(document: Mapping[str, Any] | str, *extra: InputFile) -> Outcome:
    """The outcome of one document that must convert without errors."""
    conversion = convert_one(document, *extra)
    assert conversion.ok, conversion.errors
    return conversion.outcomes[0]


def spec_of(outcome: Outcome) -> dict[str, Any]:
    spec: dict[str, Any] = outcome.manifest["spec"]  # type: ignore[assignment]
    return spec


def findings(outcome: Outcome, severity: Severity | None = None) -> dict[str, str]:
    """The reason of each finding, by source path (of one severity, when given)."""
    return {
        finding.path: finding.reason
        for finding in outcome.findings
        if severity is None or finding.severity == severity
    }


def error_of(conversion: Conversion) -> str:
    """The one error of a conversion that failed."""
    assert not conversion.ok, "the conversion succeeded"
    assert len(conversion.errors) == 1, conversion.errors
    return conversion.errors[0]


# --------------------------------------------------------------------------------------
# torchrun environments
# --------------------------------------------------------------------------------------


def kubeflow_pytorchjob_env(job: Mapping[str, Any], role: str, index: int) -> dict[str, str]:
    """The torchrun variables the Kubeflow training operator sets in pod `index` of
    `role` (Master or Worker) of a PyTorchJob."""
    spec = job["spec"]
    replicas = {name: int(r.get("replicas", 1)) for name, r in spec["pytorchReplicaSpecs"].items()}
    nproc = str(spec.get("nprocPerNode", "auto"))
    total = sum(replicas.values())
    env: dict[str, str] = {"PYTHONUNBUFFERED": "1"}
    if "Master" in replicas:
        rank = index + 1 if role == "Worker" else index
        master = f"{job['metadata']['name']}-master-0"
        env |= {"MASTER_PORT": str(KUBEFLOW_MASTER_PORT), "MASTER_ADDR": master}
        env |= {"PET_MASTER_PORT": str(KUBEFLOW_MASTER_PORT), "PET_MASTER_ADDR": master}
        world = total * (int(nproc) if nproc.isdigit() else 1)
        env |= {"WORLD_SIZE": str(world), "RANK": str(rank), "PET_NODE_RANK": str(rank)}
    env["PET_NPROC_PER_NODE"] = nproc
    elastic = spec.get("elasticPolicy")
    if elastic is None:
        env["PET_NNODES"] = str(total)
        return env
    low = elastic.get("minReplicas") or elastic.get("maxReplicas") or replicas["Worker"]
    high = elastic.get("maxReplicas") or low
    host = elastic.get("rdzvHost", f"{job['metadata']['name']}-worker-0")
    env |= {
        "PET_RDZV_ENDPOINT": f"{host}:{elastic.get('rdzvPort', KUBEFLOW_MASTER_PORT)}",
        "PET_RDZV_BACKEND": elastic.get("rdzvBackend", "c10d"),
        "PET_NNODES": f"{low}:{high}",
    }
    if "maxRestarts" in elastic:
        env["PET_MAX_RESTARTS"] = str(elastic["maxRestarts"])
    return env


def trainer_torch_env(job: Mapping[str, Any], index: int, nodes: int) -> dict[str, str]:
    """The torchrun variables Kubeflow Trainer's torch plugin sets in node `index` of a
    TrainJob (numProcPerNode given, as in the corpus)."""
    name = job["metadata"]["name"]
    trainer = job["spec"]["trainer"]
    return {
        "PET_NNODES": str(trainer.get("numNodes", nodes)),
        "PET_NPROC_PER_NODE": str(trainer["numProcPerNode"]),
        "PET_NODE_RANK": str(index),
        "PET_MASTER_ADDR": f"{name}-node-0-0.{name}",
        "PET_MASTER_PORT": str(TRAINER_MASTER_PORT),
    }


def plinth_job(resource: Mapping[str, Any]) -> Manifest:
    """The Indexed Job `plinth render` gives a TrainingJob."""
    return next(m for m in render_trainingjob(resource) if m["kind"] == "Job")


def plinth_worker_env(job: Manifest, index: int) -> dict[str, str]:
    """The environment of the worker with completion index `index` (node rank)."""
    rank_path = f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"
    environ: dict[str, str] = {}
    for item in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            environ[item["name"]] = str(item["value"])
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == rank_path:
            environ[item["name"]] = str(index)
        else:
            environ[item["name"]] = "<from a secret>"
    return environ


def plinth_hostname(job: Manifest, index: int) -> str:
    """The hostname of the worker with completion index `index` (Indexed Job naming)."""
    return f"{job['metadata']['name']}-{index}"
