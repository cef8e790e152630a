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
HELM = GoSource(name="helm", module="helm.sh/helm/v3", version="v3.22.0", binaries=("helm",))

SOURCES: tuple[GoSource, ...] = (KUBERNETES, ETCD, KWOK, HELM)
BINARY_NAMES: tuple[str, ...] = tuple(name for source in SOURCES for name in source.binaries)


def source_of(binary: str) -> GoSource:
    """The pinned source that builds `binary`; ValueError names the known binaries otherwise."""
    for source in SOURCES:
        if binary in source.binaries:
            return source
    raise ValueError(f"unknown binary {binary!r}; known: {', '.join(BINARY_NAMES)}")
