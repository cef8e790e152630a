"""A test-only kubelet for the emulated cluster: pods annotated `runner: local` run here.

kwok fakes every pod's life; a pod annotated `devcluster.plinth.dev/runner: local` is instead
run for real by a `PodRunner`: once the scheduler has bound it (`spec.nodeName` set), its one
container's command runs as a local process, and the process is reported as the pod's status
(Running, then Succeeded or Failed with the exit code), so end-to-end tests train for real.

The pod annotations the emulated cluster understands (kwok's stages read them; see
`devcluster/stages/README.md`):

- `devcluster.plinth.dev/runner: "local"`: kwok leaves the pod to this runner (kwok only
  deletes it, 5 s after its grace period, if no runner finalized its deletion).
- `devcluster.plinth.dev/run-seconds: "N"`: a Job's pod stays Running at least N seconds
  (a number; at most one second more), then succeeds. Default: 1 s.
- `devcluster.plinth.dev/run-forever: "true"`: a Job's pod stays Running until deleted.
- `devcluster.plinth.dev/exit-code: "N"`: a non-zero N makes a Job's pod fail after its run
  time: phase Failed, every container `terminated` with exit code N and reason Error.
- `devcluster.plinth.dev/fail-index: "I"`: with exit-code, only the pod whose
  `batch.kubernetes.io/job-completion-index` annotation is I fails; the others succeed.

How a local pod runs:

- The container's `image` is ignored, except that an image named in `images` (by full
  reference, reference without tag, or last path component, e.g. `plinth-trainer`) supplies
  the entrypoint when the container has no `command`, and maps paths inside the image to
  local files. By default the reference trainer image runs `images/trainer/train.py` of this
  checkout through `python -m plinth_client.launch`.
- The executables `python`, `python3`, `python3.X` (any folder) become this interpreter
  (`sys.executable`); `torchrun` becomes `sys.executable -m torch.distributed.run`.
- The environment is resolved as a kubelet would: plain values, `$(VAR)` references,
  `fieldRef` (metadata name, namespace, uid, labels, annotations; spec nodeName and
  serviceAccountName; pod and host IPs), `secretKeyRef`, `configMapKeyRef` and `envFrom`.
  It is laid over this process's environment, minus any variable of the training contract
  (PLINTH_*, PET_*, MASTER_*, RANK...) and KUBECONFIG.
- Addresses are made local: every host name ending in `.svc` (or `.svc.cluster.local`),
  alone or followed by `:port` or `/`, becomes 127.0.0.1. Pods of one attempt share a
  table of local ports, keyed by (namespace, `plinth.dev/job-name` label or owning Job,
  `plinth.dev/attempt` label): `PET_MASTER_PORT`, `MASTER_PORT` and the port of any
  address of a pod in the same headless service (`<host>.<subdomain>.<namespace>.svc:P`)
  get a free local port, the same one for every pod of the attempt, a new one per attempt.
  Other services keep their port, unless `service_ports` maps `<service>.<namespace>` to
  the local port where a test serves it (e.g. the operator's metrics intake).
- The process runs in its own session and working folder; stdout and stderr go to
  `<log_dir>/<namespace>/<pod>.log`. Deleting the pod sends SIGTERM to its process group,
  SIGKILL after the grace period, reports the exit and deletes the pod with grace period 0.
- Deleting the pod's Node SIGKILLs its process (within `watch_seconds`) and reports
  nothing, as when a machine is lost: the pod stays Running until the pod garbage collector
  marks it Failed with condition DisruptionTarget (reason DeletionByPodGC) and deletes it,
  40 to 60 s later.
- Only single-container pods run (init containers are ignored); a pod whose environment
  cannot be resolved (a missing Secret, say) waits in CreateContainerConfigError and is
  retried every `watch_seconds`. Pods found already Running when a runner starts (another
  runner's) are left alone.

Use one runner per namespace (`namespace=`), or one for the whole cluster: two runners that
see the same pod would both run it. `stop()` kills every process the runner started and
leaves their pods as they are (as a kubelet that goes away would).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from plinth.devcluster.nodes import api_client
from plinth.devcluster.waiting import WaitTimeoutError, wait_for

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "devcluster.plinth.dev/"
RUNNER_ANNOTATION = f"{ANNOTATION_PREFIX}runner"
LOCAL_RUNNER = "local"
JOB_NAME_LABEL = "plinth.dev/job-name"
ATTEMPT_LABEL = "plinth.dev/attempt"
LOCAL_IP = "127.0.0.1"
HTTP_NOT_FOUND, HTTP_CONFLICT, HTTP_GONE = 404, 409, 410
SIGNAL_EXIT_BASE = 128
DEFAULT_GRACE_SECONDS = 30.0

REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE_TRAINER = REPO_ROOT / "images" / "trainer" / "train.py"
CONTRACT_PREFIXES = ("PLINTH_", "PET_", "TORCHELASTIC_")
CONTRACT_NAMES = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "KUBECONFIG"}
)
MASTER_PORT_VARIABLES = ("PET_MASTER_PORT", "MASTER_PORT")
PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")
VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([-._A-Za-z0-9]+)\)")
SERVICE_ADDRESS = re.compile(
    r"(?P<host>[A-Za-z0-9][-A-Za-z0-9.]*\.svc(?:\.cluster\.local)?)(?::(?P<port>\d+))?(?=$|[/,])"
)
FIELD_PATH = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")


@dataclass(frozen=True)
class LocalImage:
    """What a container image means locally: its entrypoint and files inside it."""

    entrypoint: tuple[str, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)


DEFAULT_IMAGES: Mapping[str, LocalImage] = {
    "plinth-trainer": LocalImage(
        entrypoint=("python", "-m", "plinth_client.launch", "/opt/plinth/train.py"),
        files={"/opt/plinth/train.py": REFERENCE_TRAINER},
    )
}


class ContainerConfigError(ValueError):
    """The pod's container cannot be started as given; the message says why."""


# ---- the pod, as read from the API server -------------------------------------------------


@dataclass(frozen=True)
class AttemptKey:
    """The pods that share rendezvous ports: one attempt of one job in one namespace."""

    namespace: str
    job: str
    attempt: str


@dataclass(frozen=True)
class PodFacts:
    """What the runner needs of a pod, read once from its JSON."""

    uid: str
    namespace: str
    name: str
    node_name: str | None
    phase: str
    terminating: bool
    grace_seconds: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    subdomain: str | None
    hostname: str
    containers: tuple[Mapping[str, Any], ...]
    service_account: str
    owner_job: str | None

    @classmethod
    def parse(cls, pod: Mapping[str, Any]) -> PodFacts:
        metadata, spec = pod["metadata"], pod.get("spec", {})
        return cls(
            uid=str(metadata["uid"]),
            namespace=str(metadata["namespace"]),
            name=str(metadata["name"]),
            node_name=spec.get("nodeName") or None,
            phase=str(pod.get("status", {}).get("phase") or "Pending"),
            terminating=metadata.get("deletionTimestamp") is not None,
            grace_seconds=grace_seconds(metadata, spec),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            subdomain=spec.get("subdomain") or None,
            hostname=str(spec.get("hostname") or metadata["name"]),
            containers=tuple(spec.get("containers") or ()),
            service_account=str(spec.get("serviceAccountName") or "default"),
            owner_job=owner_job(metadata),
        )

    @property
    def is_local(self) -> bool:
        return self.annotations.get(RUNNER_ANNOTATION) == LOCAL_RUNNER

    @property
    def attempt(self) -> AttemptKey:
        job = self.labels.get(JOB_NAME_LABEL) or self.owner_job or self.name
        return AttemptKey(self.namespace, job, self.labels.get(ATTEMPT_LABEL, ""))

    @property
    def container(self) -> Mapping[str, Any]:
        if len(self.containers) != 1:
            raise ContainerConfigError(
                f"the local pod runner runs single-container pods; this one has "
                f"{len(self.containers)}"
            )
        return self.containers[0]

    def field(self, path: str) -> str:
        """The value of a `fieldRef` path, as the kubelet resolves it."""
        if match := FIELD_PATH.fullmatch(path):
            values = self.labels if match[1] == "labels" else self.annotations
            return values.get(match[2], "")
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": self.node_name or "",
            "spec.serviceAccountName": self.service_account,
        }
        if path in simple:
            return simple[path]
        if path.startswith("status.") and path.endswith(("IP", "IPs")):
            return LOCAL_IP
        raise ContainerConfigError(f"unsupported fieldRef {path!r}")


def grace_seconds(metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> float:
    """The deletion's grace period if one was asked, else the pod's own."""
    for value in (
        metadata.get("deletionGracePeriodSeconds"),
        spec.get("terminationGracePeriodSeconds"),
    ):
        if value is not None:
            return float(value)
    return DEFAULT_GRACE_SECONDS


def owner_job(metadata: Mapping[str, Any]) -> str | None:
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("kind") == "Job":
            return str(owner["name"])
    return None


# ---- the environment ----------------------------------------------------------------------


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return variables.get(match[1], match[0])

    return VARIABLE_REFERENCE.sub(replace, text)


class EnvironmentResolver:
    """Resolves a container's `env` and `envFrom` against the API server, as a kubelet does."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def resolve(self, pod: PodFacts, container: Mapping[str, Any]) -> dict[str, str]:
        variables: dict[str, str] = {}
        for source in container.get("envFrom") or ():
            variables.update(self._from_source(pod.namespace, source))
        for entry in container.get("env") or ():
            if "valueFrom" in entry:
                value = self._value_from(pod, entry["name"], entry["valueFrom"])
            else:
                value = expand(str(entry.get("value", "")), variables)
            if value is not None:
                variables[entry["name"]] = value
        return variables

    def _from_source(self, namespace: str, source: Mapping[str, Any]) -> dict[str, str]:
        prefix = str(source.get("prefix", ""))
        if ref := source.get("configMapRef"):
            data = self._data("ConfigMap", namespace, ref)
        else:
            data = self._data("Secret", namespace, source["secretRef"])
        return {f"{prefix}{key}": value for key, value in (data or {}).items()}

    def _value_from(self, pod: PodFacts, name: str, source: Mapping[str, Any]) -> str | None:
        if ref := source.get("fieldRef"):
            return pod.field(str(ref["fieldPath"]))
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if ref := source.get(key):
                return self._key(kind, pod.namespace, ref)
        raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")

    def _key(self, kind: str, namespace: str, ref: Mapping[str, Any]) -> str | None:
        data = self._data(kind, namespace, ref)
        key = str(ref["key"])
        if data is not None and key in data:
            return data[key]
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref['name']}")

    def _data(self, kind: str, namespace: str, ref: Mapping[str, Any]) -> dict[str, str] | None:
        """A Secret's (decoded) or ConfigMap's data; None if absent and optional."""
        name = str(ref["name"])
        secret = kind == "Secret"
        read = (
            self._core.read_namespaced_secret if secret else self._core.read_namespaced_config_map
        )
        try:
            response: Any = read(name, namespace, _preload_content=False)  # raw JSON
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'{kind.lower()} "{name}" not found') from None
        data: dict[str, str] = json.loads(response.data).get("data") or {}
        if secret:
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return data


def base_environment() -> dict[str, str]:
    """This process's environment without the training contract's variables or KUBECONFIG."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONTRACT_PREFIXES) and name not in CONTRACT_NAMES
    }
    operator_sources = REPO_ROOT / "operator"
    if operator_sources.is_dir():
        paths = [str(operator_sources), inherited.get("PYTHONPATH", "")]
        inherited["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return {**inherited, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


# ---- local addresses ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL_IP, 0))
        return int(probe.getsockname()[1])


class LocalAddresses:
    """Rewrites cluster addresses to loopback, with one table of local ports per attempt."""

    def __init__(self, service_ports: Mapping[str, int] | None = None) -> None:
        self._service_ports = dict(service_ports or {})
        self._lock = threading.Lock()
        self._ports: dict[AttemptKey, dict[str, int]] = {}
        self._taken: set[int] = set()

    def local_port(self, attempt: AttemptKey, port: str) -> int:
        """The local port standing for `port` in `attempt`; the same for every pod of it."""
        with self._lock:
            table = self._ports.setdefault(attempt, {})
            if port not in table:
                table[port] = self._new_port()
            return table[port]

    def _new_port(self) -> int:
        while (port := free_port()) in self._taken:
            pass
        self._taken.add(port)
        return port

    def localize(self, pod: PodFacts, environment: Mapping[str, str]) -> dict[str, str]:
        """`environment` with master ports and `.svc` addresses made local (see module doc)."""
        localized = {name: self._addresses(pod, value) for name, value in environment.items()}
        for name in MASTER_PORT_VARIABLES:
            if localized.get(name, "").isdigit():
                localized[name] = str(self.local_port(pod.attempt, localized[name]))
        return localized

    def _addresses(self, pod: PodFacts, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            host, port = match["host"], match["port"]
            service = host.removesuffix(".cluster.local").removesuffix(".svc")
            if service in self._service_ports:
                return f"{LOCAL_IP}:{self._service_ports[service]}"
            if port is None:
                return LOCAL_IP
            if in_gang(pod, host):
                port = str(self.local_port(pod.attempt, port))
            return f"{LOCAL_IP}:{port}"

        return SERVICE_ADDRESS.sub(replace, value)


def in_gang(pod: PodFacts, host: str) -> bool:
    """Whether `host` names a pod of the same headless service: `<pod>.<subdomain>.<ns>.svc`."""
    labels = host.split(".")
    return pod.subdomain is not None and labels[1:4] == [pod.subdomain, pod.namespace, "svc"]


# ---- the command --------------------------------------------------------------------------


def find_image(image: str, images: Mapping[str, LocalImage]) -> LocalImage | None:
    """The local meaning of `image`, by full reference, without tag or digest, or last part."""
    untagged = image.partition("@")[0]
    if ":" in untagged.rsplit("/", 1)[-1]:
        untagged = untagged.rsplit(":", 1)[0]
    for key in (image, untagged, untagged.rsplit("/", 1)[-1]):
        if key in images:
            return images[key]
    return None


def local_argv(
    container: Mapping[str, Any], environment: Mapping[str, str], images: Mapping[str, LocalImage]
) -> list[str]:
    """The container's command and args as a local argv (see the module doc)."""
    image = find_image(str(container.get("image", "")), images) or LocalImage()
    command = list(container.get("command") or image.entrypoint)
    if not command:
        raise ContainerConfigError(
            f"no command, and image {container.get('image')!r} has no local entrypoint"
        )
    words = [expand(str(word), environment) for word in [*command, *container.get("args", [])]]
    words = [str(image.files.get(word, word)) for word in words]
    return [*local_executable(words[0]), *words[1:]]


def local_executable(executable: str) -> list[str]:
    name = Path(executable).name
    if PYTHON_NAME.fullmatch(name):
        return [sys.executable]
    if name == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run"]
    return [executable]


# ---- status, as a kubelet reports it ------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, status: bool, at: str, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "status": str(status), "lastTransitionTime": at}
    return entry | ({"reason": reason} if reason else {})


def container_status(
    container: Mapping[str, Any], state: dict[str, Any], *, ready: bool
) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
    }


def running_status(container: Mapping[str, Any], pid: int, started: str) -> dict[str, Any]:
    running = {"running": {"startedAt": started}}
    return {
        "phase": "Running",
        "startTime": started,
        "hostIP": LOCAL_IP,
        "hostIPs": [{"ip": LOCAL_IP}],
        "podIP": LOCAL_IP,
        "podIPs": [{"ip": LOCAL_IP}],
        "conditions": [
            condition(kind, True, started)
            for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
        ],
        "containerStatuses": [
            container_status(container, running, ready=True) | {"containerID": f"local://{pid}"}
        ],
    }


def exit_status(returncode: int) -> int:
    """A Popen return code as a container exit code (killed by signal N: 128 + N)."""
    return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode


def terminated_status(
    container: Mapping[str, Any], pid: int, started: str, exit_code: int
) -> dict[str, Any]:
    finished = now()
    succeeded = exit_code == 0
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if succeeded else "Error",
        "startedAt": started,
        "finishedAt": finished,
        "containerID": f"local://{pid}",
    }
    reason = "PodCompleted" if succeeded else "PodFailed"
    return {
        "phase": "Succeeded" if succeeded else "Failed",
        "conditions": [
            condition(kind, False, finished, reason) for kind in ("ContainersReady", "Ready")
        ],
        "containerStatuses": [
            container_status(container, {"terminated": terminated}, ready=False)
            | {"containerID": f"local://{pid}"}
        ],
    }


def waiting_status(container: Mapping[str, Any] | None, message: str) -> dict[str, Any]:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": message}}
    statuses = [] if container is None else [container_status(container, waiting, ready=False)]
    return {"containerStatuses": statuses}


# ---- one local process --------------------------------------------------------------------


@dataclass(frozen=True)
class StartedPod:
    """What the runner started for a pod: a record for tests to read."""

    namespace: str
    name: str
    uid: str
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    log: Path
    pid: int


class LocalProcess:
    """A pod's process in its own session; stopped by process group, gracefully or not."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            self.popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self._kill_timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._exited = threading.Event()

    @property
    def exited(self) -> bool:
        """Whether the process and everything it left in its group are gone."""
        return self._exited.is_set()

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM to the group now, SIGKILL after `grace_seconds`; once, and not once exited."""
        with self._lock:
            if self._kill_timer is not None or self.exited:
                return
            self._kill_timer = threading.Timer(grace_seconds, self._signal, (signal.SIGKILL,))
            self._kill_timer.daemon = True
            self._kill_timer.start()
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the group now, as when its machine is lost."""
        with self._lock:
            if not self.exited:
                self._signal(signal.SIGKILL)

    def wait(self) -> int:
        """Wait for the process, kill whatever it left in its group; return its exit code."""
        returncode = self.popen.wait()
        with self._lock:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            self._signal(signal.SIGKILL)
        try:
            wait_for(lambda: not self._group_exists(), what=f"group {self.pid} gone", timeout=5)
        except WaitTimeoutError:
            log.warning("pod runner: processes of group %s outlived SIGKILL", self.pid)
        self._exited.set()
        return exit_status(returncode)

    def _signal(self, signum: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _group_exists(self) -> bool:
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class PodRun:
    """A pod this runner started: its process and how its end must be handled."""

    pod: PodFacts
    started: StartedPod
    process: LocalProcess
    started_at: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    deletion_requested: bool = False
    node_lost: bool = False
    thread: threading.Thread | None = None


# ---- the runner ---------------------------------------------------------------------------


class PodRunner:
    """Runs the cluster's `runner: local` pods as local processes (see the module doc).

    `start()` lists and watches pods in a background thread; `stop()` stops watching, kills
    every process started (SIGTERM, SIGKILL after `stop_grace_seconds`) and checks none is
    left. Also a context manager.
    """

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        namespace: str | None = None,
        images: Mapping[str, LocalImage] = DEFAULT_IMAGES,
        service_ports: Mapping[str, int] | None = None,
        watch_seconds: int = 2,
        stop_grace_seconds: float = 5.0,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.namespace = namespace
        self.images = images
        self.watch_seconds = watch_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self._api: client.ApiClient | None = None
        self._addresses = LocalAddresses(service_ports)
        self._runs: dict[str, PodRun] = {}
        self._blocked: dict[str, tuple[PodFacts, str]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- public API --

    def start(self) -> PodRunner:
        if self._watcher is not None:
            raise RuntimeError("this PodRunner was started already")
        self._api = api_client(self.kubeconfig)
        self._watcher = threading.Thread(target=self._watch_loop, name="podrunner", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching, kill every process started, and check that none is left."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=self.watch_seconds + 30)
        runs = self.runs()
        for run in runs:
            run.process.stop(self.stop_grace_seconds)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=self.stop_grace_seconds + 10)
        wait_for(
            lambda: all(run.process.exited for run in runs),
            what="every process of the pod runner to exit",
            timeout=self.stop_grace_seconds + 10,
        )
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]  # the client is untyped

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def log_path(self, namespace: str, name: str) -> Path:
        """Where the process of pod `namespace/name` writes stdout and stderr."""
        return self.log_dir / namespace / f"{name}.log"

    def log_text(self, namespace: str, name: str) -> str:
        path = self.log_path(namespace, name)
        return path.read_text(errors="replace") if path.exists() else ""

    def runs(self) -> list[PodRun]:
        with self._lock:
            return list(self._runs.values())

    def started(self, namespace: str | None = None) -> list[StartedPod]:
        """What was started, oldest first (optionally only in `namespace`)."""
        return [
            run.started
            for run in self.runs()
            if namespace is None or run.started.namespace == namespace
        ]

    # -- watching --

    @property
    def core(self) -> client.CoreV1Api:
        assert self._api is not None, "start() the PodRunner first"
        return client.CoreV1Api(self._api)

    def _list_call(self) -> tuple[Any, tuple[str, ...]]:
        """The client's list function for the pods watched, and its positional arguments."""
        if self.namespace is None:
            return self.core.list_pod_for_all_namespaces, ()
        return self.core.list_namespaced_pod, (self.namespace,)

    def _watch_loop(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            try:
                version = version or self._list_and_handle()
                self._retry_blocked()
                self._kill_on_lost_nodes()
                version = self._watch_from(version)
            except ApiException as error:
                if error.status != HTTP_GONE:
                    log.warning("pod runner: watch failed, listing again: %s", error)
                version = None
            except Exception:
                log.exception("pod runner: watch failed, listing again")
                version = None
                self._stopping.wait(0.5)

    def _list_and_handle(self) -> str:
        function, args = self._list_call()
        response = function(*args, _preload_content=False)
        listing = json.loads(response.data)
        for pod in listing["items"]:
            self._handle("ADDED", pod)
        return str(listing["metadata"]["resourceVersion"])

    def _watch_from(self, version: str) -> str:
        """Handle events for `watch_seconds`; return the resource version reached."""
        function, args = self._list_call()
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # untyped client
            function,
            *args,
            resource_version=version,
            timeout_seconds=self.watch_seconds,
            allow_watch_bookmarks=True,
            deserialize=False,
        )
        for event in stream:
            pod = event["object"]
            version = str(pod["metadata"]["resourceVersion"])
            if event["type"] != "BOOKMARK":
                self._handle(event["type"], pod)
            if self._stopping.is_set():
                break
        return version

    def _handle(self, event: str, raw: Mapping[str, Any]) -> None:
        """One pod event; errors are logged, never raised into the watch."""
        try:
            pod = PodFacts.parse(raw)
            if pod.is_local:
                self._reconcile(event, pod)
        except Exception:
            log.exception("pod runner: handling %s of a pod failed", event)

    def _reconcile(self, event: str, pod: PodFacts) -> None:
        with self._lock:
            run = self._runs.get(pod.uid)
        if event == "DELETED":
            self._blocked.pop(pod.uid, None)
            if run is not None:
                run.process.stop(min(pod.grace_seconds, self.stop_grace_seconds))
        elif pod.terminating:
            self._blocked.pop(pod.uid, None)
            self._terminate(pod, run)
        elif run is None and self._should_start(pod):
            self._start(pod)

    # -- starting --

    def _should_start(self, pod: PodFacts) -> bool:
        """Bound to a node, not started yet, and this runner is not stopping."""
        return bool(pod.node_name) and pod.phase == "Pending" and not self._stopping.is_set()

    def _start(self, pod: PodFacts) -> None:
        try:
            started = self._prepare(pod)
        except ContainerConfigError as error:
            self._block(pod, str(error))
            return
        self._blocked.pop(pod.uid, None)
        process = LocalProcess(started.argv, started.environment, started.log, self._workdir(pod))
        run = PodRun(pod, replace(started, pid=process.pid), process, now())
        run.thread = threading.Thread(
            target=self._supervise, args=(run,), name=f"pod-{pod.name}", daemon=True
        )
        with self._lock:
            self._runs[pod.uid] = run
        run.thread.start()

    def _prepare(self, pod: PodFacts) -> StartedPod:
        container = pod.container
        resolved = EnvironmentResolver(self.core).resolve(pod, container)
        contract = self._addresses.localize(pod, resolved)
        environment = {**base_environment(), "HOSTNAME": pod.hostname, **contract}
        return StartedPod(
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            argv=tuple(local_argv(container, contract, self.images)),
            environment=environment,
            log=self.log_path(pod.namespace, pod.name),
            pid=0,
        )

    def _workdir(self, pod: PodFacts) -> Path:
        return self.log_dir / pod.namespace / f"{pod.name}.workdir"

    def _block(self, pod: PodFacts, message: str) -> None:
        """Report a container that cannot start (once per message); retried by the watch."""
        previous = self._blocked.get(pod.uid)
        self._blocked[pod.uid] = (pod, message)
        if previous is None or previous[1] != message:
            log.warning("pod runner: %s/%s cannot start: %s", pod.namespace, pod.name, message)
            container = pod.containers[0] if pod.containers else None
            self._report(pod, waiting_status(container, message))

    def _retry_blocked(self) -> None:
        for pod, _ in list(self._blocked.values()):
            self._start(pod)

    # -- running and ending --

    def _supervise(self, run: PodRun) -> None:
        """Report Running, wait for the exit, report it; finish a requested deletion."""
        pod, container = run.pod, run.pod.container
        self._report(pod, running_status(container, run.process.pid, run.started_at))
        exit_code = run.process.wait()
        if self._stopping.is_set():
            return
        if not run.node_lost:
            status = terminated_status(container, run.process.pid, run.started_at, exit_code)
            self._report(pod, status)
        with run.lock:
            run.finished = True
            delete = run.deletion_requested
        if delete:
            self._delete_now(pod)

    def _kill_on_lost_nodes(self) -> None:
        """A deleted node takes its pods' processes with it, unreported: no kubelet is left."""
        running = [run for run in self.runs() if not run.process.exited and not run.node_lost]
        for node in {run.pod.node_name for run in running}:
            if node is None or self._node_exists(node):
                continue
            for run in running:
                if run.pod.node_name == node:
                    run.node_lost = True
                    run.process.kill()

    def _node_exists(self, name: str) -> bool:
        try:
            self.core.read_node(name, _preload_content=False)
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return False
            raise
        return True

    def _terminate(self, pod: PodFacts, run: PodRun | None) -> None:
        """The pod is being deleted: stop its process, then delete it with grace period 0."""
        if run is None:
            if pod.node_name:
                self._delete_now(pod)
            return
        with run.lock:
            run.deletion_requested = True
            finished = run.finished
        if finished:
            self._delete_now(pod)
        else:
            run.process.stop(pod.grace_seconds)

    def _report(self, pod: PodFacts, status: dict[str, Any]) -> None:
        body = {"metadata": {"uid": pod.uid}, "status": status}
        try:
            self.core.patch_namespaced_pod_status(
                pod.name,
                pod.namespace,
                body,
                _content_type="application/strategic-merge-patch+json",
            )
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                log.warning("pod runner: status of %s/%s: %s", pod.namespace, pod.name, error)

    def _delete_now(self, pod: PodFacts) -> None:
        options = client.V1DeleteOptions(
            grace_period_seconds=0, preconditions=client.V1Preconditions(uid=pod.uid)
        )
        try:
            self.core.delete_namespaced_pod(pod.name, pod.namespace, body=options)
        except ApiException as error:
            if error.status not in (HTTP_NOT_FOUND, HTTP_CONFLICT):
                log.warning("pod runner: deleting %s/%s: %s", pod.namespace, pod.name, error)


@contextmanager
def running(
    kubeconfig: Path,
    log_dir: Path,
    *,
    namespace: str | None = None,
    images: Mapping[str, LocalImage] = DEFAULT_IMAGES,
    service_ports: Mapping[str, int] | None = None,
    stop_grace_seconds: float = 5.0,
) -> Iterator[PodRunner]:
    """A started PodRunner (see `PodRunner`), stopped (every process killed) on leaving."""
    with PodRunner(
        kubeconfig,
        log_dir,
        namespace=namespace,
        images=images,
        service_ports=service_ports,
        stop_grace_seconds=stop_grace_seconds,
    ) as runner:
        yield runner


__all__ = [
    "DEFAULT_IMAGES",
    "RUNNER_ANNOTATION",
    "ContainerConfigError",
    "LocalAddresses",
    "LocalImage",
    "PodFacts",
    "PodRunner",
    "StartedPod",
    "running",
]
