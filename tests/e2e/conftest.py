"""Fixtures of the e2e tier: the CRDs installed and the operator running as a process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from plinth.devcluster import ClusterInfo
from tests.plinth_testing import OperatorProcess, installed_crds, start_operator

__all__ = ["installed_crds"]


@pytest.fixture(scope="session")
def operator(
    installed_crds: ClusterInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator process for the e2e tier, stopped (and checked to stop) at the end."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = start_operator(installed_crds.kubeconfig, log)
    yield process
    process.stop()
