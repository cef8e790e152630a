"""Helpers for the cluster-backed test tiers: CRD install, the operator process, kubectl."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from plinth_devcluster import ClusterInfo
from plinth_devcluster.network import free_ports
from plinth_devcluster.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD_DIR = REPO_ROOT / "crds"
EXAMPLES_DIR = REPO_ROOT / "examples"


def cluster_tool(
    binary: Path,
    cluster: ClusterInfo,
    *args: str,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl or helm against the cluster's kubeconfig."""
    return subprocess.run(
        [str(binary), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        input=input_text,
    )


def kubectl(
    cluster: ClusterInfo, *args: str, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the cluster's own kubectl against its kubeconfig."""
    return cluster_tool(
        cluster.binaries.kubectl, cluster, *args, check=check, input_text=input_text
    )


def kubectl_json(cluster: ClusterInfo, *args: str) -> Any:
    """kubectl with `-o json`, parsed."""
    return json.loads(kubectl(cluster, *args, "-o", "json").stdout)


def events_of(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events recorded on the object called `name`, as kubectl prints them."""
    events = kubectl_json(
        cluster, "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}"
    )
    return list(events["items"])


def event_reasons(cluster: ClusterInfo, namespace: str, name: str) -> set[str]:
    """Reasons of the Events recorded on the object called `name`."""
    return {str(event["reason"]) for event in events_of(cluster, namespace, name)}


def install_crds(cluster: ClusterInfo) -> None:
    """Apply the generated CRDs (server-side) and wait until the API server serves them."""
    kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
    for kind in ("trainingjob", "automlsweep", "modeldeployment"):
        wait_for(
            lambda kind=kind: kubectl(cluster, "explain", kind, check=False).returncode == 0,
            what=f"the OpenAPI schema of {kind} published",
            timeout=60,
        )


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """Status and body of GET `url`; connection errors read as status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError:
        return 0, ""


@dataclass
class OperatorProcess:
    """A running `plinth run` process and where to reach and read it."""

    process: subprocess.Popen[bytes]
    probe_port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.probe_port}{path}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


def start_operator(
    kubeconfig: Path,
    log: Path,
    *extra_args: str,
    port: int | None = None,
    wait_path: str = "/readyz",
    env: Mapping[str, str] | None = None,
) -> OperatorProcess:
    """Start `python -m plinth run` against `kubeconfig` and wait until `wait_path` answers
    200 (/readyz: watching, as an active replica or a standby; /healthz: just serving).
    `env` is added to the process's environment (e.g. the downward API's POD_NAME and
    POD_NAMESPACE, as a replica in a pod has them).

    `port` (default: a free one) serves probes, metrics and the intake; an operator
    restarted on the same port is reached at the same metrics URL by running workers, as
    behind a Service in a cluster."""
    port = port or free_ports(1)[0]
    env = {**os.environ, **(env or {}), "KUBECONFIG": str(kubeconfig)}
    with log.open("ab") as stream:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plinth",
                "run",
                "--probe-port",
                str(port),
                "--metrics-base-url",
                f"http://127.0.0.1:{port}",
                # Kept beside the log, so a restarted operator keeps issuing the same tokens.
                "--intake-key-file",
                str(log.parent / "intake.key"),
                *extra_args,
            ],
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
        )
    operator = OperatorProcess(process=process, probe_port=port, log=log)

    def is_ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"operator exited with {process.returncode}:\n{operator.log_text()}")
        return http_get(operator.url(wait_path))[0] == 200

    wait_for(is_ready, what=f"operator {wait_path}", timeout=60)
    return operator


def condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    """The condition of `condition_type` in an object's status, or None."""
    for entry in obj.get("status", {}).get("conditions", []):
        if entry.get("type") == condition_type:
            return dict(entry)
    return None


@pytest.fixture(scope="session")
def installed_crds(cluster: ClusterInfo) -> ClusterInfo:
    """The session's cluster with Plinth's CRDs installed and served."""
    install_crds(cluster)
    return cluster
