"""`plinth_client.environment`: the contract read from a real environment mapping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plinth_client import ContractError, NodeRange, PlinthEnvironment
from tests.torch.trainer_harness import REPO, pod_environment, process_environment

TOKEN = "s3cr3t-token-value"


def full_contract() -> dict[str, str]:
    return {
        **pod_environment(
            job="bert", checkpoint_uri="file:///ckpt/bert", nodes=4, node_rank=2, port=29500
        ),
        "PLINTH_NAMESPACE": "ml",
        "PLINTH_METRICS_URL": "http://plinth.plinth-system.svc:8080/v1/metrics/ml/bert",
        "PLINTH_METRICS_TOKEN": TOKEN,
        "PLINTH_RESTART_COUNT": "3",
        "PET_NPROC_PER_NODE": "8",
        "LOCAL_RANK": "5",
    }


def test_reads_every_variable_of_the_contract() -> None:
    env = PlinthEnvironment.from_environ(full_contract())

    assert env.job_name == "bert"
    assert env.namespace == "ml"
    assert env.checkpoint_uri == "file:///ckpt/bert"
    assert env.checkpoint_dir == Path("/ckpt/bert")
    assert env.metrics_url == "http://plinth.plinth-system.svc:8080/v1/metrics/ml/bert"
    assert env.metrics_token == TOKEN
    assert env.reporting_enabled
    assert env.restart_count == 3
    assert env.nnodes == NodeRange(4, 4)
    assert env.nproc_per_node == 8
    assert env.node_rank == 2
    assert (env.pet_master_addr, env.pet_master_port) == ("127.0.0.1", 29500)
    assert (env.master_addr, env.master_port) == ("127.0.0.1", 29500)
    assert (env.world_size, env.rank, env.local_rank) == (4, 2, 5)
    assert env.is_distributed
    assert not env.is_primary


def test_an_empty_environment_means_a_lone_process_without_reporting() -> None:
    env = PlinthEnvironment.from_environ({"PLINTH_METRICS_URL": "", "RANK": " "})

    assert env == PlinthEnvironment()
    assert env.restart_count == 0
    assert env.checkpoint_dir is None
    assert not env.reporting_enabled
    assert not env.is_distributed
    assert env.is_primary


def test_reporting_needs_both_the_url_and_the_token() -> None:
    url_only = PlinthEnvironment.from_environ({"PLINTH_METRICS_URL": "http://op:8080/m"})
    assert not url_only.reporting_enabled


def test_reads_the_real_process_environment_by_default() -> None:
    script = (
        "from plinth_client import PlinthEnvironment as E; "
        "e = E.from_environ(); print(e.rank, e.job_name)"
    )
    environment = process_environment({"RANK": "1", "WORLD_SIZE": "2", "PLINTH_JOB_NAME": "j"})
    output = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    assert output.stdout.split() == ["1", "j"]


@pytest.mark.parametrize(
    ("uri", "directory"),
    [
        ("/mnt/ckpt", Path("/mnt/ckpt")),
        ("relative/ckpt", Path("relative/ckpt")),
        ("file:///mnt/ckpt", Path("/mnt/ckpt")),
        ("file://localhost/mnt/ckpt", Path("/mnt/ckpt")),
        ("file:///mnt/with%20space", Path("/mnt/with space")),
        ("s3://bucket/jobs/bert", None),
        ("gs://bucket/jobs/bert", None),
    ],
)
def test_checkpoint_uri_is_local_for_paths_and_file_uris_only(
    uri: str, directory: Path | None
) -> None:
    env = PlinthEnvironment.from_environ({"PLINTH_CHECKPOINT_URI": uri})
    assert env.checkpoint_uri == uri  # passed through untouched for user code
    assert env.checkpoint_dir == directory


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", NodeRange(1, 1)), ("2:4", NodeRange(2, 4)), ("3:3", NodeRange(3, 3))],
)
def test_nnodes_is_a_count_or_an_elastic_range(value: str, expected: NodeRange) -> None:
    env = PlinthEnvironment.from_environ({"PET_NNODES": value})
    assert env.nnodes == expected
    assert str(expected) == value.replace("3:3", "3")


@pytest.mark.parametrize("keyword", ["auto", "cpu", "gpu"])
def test_nproc_per_node_accepts_torchrun_keywords(keyword: str) -> None:
    assert PlinthEnvironment.from_environ({"PET_NPROC_PER_NODE": keyword}).nproc_per_node == keyword


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"RANK": "one"}, "RANK='one'"),
        ({"RANK": "-1"}, "RANK='-1'"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0'"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000"),
        ({"PET_MASTER_PORT": "http"}, "PET_MASTER_PORT='http'"),
        ({"PET_NNODES": "4:2"}, "PET_NNODES='2'"),
        ({"PET_NNODES": "2:"}, "PET_NNODES=''"),
        ({"PET_NPROC_PER_NODE": "many"}, "PET_NPROC_PER_NODE='many'"),
        ({"PLINTH_RESTART_COUNT": "1.5"}, "PLINTH_RESTART_COUNT='1.5'"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 must be below WORLD_SIZE=2"),
        ({"PET_NODE_RANK": "4", "PET_NNODES": "2:4"}, "PET_NODE_RANK=4 must be below PET_NNODES=4"),
        ({"PLINTH_CHECKPOINT_URI": "file://ckpt/run"}, "file:///path"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_variable(
    variables: dict[str, str], named: str
) -> None:
    with pytest.raises(ContractError, match=named.replace("(", r"\(")):
        PlinthEnvironment.from_environ(variables)


def test_the_token_never_shows_in_repr() -> None:
    env = PlinthEnvironment.from_environ(full_contract())
    assert TOKEN not in repr(env)
    assert TOKEN not in str(env)


def test_the_package_imports_only_the_standard_library() -> None:
    script = (
        "import sys, plinth_client, plinth_client.launch; "
        "heavy = {'torch', 'kopf', 'kubernetes', 'pydantic', 'plinth'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")},
        check=True,
    )


def test_a_sweep_trial_reads_its_parameters() -> None:
    env = PlinthEnvironment.from_environ({"PLINTH_PARAMS": '{"lr": 0.001, "optimizer": "adam"}'})
    assert env.params == {"lr": 0.001, "optimizer": "adam"}
    assert PlinthEnvironment.from_environ({}).params == {}
    with pytest.raises(ContractError, match="PLINTH_PARAMS: expected a JSON object"):
        PlinthEnvironment.from_environ({"PLINTH_PARAMS": "[1, 2]"})
