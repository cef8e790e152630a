"""Pinned versions of every program the emulated cluster runs, and the Go module each comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoSource:
    """One pinned Go module that yields one or more binaries in a single build."""

    name: str
    module: str
    version: str
    binaries: tuple[str, ...]
    cold_build: str = "a few minutes"
    # Bumped when the way the binaries are built changes (e.g. new -ldflags), so that the
    # cache keeps them apart and a binary built the old way is rebuilt.
    build_revision: int = 0

    @property
    def cache_key(self) -> str:
        """The version plus the build revision: what a cached binary's folder is named by."""
        return self.version if not self.build_revision else f"{self.version}-r{self.build_revision}"


KUBERNETES = GoSource(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version="v1.37.2",
    binaries=("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    cold_build="about 11 minutes on 2 cores",
)
ETCD = GoSource(
    name="etcd", module="go.etcd.io/etcd/server/v3", version="v3.7.3", binaries=("etcd",)
)
KWOK = GoSource(name="kwok", module="sigs.k8s.io/kwok", version="v0.8.0", binaries=("kwok",))
# Revision 1: helm's release -ldflags (its version, and the Kubernetes version it assumes
# when not talking to a cluster), without which `helm template` assumes Kubernetes v1.20.
HELM = GoSource(
    name="helm",
    module="helm.sh/helm/v3",
    version="v3.22.0",
    binaries=("helm",),
    build_revision=1,
)
KUEUE = GoSource(
    name="kueue",
    module="sigs.k8s.io/kueue",
    version="v0.17.0",
    binaries=("kueue",),
    cold_build="about 5 minutes on 2 cores",
)
# The Kubeflow training operator (v1: PyTorchJob and friends), for side-by-side benchmarks.
KUBEFLOW_TRAINING = GoSource(
    name="kubeflow-training-operator",
    module="github.com/kubeflow/training-operator",
    version="v1.8.1",
    binaries=("training-operator.v1",),
    cold_build="about 3 minutes on 2 cores",
)

SOURCES: tuple[GoSource, ...] = (KUBERNETES, ETCD, KWOK, HELM)
BINARY_NAMES: tuple[str, ...] = tuple(name for source in SOURCES for name in source.binaries)
#: Built only when asked for (`plinth up --with kueue`, `plinth build --only kueue`).
ADDON_SOURCES: tuple[GoSource, ...] = (KUEUE, KUBEFLOW_TRAINING)
ADDON_BINARY_NAMES: tuple[str, ...] = tuple(
    name for source in ADDON_SOURCES for name in source.binaries
)


def source_of(binary: str) -> GoSource:
    """The pinned source that builds `binary`; ValueError names the known binaries otherwise."""
    for source in (*SOURCES, *ADDON_SOURCES):
        if binary in source.binaries:
            return source
    known = ", ".join((*BINARY_NAMES, *ADDON_BINARY_NAMES))
    raise ValueError(f"unknown binary {binary!r}; known: {known}")
