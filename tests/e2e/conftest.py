"""Fixtures of the e2e tier: the CRDs installed and the operator running as a process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth_devcluster import ClusterInfo, podrunner
from tests.plinth_testing import OperatorProcess, installed_crds, start_operator

__all__ = ["installed_crds"]


@pytest.fixture(scope="module")
def operator(
    installed_crds: ClusterInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator process per test module, stopped (and checked to stop) when the module
    ends: a module that starts and kills operators of its own (crash safety), and the
    reconcile tier that drives the runtime itself, never share the cluster with it."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = start_operator(installed_crds.kubeconfig, log)
    yield process
    process.stop()


@pytest.fixture
def pod_runner(
    installed_crds: ClusterInfo, namespace: str, tmp_path: Path
) -> Iterator[podrunner.PodRunner]:
    """The pod runner for the test's namespace: pods annotated to run locally become real
    processes (training workers, Triton servers)."""
    with podrunner.running(
        installed_crds.kubeconfig, tmp_path / "pods", namespace=namespace
    ) as runner:
        yield runner
