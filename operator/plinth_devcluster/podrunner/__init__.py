"""A test-only kubelet for the emulated cluster: pods annotated `runner: local` run here.

kwok fakes every pod's life; a pod annotated `devcluster.plinth.dev/runner: local` is instead
run for real by a `PodRunner`: once the scheduler has bound it (`spec.nodeName` set), its one
container's command runs as a local process, and the process is reported as the pod's status
(Running, then Succeeded or Failed with the exit code), so end-to-end tests train for real.

The pod annotations the emulated cluster understands (kwok's stages read them; see
`plinth_devcluster/stages/README.md`):

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
- Each pod gets a loopback address of its own (127.64.0.0/10) as its pod IP, on which
  every port its containers declare is free; `status.podIP` (and a fieldRef to it) says it.
  `tritonserver` runs the real server of the nvidia-pytriton wheel, bound to that address
  (see `triton`), so the operator reaches a Triton pod's ports at its pod IP.
- Volumes: an emptyDir is a folder of the pod's own, a hostPath that path, a
  persistentVolumeClaim the folder `<log_dir>/claims/<namespace>/<claim>`; a command word
  or variable naming a path under a mount names the local folder instead.
- Init containers run in order before the container; one that fails is run again after a
  backoff (restartPolicy Always or OnFailure), its last line of output reported as its
  termination message. The container's startup, readiness and liveness probes (httpGet,
  tcpSocket) run as a kubelet runs them (`probes`): readiness sets the pod's Ready, a failed
  startup or liveness probe restarts the container, and so does an exit under
  restartPolicy Always (restartCount and lastState reported).
- Only single-container pods run; a pod whose environment cannot be resolved (a missing
  Secret, say) waits in CreateContainerConfigError and is retried every `watch_seconds`.
  Pods found already Running when a runner starts (another runner's) are left alone.

Use one runner per namespace (`namespace=`), or one for the whole cluster: two runners that
see the same pod would both run it. `stop()` kills every process the runner started and
leaves their pods as they are (as a kubelet that goes away would).

The modules, by responsibility: `pod` (the facts read from a pod), `watch` (listing and
watching pods), `environment`, `addresses` and `command` (a container's environment, local
addresses and argv), `launch` (a pod's process prepared and started), `process` (one process
group, stopped gracefully or not), `supervision` (a started pod's life and end), `status`
and `kubelet_api` (what is reported to the API server), `logs` (where output goes), and
`runner` (the `PodRunner` that ties them together).
"""

from plinth_devcluster.podrunner.addresses import LocalAddresses
from plinth_devcluster.podrunner.command import (
    DEFAULT_IMAGES,
    REFERENCE_TRAINER,
    LocalImage,
    local_argv,
)
from plinth_devcluster.podrunner.launch import PodRun, PreparedContainer, StartedPod
from plinth_devcluster.podrunner.pod import RUNNER_ANNOTATION, ContainerConfigError, PodFacts
from plinth_devcluster.podrunner.runner import PodRunner, running

__all__ = [
    "DEFAULT_IMAGES",
    "REFERENCE_TRAINER",
    "RUNNER_ANNOTATION",
    "ContainerConfigError",
    "LocalAddresses",
    "LocalImage",
    "PodFacts",
    "PodRun",
    "PodRunner",
    "PreparedContainer",
    "StartedPod",
    "local_argv",
    "running",
]
