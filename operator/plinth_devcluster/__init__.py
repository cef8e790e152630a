"""The local emulated Kubernetes cluster: control plane built from Go modules, kwok GPU nodes.

A developer tool, in a package of its own beside `plinth` (the operator never imports it, and
the operator image does not hold it): `up()` starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok with fake `nvidia.com/gpu` nodes, and returns
a `ClusterInfo` with a kubeconfig; `down()` stops it all. Binaries are built once from their
pinned Go modules (`versions.py`) into the user's cache folder. `cli` holds the `plinth up`,
`down`, `status` and `build` commands; `podrunner` runs chosen pods as local processes;
`kueue` adds real Kueue (`up(..., addons=("kueue",))`, `plinth up --with kueue`);
`kubeflow` the Kubeflow training operator (`addons=("kubeflow",)`, `plinth up --with kubeflow`).
"""

from plinth_devcluster.binaries import (
    Binaries,
    BinaryMissingError,
    cache_root,
    ensure_binaries,
    find_binary,
)
from plinth_devcluster.cluster import (
    ClusterAlreadyRunningError,
    ClusterInfo,
    ClusterStatus,
    ProcessState,
    ProgramExitedError,
    add_gpu_nodes,
    down,
    status,
    up,
)
from plinth_devcluster.gobuild import BuildError
from plinth_devcluster.nodes import (
    DEFAULT_GPU_PRODUCT,
    GPU_RESOURCE,
    GpuNodePool,
    api_client,
    revive_node,
    silence_node,
)
from plinth_devcluster.processes import StillRunningError
from plinth_devcluster.versions import SOURCES, GoSource
from plinth_devcluster.waiting import WaitTimeoutError

__all__ = [
    "DEFAULT_GPU_PRODUCT",
    "GPU_RESOURCE",
    "SOURCES",
    "Binaries",
    "BinaryMissingError",
    "BuildError",
    "ClusterAlreadyRunningError",
    "ClusterInfo",
    "ClusterStatus",
    "GoSource",
    "GpuNodePool",
    "ProcessState",
    "ProgramExitedError",
    "StillRunningError",
    "WaitTimeoutError",
    "add_gpu_nodes",
    "api_client",
    "cache_root",
    "down",
    "ensure_binaries",
    "find_binary",
    "revive_node",
    "silence_node",
    "status",
    "up",
]
