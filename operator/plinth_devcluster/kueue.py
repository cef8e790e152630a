"""Real Kueue (sigs.k8s.io/kueue, pinned in `versions.py`) as an add-on of the emulated cluster.

Start it with `plinth up --with kueue`, or from Python with
`plinth_devcluster.up(name, state_dir=..., addons=("kueue",))`; `plinth down` stops it with
the rest. The manager (`cmd/kueue`) is built once from its Go module, like the control plane,
into the cache (`plinth build --only kueue`, about 5 minutes cold on 2 cores). `up` then
installs Kueue's CRDs from that module (`config/components/crd/bases`), creates the
`kueue-system` namespace and runs the manager as a process, out of cluster, with the admin
kubeconfig and the configuration `configuration()` writes: the batch/Job integration only,
waitForPodsReady on, no leader election, no metrics server, no visibility API server.

Kueue's webhooks are served on loopback but never registered (no Mutating or
ValidatingWebhookConfiguration): Plinth creates its Jobs suspended, with the
`kueue.x-k8s.io/queue-name` label, so Kueue's job reconciler is all that matters. Kueue's
internal certificate management stays on (with it off, Kueue insists on metrics certificates
at a fixed `/etc/kueue` path). Its rotator fills an empty Secret that `up` creates, and `up`
copies the Secret into the webhook certificate folder, as a kubelet mounts it in a pod. The
rotator also injects its CA into the conversion webhooks of five CRDs and never reports ready
while one lacks it, so those CRDs declare one, as Kueue's own install does. That webhook is
never reachable: use the `v1beta2` API (the stored version), not `v1beta1`.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster.binaries import find_binary
from plinth_devcluster.components import LOOPBACK, Program
from plinth_devcluster.gobuild import BuildError, Progress, find_go, go_environment
from plinth_devcluster.network import free_ports, http_ok
from plinth_devcluster.nodes import api_client
from plinth_devcluster.processes import ProcessRecord
from plinth_devcluster.state import Layout
from plinth_devcluster.versions import KUEUE

NAME = "kueue"
NAMESPACE = "kueue-system"
WEBHOOK_SERVICE = "kueue-webhook-service"
WEBHOOK_SECRET = "kueue-webhook-server-cert"
CERT_FILES = ("tls.crt", "tls.key", "ca.crt")
#: The CRDs whose conversion webhook Kueue's certificate rotator injects its CA into (it
#: never reports ready while one of them has none).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
PODS_READY_TIMEOUT = "5m"
#: libyaml's loader when PyYAML has it: the CRDs are large (workloads: 19,000 lines).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CONCURRENCY = {
    "Job.batch": 5,
    "Workload.kueue.x-k8s.io": 5,
    "LocalQueue.kueue.x-k8s.io": 1,
    "ClusterQueue.kueue.x-k8s.io": 1,
    "ResourceFlavor.kueue.x-k8s.io": 1,
}


class Starter(Protocol):
    """What `up` offers an add-on: start a recorded program, wait for a condition."""

    def start(self, program: Program) -> ProcessRecord: ...

    def ready(self, what: str, check: Callable[[], bool]) -> None: ...


@dataclass(frozen=True)
class KueueFiles:
    """Kueue's files in the cluster's state folder."""

    root: Path

    @classmethod
    def of(cls, layout: Layout) -> KueueFiles:
        return cls(root=layout.config / NAME)  # `up` empties config/ first

    @property
    def crds(self) -> Path:
        return self.root / "crds"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def certs(self) -> Path:
        return self.root / "certs"


def binary(progress: Progress) -> Path:
    """The cached Kueue manager, built from its module first if needed (before `start`)."""
    return find_binary(NAME, progress=progress)


def module_dir() -> Path:
    """Kueue's module source in the Go module cache (downloaded if it was cleaned)."""
    done = subprocess.run(
        [str(find_go()), "mod", "download", "-json", f"{KUEUE.module}@{KUEUE.version}"],
        env=go_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"cannot download {KUEUE.module}@{KUEUE.version}:\n{done.stderr}")
    return Path(json.loads(done.stdout)["Dir"])


def with_conversion_webhook(crd: dict[str, Any]) -> dict[str, Any]:
    """`crd` with the conversion webhook Kueue's own install patches in (for the rotator)."""
    service = {"namespace": NAMESPACE, "name": WEBHOOK_SERVICE, "path": "/convert"}
    conversion = {
        "strategy": "Webhook",
        "webhook": {"clientConfig": {"service": service}, "conversionReviewVersions": ["v1"]},
    }
    return {**crd, "spec": {**crd["spec"], "conversion": conversion}}


def write_crds(module: Path, folder: Path) -> Path:
    """Kueue's CRDs, the converted ones with their conversion webhook, as files in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted((module / "config" / "components" / "crd" / "bases").glob("*.yaml")):
        crd = yaml.load(source.read_text(), Loader=YAML_LOADER)
        if crd["spec"]["names"]["plural"] in CONVERTED:
            crd = with_conversion_webhook(crd)
        (folder / f"{source.stem}.json").write_text(json.dumps(crd))
    return folder


def configuration(health_port: int, webhook_port: int, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2) for a manager out of cluster."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": LOOPBACK, "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {
            "enable": True,
            "webhookServiceName": WEBHOOK_SERVICE,
            "webhookSecretName": WEBHOOK_SECRET,
        },
        "controller": {"groupKindConcurrency": CONCURRENCY},
        "clientConnection": {"qps": 50, "burst": 100},
        "waitForPodsReady": {"timeout": PODS_READY_TIMEOUT},
        "integrations": {"frameworks": ["batch/job"]},
        # An aggregated API server of its own, on a fixed port; nothing here uses it.
        "featureGates": {"VisibilityOnDemand": False},
    }


def program(kueue: Path, kubeconfig: Path, config: Path) -> Program:
    return Program(
        name=NAME,
        argv=(str(kueue), f"--config={config}", f"--kubeconfig={kubeconfig}"),
    )


def kubectl_run(kubectl: Path, kubeconfig: Path, *args: str) -> None:
    """Run kubectl against the cluster; raise with its stderr if it fails."""
    done = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:2])} failed:\n{done.stderr.strip()}")


def install_crds(kubectl: Path, kubeconfig: Path, folder: Path) -> None:
    """Apply the CRDs server-side (they are too large for client-side apply); wait for them."""
    kubectl_run(kubectl, kubeconfig, "apply", "--server-side", "-f", str(folder))
    wait = ("wait", "--for=condition=Established", "--timeout=60s", "-f", str(folder))
    kubectl_run(kubectl, kubeconfig, *wait)


def create_namespace_and_secret(api: client.ApiClient) -> None:
    """`kueue-system` and the empty Secret Kueue's certificate rotator fills (as its install
    creates them: the rotator only updates an existing Secret)."""
    core = client.CoreV1Api(api)
    metadata = client.V1ObjectMeta(name=NAMESPACE)
    ignore_exists(lambda: core.create_namespace(client.V1Namespace(metadata=metadata)))
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name=WEBHOOK_SECRET))
    ignore_exists(lambda: core.create_namespaced_secret(NAMESPACE, secret))


def ignore_exists(create: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as error:
        if error.status != 409:
            raise


def mount_webhook_secret(api: client.ApiClient, cert_dir: Path) -> bool:
    """Copy Kueue's certificate Secret into `cert_dir`, as a kubelet mounts it in a pod.

    False while the Secret has no certificate yet."""
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(WEBHOOK_SECRET, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    data = secret.data or {}
    if not all(data.get(name) for name in CERT_FILES):
        return False
    cert_dir.mkdir(parents=True, exist_ok=True)
    for name in CERT_FILES:
        (cert_dir / name).write_bytes(base64.b64decode(data[name]))
    (cert_dir / "tls.key").chmod(0o600)
    return True


def start(starter: Starter, layout: Layout, kueue: Path, kubectl: Path, kubeconfig: Path) -> None:
    """Install Kueue's CRDs and namespace, start its manager and wait until it is ready."""
    files = KueueFiles.of(layout)
    install_crds(kubectl, kubeconfig, write_crds(module_dir(), files.crds))
    health_port, webhook_port = free_ports(2)
    config = configuration(health_port, webhook_port, files.certs)
    files.config.write_text(yaml.safe_dump(config, sort_keys=False))
    with api_client(kubeconfig) as api:
        create_namespace_and_secret(api)
        starter.start(program(kueue, kubeconfig, files.config))
        starter.ready("kueue certificates", lambda: mount_webhook_secret(api, files.certs))
    # The main manager's own check: a bootstrap manager (certificates) serves a bare /readyz.
    readyz = f"http://{LOOPBACK}:{health_port}/readyz/readyz"
    starter.ready("kueue", lambda: http_ok(readyz))
