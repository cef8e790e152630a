"""The Kubeflow training operator (v1, pinned in `versions.py`): an add-on of the emulated cluster.

Start it with `plinth up --with kubeflow`, or from Python with
`plinth_devcluster.up(name, state_dir=..., addons=("kubeflow",))`; `plinth down` stops it
with the rest. It is there to compare Plinth with what platform teams run today (see
`bench/bench_side_by_side.py`). The manager (`cmd/training-operator.v1`) is built once from its
Go module into the cache (`plinth build --only training-operator.v1`, about 3 minutes cold on
2 cores). `up` then installs the PyTorchJob CRD from that module (`manifests/base/crds`) and
runs the manager as a process, out of cluster, with the admin kubeconfig, only the PyTorchJob
controller (`--enable-scheme=pytorchjob`) and `--controller-threads` reconcile workers
(`up(kubeflow_threads=...)`; by default as many as Plinth's reconcile workers).

Out of cluster the manager starts no job controller before its webhook certificates are
"mounted", as in its own Deployment. Its certificate rotator (open-policy-agent's
cert-controller) fills an existing Secret `kubeflow/training-operator-webhook-cert` and
injects its CA into the ValidatingWebhookConfiguration `validator.training-operator.kubeflow.org`,
so `up` creates both first: the Secret empty, the configuration with one webhook that matches
nothing (`rules: []`, `failurePolicy: Ignore`), so the API server never calls it. `up` then
copies the filled Secret into the certificate folder, as a kubelet mounts it in a pod. The
rotator only checks that `tls.crt` exists in a folder hard-coded to
`/tmp/k8s-webhook-server/serving-certs` (polling with a backoff of ~17 minutes in all, so one
start suffices); the webhook server reads `$TMPDIR/k8s-webhook-server/serving-certs`, and
`$TMPDIR` is this cluster's own folder, so clusters running at once never serve each other's
keys. `up` writes the certificates into both.

Metrics (controller-runtime's, `rest_client_requests_total` among them) are served on a
loopback port; `metrics_url(state_dir)` finds it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster.binaries import find_binary
from plinth_devcluster.components import LOOPBACK, Program
from plinth_devcluster.gobuild import BuildError, Progress, find_go, go_environment
from plinth_devcluster.kueue import Starter, ignore_exists, kubectl_run
from plinth_devcluster.network import free_ports, http_ok
from plinth_devcluster.nodes import api_client
from plinth_devcluster.state import DEFAULT_NAME, Layout
from plinth_devcluster.versions import KUBEFLOW_TRAINING

NAME = "kubeflow"
BINARY = "training-operator.v1"
NAMESPACE = "kubeflow"  # the manager's default (MY_POD_NAMESPACE unset)
WEBHOOK_SECRET = "training-operator-webhook-cert"
WEBHOOK_CONFIGURATION = "validator.training-operator.kubeflow.org"
CERT_FILES = ("tls.crt", "tls.key", "ca.crt")
#: Where the rotator looks for `tls.crt` before it lets the job controllers start (fixed).
ROTATOR_CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
#: The schemes (job kinds) the manager runs, and the CRDs installed for them.
SCHEMES = ("pytorchjob",)
#: As many reconcile workers as Plinth's operator (`plinth.runtime.operator.RECONCILE_WORKERS`).
DEFAULT_THREADS = 8


@dataclass(frozen=True)
class KubeflowFiles:
    """The training operator's files in the cluster's state folder."""

    root: Path

    @classmethod
    def of(cls, layout: Layout) -> KubeflowFiles:
        return cls(root=layout.config / NAME)  # `up` empties config/ first

    @property
    def tmpdir(self) -> Path:
        """The manager's $TMPDIR (its webhook server's certificates live below it)."""
        return self.root / "tmp"

    @property
    def certs(self) -> Path:
        return self.tmpdir / "k8s-webhook-server" / "serving-certs"

    @property
    def endpoints(self) -> Path:
        """The loopback ports the manager serves on (JSON: metrics, health, webhook)."""
        return self.root / "endpoints.json"


def binary(progress: Progress) -> Path:
    """The cached training operator, built from its module first if needed (before `start`)."""
    return find_binary(BINARY, progress=progress)


def module_dir() -> Path:
    """The training operator's module source in the Go module cache (downloaded if needed)."""
    wanted = f"{KUBEFLOW_TRAINING.module}@{KUBEFLOW_TRAINING.version}"
    done = subprocess.run(
        [str(find_go()), "mod", "download", "-json", wanted],
        env=go_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"cannot download {wanted}:\n{done.stderr}")
    return Path(json.loads(done.stdout)["Dir"])


def crd_files(module: Path) -> list[Path]:
    """The module's CRD manifests of the enabled schemes (`kubeflow.org_pytorchjobs.yaml`)."""
    folder = module / "manifests" / "base" / "crds"
    return [folder / f"kubeflow.org_{scheme}s.yaml" for scheme in SCHEMES]


def install_crds(kubectl: Path, kubeconfig: Path, files: list[Path]) -> None:
    """Apply the CRDs server-side (they are large)."""
    paths = [arg for path in files for arg in ("-f", str(path))]
    kubectl_run(kubectl, kubeconfig, "apply", "--server-side", *paths)


def crds_established(api: client.ApiClient) -> bool:
    """Whether the enabled schemes' CRDs are Established (`kubectl wait` trips over a fresh
    CRD whose status has no conditions yet)."""
    extensions = client.ApiextensionsV1Api(api)
    for scheme in SCHEMES:
        crd = extensions.read_custom_resource_definition(f"{scheme}s.kubeflow.org")
        conditions = (crd.status.conditions if crd.status else None) or []
        if not any(c.type == "Established" and c.status == "True" for c in conditions):
            return False
    return True


def webhook_configuration() -> dict[str, Any]:
    """The ValidatingWebhookConfiguration the rotator injects its CA into; it matches nothing."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION},
        "webhooks": [
            {
                "name": "validate.training-operator.kubeflow.org",
                "clientConfig": {"url": "https://127.0.0.1:9/never-called"},
                "rules": [],
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


def create_namespace_secret_and_webhook(api: client.ApiClient) -> None:
    """`kubeflow`, the empty certificate Secret and the webhook configuration (the rotator only
    updates existing ones)."""
    core = client.CoreV1Api(api)
    metadata = client.V1ObjectMeta(name=NAMESPACE)
    ignore_exists(lambda: core.create_namespace(client.V1Namespace(metadata=metadata)))
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name=WEBHOOK_SECRET))
    ignore_exists(lambda: core.create_namespaced_secret(NAMESPACE, secret))
    admission = client.AdmissionregistrationV1Api(api)
    ignore_exists(
        lambda: admission.create_validating_webhook_configuration(webhook_configuration())  # type: ignore[arg-type]
    )


def mount_webhook_secret(api: client.ApiClient, files: KubeflowFiles) -> bool:
    """Copy the certificate Secret into the manager's certificate folder (and `tls.crt` etc.
    into the rotator's fixed folder if none is there). False while the Secret is empty."""
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(WEBHOOK_SECRET, NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    data = secret.data or {}
    if not all(data.get(name) for name in CERT_FILES):
        return False
    decoded = {name: base64.b64decode(data[name]) for name in CERT_FILES}
    write_certs(files.certs, decoded)
    if not (ROTATOR_CERT_DIR / "tls.crt").exists():
        write_certs(ROTATOR_CERT_DIR, decoded)  # only its existence is checked
    return True


def seed_certs(files: KubeflowFiles) -> None:
    """Where the rotator's fixed folder already holds certificates (an earlier cluster's),
    the rotator lets the manager go on at once, and its webhook server reads its own folder
    before `up` has copied this cluster's Secret there: the manager then exits. Those
    certificates are copied there first (the webhook is never called; the server reloads the
    files when `up` writes this cluster's)."""
    if all((ROTATOR_CERT_DIR / name).is_file() for name in CERT_FILES):
        write_certs(files.certs, {n: (ROTATOR_CERT_DIR / n).read_bytes() for n in CERT_FILES})


def write_certs(folder: Path, certs: Mapping[str, bytes]) -> None:
    """Write the certificate files (`CERT_FILES`, decoded bytes) into `folder`, the key
    readable by its owner only."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in CERT_FILES:
        (folder / name).write_bytes(certs[name])
    (folder / "tls.key").chmod(0o600)


def program(
    binary_path: Path, kubeconfig: Path, files: KubeflowFiles, ports: dict[str, int], threads: int
) -> Program:
    return Program(
        name=NAME,
        argv=(
            str(binary_path),
            f"--kubeconfig={kubeconfig}",
            *(f"--enable-scheme={scheme}" for scheme in SCHEMES),
            f"--controller-threads={threads}",
            f"--metrics-bind-address={LOOPBACK}:{ports['metrics']}",
            f"--health-probe-bind-address={LOOPBACK}:{ports['health']}",
            f"--webhook-server-port={ports['webhook']}",
        ),
        extra_env=(("TMPDIR", str(files.tmpdir)),),
    )


def start(
    starter: Starter,
    layout: Layout,
    binary_path: Path,
    kubectl: Path,
    kubeconfig: Path,
    *,
    threads: int = DEFAULT_THREADS,
) -> None:
    """Install the CRDs, namespace, Secret and webhook configuration, start the manager, hand
    it its certificates and wait until it is ready (its job controllers then run)."""
    if threads < 1:
        raise ValueError(f"the training operator needs at least one thread, not {threads}")
    files = KubeflowFiles.of(layout)
    files.tmpdir.mkdir(parents=True, exist_ok=True)
    install_crds(kubectl, kubeconfig, crd_files(module_dir()))
    metrics, health, webhook = free_ports(3)
    ports = {"metrics": metrics, "health": health, "webhook": webhook}
    files.endpoints.write_text(json.dumps(ports))
    with api_client(kubeconfig) as api:
        starter.ready("kubeflow CRDs", lambda: crds_established(api))
        create_namespace_secret_and_webhook(api)
        seed_certs(files)
        starter.start(program(binary_path, kubeconfig, files, ports, threads))
        starter.ready("kubeflow certificates", lambda: mount_webhook_secret(api, files))
    # Ready once the rotator saw the certificates, injected its CA and the webhook server runs.
    starter.ready("kubeflow training operator", lambda: http_ok(f"{url(health)}/readyz"))


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def metrics_url(state_dir: Path | None = None, name: str = DEFAULT_NAME) -> str:
    """The training operator's metrics endpoint on the cluster in `state_dir` (or `name`'s)."""
    files = KubeflowFiles.of(Layout.of(name, state_dir))
    return f"{url(json.loads(files.endpoints.read_text())['metrics'])}/metrics"


def pytorchjob(
    name: str,
    namespace: str,
    workers: int,
    *,
    gpus: int = 1,
    image: str = "registry.example/trainer:1",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PyTorchJob of `workers` pods in all (1 master + `workers - 1` workers), each with
    `gpus` nvidia.com/gpu, the pod annotations on both replica templates."""
    resources = {"nvidia.com/gpu": str(gpus)}

    def replicas(count: int) -> dict[str, Any]:
        container = {
            "name": "pytorch",  # the container name the operator looks for
            "image": image,
            "resources": {"requests": resources, "limits": resources},
        }
        template = {
            "metadata": {"annotations": dict(annotations or {})},
            "spec": {"containers": [container]},
        }
        return {"replicas": count, "restartPolicy": "OnFailure", "template": template}

    specs = {"Master": replicas(1)}
    if workers > 1:
        specs["Worker"] = replicas(workers - 1)
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pytorchReplicaSpecs": specs},
    }
