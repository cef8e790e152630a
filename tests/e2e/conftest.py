"""Fixtures of the e2e tier: the CRDs installed and the operator running as a process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plinth_devcluster import ClusterInfo
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
