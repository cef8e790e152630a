"""The TrainingJob builder: golden manifests, the environment contract, names and ownership.

Three shapes are kept as golden manifests in `tests/unit/golden/trainingjob/<case>.yaml`
(1 node x 1 process on CPU, 2 nodes x 8 GPUs with every optional field, elastic) and
compared exactly, as data. After an intended change to the builder, rewrite them with

    PLINTH_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_builders_trainingjob.py

and review the diff of the YAML files like any other change.
"""

from __future__ import annotations

import base64
import copy
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth import cli
from plinth.api.v1alpha1 import InvalidSpecError, TrainingJobSpec, parse_spec
from plinth.api.wellknown import ANNOTATION_COMPLETION_INDEX, LABEL_TRAININGJOB
from plinth.builders.trainingjob import (
    TrainingJobChildren,
    TrainingJobContext,
    build_trainingjob_children,
    master_address,
    render_trainingjob,
    total_gpus,
)
from plinth.status.trainingjob import AttemptToApply
from plinth.status.trainingjob_observe import attempt_of
from plinth.status.trainingjob_observed import CarriedCounts
from plinth_client import PlinthEnvironment
from tests.support.factories import H100, a_trainingjob

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
GOLDEN_DIR = Path(__file__).resolve().parent / "golden" / "trainingjob"
UPDATE_GOLDEN = os.environ.get("PLINTH_UPDATE_GOLDEN") == "1"

METRICS_BASE_URL = "http://plinth-operator.plinth-system.svc:8080/"
TOKEN = "s3cr3t-token-0123456789abcdef"
MAX_NAME = "a" * 48  # the longest name the CRD accepts (see TRAINING_JOB.object_rules)
DNS_LABEL_MAX = 63
UID = "6f1c1d9e-3c39-4b7e-9a57-0d1f0f3b2a10"

Spec = dict[str, Any]


# --------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------


def cpu_spec() -> Spec:
    return (
        a_trainingjob().with_command("python", "train.py").with_nodes(1).on_cpu("2", "4Gi")
    ).spec_fields()


def production_multi_node() -> Spec:
    """The production shape examples/trainingjob-multi-node.yaml shows in its comments:
    2 nodes x 8 H100, checkpoints on a shared volume."""
    return {
        "image": "ghcr.io/plinth-dev/plinth-trainer:0.1.0",
        "args": ["--steps=5000", "--checkpoint-every=500"],
        "env": [{"name": "NCCL_DEBUG", "value": "WARN"}],
        "nodes": 2,
        "procsPerNode": 8,
        "resources": {"gpus": 8, "gpuType": H100, "cpu": 64, "memory": "512Gi"},
        "checkpoint": {"uri": "/ckpt/mlp-multi"},
        "restartPolicy": {"backoffLimit": 3, "permanentExitCodes": [2]},
        "scheduling": {"gang": True, "scheduleTimeoutSeconds": 600},
        "activeDeadlineSeconds": 172800,
        "podTemplate": {
            "volumes": [
                {"name": "checkpoints", "persistentVolumeClaim": {"claimName": "team-checkpoints"}}
            ],
            "volumeMounts": [{"name": "checkpoints", "mountPath": "/ckpt"}],
        },
    }


def gpu_spec() -> Spec:
    spec = production_multi_node()
    spec["restartPolicy"]["permanentExitCodes"] = [3, 2]
    spec["queueName"] = "team-a-gpus"
    spec["priorityClassName"] = "training-high"
    spec["podTemplate"] |= {
        "labels": {"team": "vision"},
        "annotations": {"sidecar.istio.io/inject": "false"},
        "nodeSelector": {"topology.kubernetes.io/zone": "zone-a"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "training"}],
        "serviceAccountName": "trainer",
        "imagePullSecrets": ["registry-credentials"],
    }
    return spec


def elastic_spec() -> Spec:
    return (
        a_trainingjob()
        .with_command("torchrun", "train.py")
        .elastic(2, 4, max_restarts=5)
        .with_procs_per_node(2)
        .with_gpus(4)
        .with_checkpoint("s3://checkpoints/elastic")
    ).spec_fields()


def context(
    name: str = "train",
    attempt: int = 0,
    suspend: bool = False,
    metrics_base_url: str | None = METRICS_BASE_URL,
) -> TrainingJobContext:
    owner = a_trainingjob().named(name).in_namespace("team-a").with_uid(UID).ref()
    return TrainingJobContext(
        owner=owner,
        attempt=AttemptToApply(attempt=attempt, suspend=suspend, carried=CarriedCounts()),
        metrics_base_url=metrics_base_url,
        token=TOKEN,
    )


def build(spec: Spec, **changes: Any) -> TrainingJobChildren:
    return build_trainingjob_children(parse_spec("TrainingJob", spec), context(**changes))


@dataclass(frozen=True)
class Case:
    """A shape of TrainingJob with the context its children are built in."""

    spec: Callable[[], Spec]
    changes: dict[str, Any] = field(default_factory=dict)

    def typed_spec(self) -> TrainingJobSpec:
        return parse_spec("TrainingJob", self.spec())

    def children(self) -> TrainingJobChildren:
        return build(self.spec(), **self.changes)


CASES = {
    "cpu-1x1": Case(cpu_spec),
    "gpu-2x8": Case(gpu_spec, {"name": "mlp-multi", "attempt": 2, "suspend": True}),
    "elastic": Case(elastic_spec, {"metrics_base_url": None}),
}


def children_of(case: str) -> TrainingJobChildren:
    return CASES[case].children()


# --------------------------------------------------------------------------------------
# Reading the manifests
# --------------------------------------------------------------------------------------


def pod_spec(children: TrainingJobChildren) -> dict[str, Any]:
    spec: dict[str, Any] = children.job["spec"]["template"]["spec"]
    return spec


def worker(children: TrainingJobChildren) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(children)["containers"][0]
    return container


def env_values(children: TrainingJobChildren) -> dict[str, Any]:
    """Each variable's literal value, or its valueFrom source."""
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in worker(children)["env"]
    }


def pod_environ(children: TrainingJobChildren, index: int) -> dict[str, str]:
    """The environment the worker with completion index `index` would see."""
    sources = {"fieldRef": str(index), "secretKeyRef": TOKEN}  # the only sources Plinth uses
    environ = {}
    for item in worker(children)["env"]:
        if "value" in item:
            environ[item["name"]] = item["value"]
        else:
            ((source, _),) = item["valueFrom"].items()
            environ[item["name"]] = sources[source]
    return environ


def node_rank_ref() -> dict[str, Any]:
    path = f"metadata.annotations['{ANNOTATION_COMPLETION_INDEX}']"
    return {"fieldRef": {"fieldPath": path}}


# --------------------------------------------------------------------------------------
# Golden manifests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_children_match_the_golden_manifests(case: str) -> None:
    manifests = children_of(case).manifests()
    golden = GOLDEN_DIR / f"{case}.yaml"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    assert list(yaml.safe_load_all(golden.read_text())) == manifests


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_input_builds_the_same_output(case: str) -> None:
    first, second = children_of(case), children_of(case)
    assert first == second
    assert yaml.safe_dump_all(first.manifests()) == yaml.safe_dump_all(second.manifests())


def scribble_over(value: Any) -> None:
    """Change every mapping and list inside `value`, as a careless caller might."""
    if isinstance(value, dict):
        for item in list(value.values()):
            scribble_over(item)
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            scribble_over(item)
        value.append("scribbled")


@pytest.mark.parametrize("case", sorted(CASES))
def test_changing_one_build_leaves_the_next_alone(case: str) -> None:
    untouched = copy.deepcopy(children_of(case).manifests())
    scribble_over(children_of(case).manifests())
    assert children_of(case).manifests() == untouched


# --------------------------------------------------------------------------------------
# The environment contract
# --------------------------------------------------------------------------------------


def test_one_cpu_node_gets_ranks_for_plain_torch_distributed() -> None:
    env = env_values(children_of("cpu-1x1"))
    address = "train-r0-0.train.team-a.svc"
    assert env == {
        "PET_NNODES": "1",
        "PET_NPROC_PER_NODE": "1",
        "PET_NODE_RANK": node_rank_ref(),
        "PET_MASTER_ADDR": address,
        "PET_MASTER_PORT": "29500",
        "MASTER_ADDR": address,
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "1",
        "RANK": node_rank_ref(),
        "LOCAL_RANK": "0",
        "PLINTH_JOB_NAME": "train",
        "PLINTH_NAMESPACE": "team-a",
        "PLINTH_RESTART_COUNT": "0",
        "PLINTH_METRICS_URL": (
            "http://plinth-operator.plinth-system.svc:8080"
            "/v1/namespaces/team-a/trainingjobs/train/metrics"
        ),
        "PLINTH_METRICS_TOKEN": {"secretKeyRef": {"name": "train-metrics-token", "key": "token"}},
    }


def test_many_processes_per_node_leave_rank_to_torchrun() -> None:
    env = env_values(children_of("gpu-2x8"))
    assert env["PET_NNODES"] == "2"
    assert env["PET_NPROC_PER_NODE"] == "8"
    assert env["WORLD_SIZE"] == "16"
    assert env["PET_MASTER_ADDR"] == env["MASTER_ADDR"] == "mlp-multi-r2-0.mlp-multi.team-a.svc"
    assert env["PLINTH_RESTART_COUNT"] == "2"
    assert env["PLINTH_CHECKPOINT_URI"] == "/ckpt/mlp-multi"
    assert "RANK" not in env
    assert "LOCAL_RANK" not in env


def test_elastic_jobs_get_a_node_range_and_c10d_rendezvous() -> None:
    env = env_values(children_of("elastic"))
    assert env["PET_NNODES"] == "2:4"
    assert env["PET_RDZV_BACKEND"] == "c10d"
    assert env["PET_RDZV_ENDPOINT"] == "train-r0-0.train.team-a.svc:29400"
    assert env["PET_RDZV_ID"] == context().uid
    assert env["PET_MAX_RESTARTS"] == "5"
    assert env["WORLD_SIZE"] == "8"


def test_without_a_metrics_url_no_metrics_variables_are_set() -> None:
    env = env_values(children_of("elastic"))
    assert "PLINTH_METRICS_URL" not in env
    assert "PLINTH_METRICS_TOKEN" not in env


def test_user_variables_come_first() -> None:
    names = [item["name"] for item in worker(children_of("gpu-2x8"))["env"]]
    assert names[0] == "NCCL_DEBUG"
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", ["LOCAL_RANK", "PET_RDZV_ENDPOINT", "PET_MAX_RESTARTS"])
def test_every_variable_plinth_sets_is_refused_in_user_env(name: str) -> None:
    spec = {**cpu_spec(), "env": [{"name": name, "value": "7"}]}
    with pytest.raises(InvalidSpecError, match=r"spec\.env"):
        parse_spec("TrainingJob", spec)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_training_side_reads_what_the_builder_renders(case: str) -> None:
    children, spec = children_of(case), CASES[case].typed_spec()
    last = spec.max_nodes - 1
    environment = PlinthEnvironment.from_environ(pod_environ(children, last))
    assert environment.node_rank == last
    assert environment.nnodes is not None
    assert (environment.nnodes.minimum, environment.nnodes.maximum) == (
        spec.min_nodes,
        spec.max_nodes,
    )
    assert environment.nproc_per_node == spec.effective_procs_per_node
    assert environment.master_port == environment.pet_master_port == 29500
    assert environment.reporting_enabled == (case != "elastic")


# --------------------------------------------------------------------------------------
# Ownership, secrecy, names
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_is_owned_and_labelled(case: str) -> None:
    children = children_of(case)
    name = children.service["metadata"]["name"]
    for child in children.manifests():
        metadata = child["metadata"]
        assert metadata["ownerReferences"] == [
            {
                "apiVersion": "plinth.dev/v1alpha1",
                "kind": "TrainingJob",
                "name": name,
                "uid": context().uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert metadata["labels"][LABEL_TRAININGJOB] == name
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "plinth"
        assert metadata["labels"]["app.kubernetes.io/name"] == "trainingjob"


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_token_appears_only_in_the_secret(case: str) -> None:
    children = children_of(case)
    encoded = base64.b64encode(TOKEN.encode()).decode()
    assert base64.b64decode(children.secret["data"]["token"]).decode() == TOKEN
    elsewhere = yaml.safe_dump_all([children.service, children.job])
    assert TOKEN not in elsewhere
    assert encoded not in elsewhere
    assert TOKEN not in repr(context())


def test_names_fit_dns_labels_for_the_longest_name() -> None:
    spec = {**elastic_spec(), "elastic": {"minNodes": 1, "maxNodes": 1024}}
    children = build(spec, name=MAX_NAME, attempt=99999)
    job = children.job["metadata"]["name"]
    last_hostname = f"{job}-1023"
    names = [children.service["metadata"]["name"], children.secret["metadata"]["name"], job]
    assert max(len(name) for name in [*names, last_hostname]) <= DNS_LABEL_MAX
    master = master_address(MAX_NAME, "n" * DNS_LABEL_MAX, 99999)
    assert max(len(label) for label in master.split(".")) <= DNS_LABEL_MAX
    job_labels = children.job["metadata"]["labels"]
    pod_labels = children.job["spec"]["template"]["metadata"]["labels"]
    values = [*job_labels.values(), *pod_labels.values()]
    assert max(len(value) for value in values) <= DNS_LABEL_MAX


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_children_find_each_other(case: str) -> None:
    """Workers resolve index 0 under the Service, the Service selects the attempt's pods,
    the token variable reads the Secret built beside it, and the attempt number the Job
    carries is the one the status layer reads back."""
    children, changes = children_of(case), CASES[case].changes
    service, secret, job = children.service, children.secret, children.job
    namespace, template = job["metadata"]["namespace"], job["spec"]["template"]
    assert pod_spec(children)["subdomain"] == service["metadata"]["name"]
    index_zero = f"{job['metadata']['name']}-0"  # an Indexed Job's hostname of index 0
    env = env_values(children)
    assert env["MASTER_ADDR"] == f"{index_zero}.{service['metadata']['name']}.{namespace}.svc"
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert attempt_of(job) == attempt_of(template) == changes.get("attempt", 0)
    if "PLINTH_METRICS_TOKEN" in env:
        token = env["PLINTH_METRICS_TOKEN"]["secretKeyRef"]
        assert token["name"] == secret["metadata"]["name"]
        assert token["key"] in secret["data"]


# --------------------------------------------------------------------------------------
# The Job
# --------------------------------------------------------------------------------------


def test_permanent_exit_codes_fail_the_job_in_ascending_order() -> None:
    rules = children_of("gpu-2x8").job["spec"]["podFailurePolicy"]["rules"]
    assert rules[1] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2, 3]},
    }


def test_without_permanent_exit_codes_only_disruption_fails_the_job() -> None:
    rules = children_of("cpu-1x1").job["spec"]["podFailurePolicy"]["rules"]
    assert rules == [
        {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    ]


def test_a_fixed_gang_runs_one_pod_per_node_and_never_retries_one() -> None:
    job = children_of("gpu-2x8").job["spec"]
    assert (job["completions"], job["parallelism"], job["backoffLimit"]) == (2, 2, 0)
    assert "backoffLimitPerIndex" not in job
    assert "activeDeadlineSeconds" not in job
    assert "ttlSecondsAfterFinished" not in job


def test_an_elastic_gang_replaces_a_member_that_left_up_to_max_restarts() -> None:
    job = children_of("elastic").job["spec"]
    assert (job["completions"], job["parallelism"]) == (4, 4)
    assert (job["backoffLimitPerIndex"], job["maxFailedIndexes"]) == (5, 0)
    assert "backoffLimit" not in job
    disrupted = {"type": "DisruptionTarget", "status": "True"}
    assert job["podFailurePolicy"]["rules"][0] == {
        "action": "Ignore",
        "onPodConditions": [disrupted],
    }
    assert job["successPolicy"] == {"rules": [{"succeededIndexes": "0"}]}


def test_suspend_and_queue_come_from_the_caller_and_spec() -> None:
    job = children_of("gpu-2x8").job
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpus"
    assert "kueue.x-k8s.io/queue-name" not in children_of("cpu-1x1").job["metadata"]["labels"]


def test_cpu_workers_neither_request_nor_tolerate_gpus() -> None:
    children = children_of("cpu-1x1")
    assert worker(children)["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"memory": "4Gi"},
    }
    assert "tolerations" not in pod_spec(children)
    assert "affinity" not in pod_spec(children)


def test_total_gpus_counts_every_worker() -> None:
    assert total_gpus(parse_spec("TrainingJob", gpu_spec())) == 16
    assert total_gpus(parse_spec("TrainingJob", elastic_spec()), nodes=3) == 12
    assert total_gpus(parse_spec("TrainingJob", cpu_spec())) == 0


# --------------------------------------------------------------------------------------
# plinth render
# --------------------------------------------------------------------------------------


def test_plinth_render_prints_the_job_then_its_service_and_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["render", "-f", str(EXAMPLES_DIR / "trainingjob-multi-node.yaml")]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [document["kind"] for document in documents] == ["Job", "Service", "Secret"]
    assert documents[0]["metadata"]["name"] == "mlp-multi-r0"
    token = base64.b64decode(documents[2]["data"]["token"]).decode()
    assert token == "<generated-at-apply>"


@pytest.mark.parametrize(
    "name",
    [
        "llm.v2",  # a DNS subdomain, but no Service may be named so
        "7b-llm",  # a DNS-1035 label starts with a letter
        "a" * 49,  # leaves no room for "-r<attempt>-<index>" in pod hostnames
    ],
)
def test_plinth_render_refuses_names_the_api_server_refuses(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = a_trainingjob().named(name).body()
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(document))
    assert cli.main(["render", "-f", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"TrainingJob/{name}: metadata.name {name!r}: metadata.name must be at most 48" in (
        captured.err
    )


def test_plinth_render_takes_the_longest_name_the_api_server_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(a_trainingjob().named("l" + "-7" * 23 + "x").body()))
    assert cli.main(["render", "-f", str(path)]) == 0
    assert [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)] == [
        "Job",
        "Service",
        "Secret",
    ]


def test_render_uses_the_resource_uid_and_namespace_when_given() -> None:
    resource = {
        "metadata": {"name": "train", "namespace": "ml", "uid": "1234"},
        "spec": cpu_spec(),
    }
    service = render_trainingjob(resource)[0]
    assert service["metadata"]["namespace"] == "ml"
    assert service["metadata"]["ownerReferences"][0]["uid"] == "1234"


def test_workers_get_memory_backed_shared_memory() -> None:
    children = build(cpu_spec())
    assert {"name": "plinth-dshm", "mountPath": "/dev/shm"} in worker(children)["volumeMounts"]
    assert {"name": "plinth-dshm", "emptyDir": {"medium": "Memory"}} in pod_spec(children)[
        "volumes"
    ]


def test_a_users_own_dev_shm_mount_is_kept_alone() -> None:
    spec = {
        **cpu_spec(),
        "podTemplate": {
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}],
            "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
        },
    }
    children = build(spec)
    assert [m["name"] for m in worker(children)["volumeMounts"]] == ["shm"]
    assert [v["name"] for v in pod_spec(children)["volumes"]] == ["shm"]


def test_a_sweep_trial_hands_its_parameters_to_its_workers() -> None:
    spec = parse_spec("TrainingJob", cpu_spec())
    trial = replace(context(), trial_parameters='{"lr": 0.001}')
    env = env_values(build_trainingjob_children(spec, trial))
    assert env["PLINTH_PARAMS"] == '{"lr": 0.001}'
    assert "PLINTH_PARAMS" not in env_values(children_of("cpu-1x1"))
