"""The command lines of the cluster's programs: etcd, the three control-plane components, kwok.

Pure: every function turns paths and ports into a `Program`; nothing here starts anything.
The flags follow what controller-runtime's envtest, kubeadm and kwokctl use for a local
control plane.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from plinth_devcluster.binaries import Binaries
from plinth_devcluster.pki import ClusterPki
from plinth_devcluster.state import Layout, Ports

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/12"
SERVICE_IP = "10.96.0.1"
#: kwok's fake pods get loopback addresses: whatever reads a pod at its IP (the operator
#: reading Triton's metrics) stays on this machine and is refused at once. The local pod
#: runner's pods take theirs from 127.64.0.0/10, which this range stays out of.
POD_CIDR = "127.128.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
#: The label kwok selects the nodes it plays by. A label, not the annotation: the API server
#: filters a watch by labels and reports a node whose label is removed as deleted, so kwok
#: forgets it (no more lease renewals, its pods no longer played) and the node goes silent;
#: an annotation is filtered by kwok itself, which never notices one disappear.
FAKE_NODE_LABEL = ("kwok.x-k8s.io/node", "fake")
NODE_LEASE_SECONDS = 40
NODE_IP = "172.18.0.2"
FRONT_PROXY_CLIENT = "front-proxy-client"
# kwok's stock stages, some changed, and Plinth's own (see stages/README.md).
STAGES = (
    "node-initialize",
    "node-heartbeat-with-lease",
    "pod-ready",
    "pod-complete",
    "pod-fail",
    "pod-terminate",
    "pod-delete",
    "pod-local-reap",
)


@dataclass(frozen=True)
class Program:
    """One program to start: its name (also its log's name), argv and extra environment."""

    name: str
    argv: tuple[str, ...]
    extra_env: tuple[tuple[str, str], ...] = ()

    def environment(self) -> dict[str, str]:
        """The caller's environment without KUBECONFIG (never talk to the user's cluster)."""
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        return {**env, **dict(self.extra_env)}


@dataclass(frozen=True)
class ComponentFiles:
    """Files the components read, written before they start."""

    pki: ClusterPki
    token_file: Path
    controller_manager_kubeconfig: Path
    scheduler_kubeconfig: Path
    kwok_kubeconfig: Path
    kwok_config: Path


def etcd(binaries: Binaries, layout: Layout, ports: Ports) -> Program:
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return Program(
        name="etcd",
        argv=(
            str(binaries.etcd),
            "--name=plinth",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=plinth={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ),
    )


def workload_api_flags(native_gang: bool) -> tuple[str, ...]:
    """Kubernetes' own gang scheduling (the Workload and PodGroup API of scheduling.k8s.io
    v1beta1, beta and off by default in 1.37): the feature gate for every component, and the
    API group served by the API server. Without it the cluster has no PodGroup API, as most
    clusters of 2026 do not, and Plinth falls back to its own gang admission."""
    return ("--feature-gates=GenericWorkload=true",) if native_gang else ()


def kube_apiserver(
    binaries: Binaries, layout: Layout, ports: Ports, files: ComponentFiles, *, native_gang: bool
) -> Program:
    pki = files.pki
    runtime_config = ("--runtime-config=scheduling.k8s.io/v1beta1=true",) if native_gang else ()
    return Program(
        name="kube-apiserver",
        argv=(
            str(binaries.kube_apiserver),
            f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            "--endpoint-reconciler-type=none",  # loopback may not back the kubernetes Service
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={layout.pki / 'apiserver-generated'}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--token-auth-file={files.token_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *front_proxy_flags(pki),
            "--allow-privileged=true",
            "--profiling=false",
            *workload_api_flags(native_gang),
            *runtime_config,
        ),
    )


def front_proxy_flags(pki: ClusterPki) -> tuple[str, ...]:
    """Request-header authentication, so aggregated API servers (metrics, KEDA) can plug in."""
    proxy = pki.clients[FRONT_PROXY_CLIENT]
    return (
        f"--requestheader-client-ca-file={pki.ca.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={proxy.cert}",
        f"--proxy-client-key-file={proxy.key}",
    )


def kube_controller_manager(
    binaries: Binaries, layout: Layout, ports: Ports, files: ComponentFiles, *, native_gang: bool
) -> Program:
    kubeconfig = files.controller_manager_kubeconfig
    return Program(
        name="kube-controller-manager",
        argv=(
            str(binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.controller_manager}",
            f"--cert-dir={layout.pki / 'controller-manager-generated'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={files.pki.service_account_key}",
            f"--root-ca-file={files.pki.ca.cert}",
            f"--cluster-signing-cert-file={files.pki.ca.cert}",
            f"--cluster-signing-key-file={files.pki.ca.key}",
            f"--cluster-name={layout.name}",
            "--leader-elect=false",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--profiling=false",
            *workload_api_flags(native_gang),
        ),
    )


def kube_scheduler(
    binaries: Binaries, layout: Layout, ports: Ports, files: ComponentFiles, *, native_gang: bool
) -> Program:
    kubeconfig = files.scheduler_kubeconfig
    return Program(
        name="kube-scheduler",
        argv=(
            str(binaries.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={ports.scheduler}",
            f"--cert-dir={layout.pki / 'scheduler-generated'}",
            "--leader-elect=false",
            "--profiling=false",
            *workload_api_flags(native_gang),
        ),
    )


def kwok(binaries: Binaries, layout: Layout, files: ComponentFiles) -> Program:
    key, value = FAKE_NODE_LABEL
    return Program(
        name="kwok",
        argv=(
            str(binaries.kwok),
            f"--config={files.kwok_config}",
            f"--kubeconfig={files.kwok_kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-label-selector={key}={value}",
            f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            f"--cidr={POD_CIDR}",
            f"--node-ip={NODE_IP}",
        ),
        extra_env=(("KWOK_WORKDIR", str(layout.kwok_workdir)),),
    )


def kwok_configuration() -> dict[str, object]:
    """kwok's own settings: more parallelism than its defaults, for clusters of 1,000 nodes."""
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokConfiguration",
        "options": {
            "nodeLeaseParallelism": 16,
            "nodePlayStageParallelism": 16,
            "podPlayStageParallelism": 16,
        },
    }


def stage_documents() -> list[str]:
    """The kwok Stages shipped with this package: kwok's stock ones (some changed) and Plinth's."""
    folder = resources.files("plinth_devcluster") / "stages"
    return [(folder / f"{stage}.yaml").read_text() for stage in STAGES]


def write_kwok_config(path: Path) -> Path:
    """One multi-document file: kwok's configuration, then every Stage."""
    documents = [yaml.safe_dump(kwok_configuration(), sort_keys=False), *stage_documents()]
    path.write_text("---\n".join(documents))
    return path
