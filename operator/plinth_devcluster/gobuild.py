"""Build the pinned binaries from their Go modules, each in a throwaway module, with progress.

Kubernetes cannot be `go install`ed (its go.mod requires its staging modules at v0.0.0), so it
is built from a module that requires it and replaces every `k8s.io/*` module that its own
go.mod replaces, at the matching v0.X.Y. etcd's server module has relative replaces, so it is
built from a module that requires it. kwok and helm are plain `go install`s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from plinth_devcluster.versions import (
    ETCD,
    HELM,
    KUBEFLOW_TRAINING,
    KUBERNETES,
    KUEUE,
    KWOK,
    GoSource,
)

Progress = Callable[[str], None]

HEARTBEAT_SECONDS = 30.0
STANDARD_GO = Path("/usr/local/go/bin/go")


class BuildError(RuntimeError):
    """A Go command failed; the message carries the end of its log."""


@dataclass(frozen=True)
class GoRun:
    """Where and how to run the go command for one build, and where its output goes."""

    go: Path
    workdir: Path
    log: IO[str]
    log_path: Path
    progress: Progress

    def output(self, *args: str) -> str:
        """Run a quick go command and return its stdout."""
        done = subprocess.run(
            [str(self.go), *args],
            cwd=self.workdir,
            env=go_environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildError(f"go {' '.join(args)} failed:\n{done.stderr.strip()}")
        return done.stdout

    def long(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        """Run a long go command, its output in the log, with a heartbeat on progress."""
        self.log.write(f"$ go {' '.join(args)}\n")
        self.log.flush()
        env = {**go_environment(), **(extra_env or {})}
        with subprocess.Popen(
            [str(self.go), *args], cwd=self.workdir, env=env, stdout=self.log, stderr=self.log
        ) as process:
            returncode = wait_with_heartbeat(process, f"go {args[0]}", self.progress)
        if returncode != 0:
            raise BuildError(
                f"go {' '.join(args)} failed; see {self.log_path}:\n{tail(self.log_path)}"
            )


class Recipe(Protocol):
    """How one pinned source is turned into binaries written into `outdir`."""

    def build(
        self, source: GoSource, binaries: Sequence[str], outdir: Path, run: GoRun
    ) -> None: ...


def find_go() -> Path:
    """The go command, from PATH or the standard install folder."""
    found = shutil.which("go") or (str(STANDARD_GO) if STANDARD_GO.exists() else None)
    if found is None:
        raise BuildError(
            "the Go toolchain (1.26 or newer) is needed to build the emulated cluster's "
            "binaries once; install it from https://go.dev/dl and put `go` on PATH"
        )
    return Path(found)


def go_environment() -> dict[str, str]:
    """The environment for go commands: static binaries, no workspace of the caller's."""
    return {**os.environ, "CGO_ENABLED": "0", "GOWORK": "off"}


def wait_with_heartbeat(process: subprocess.Popen[bytes], label: str, progress: Progress) -> int:
    """Wait for `process`, saying every so often that it is still running."""
    started = time.monotonic()
    while True:
        try:
            return process.wait(timeout=HEARTBEAT_SECONDS)
        except subprocess.TimeoutExpired:
            progress(f"  ... {label} still running ({format_duration(time.monotonic() - started)})")


def format_duration(seconds: float) -> str:
    """`75.2` -> `1m15s`; under a minute -> `12.3s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a text file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def strip_and_stamp(*variables: str) -> str:
    """-ldflags that strip symbols and set each `package.name=value` variable."""
    return " ".join(["-s", "-w", *(f"-X {variable}" for variable in variables)])


def kubernetes_version_stamp(version: str) -> tuple[str, ...]:
    """The -X assignments that make Kubernetes binaries report `version` (not v0.0.0-master)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    return tuple(
        f"{package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in (
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
        )
    )


def staging_version(version: str) -> str:
    """Kubernetes v1.X.Y publishes its staging modules (k8s.io/api, ...) as v0.X.Y."""
    return "v0." + version.removeprefix("v").split(".", 1)[1]


def replaced_k8s_modules(run: GoRun, module: str, version: str) -> list[str]:
    """The k8s.io modules that `module@version`'s own go.mod replaces (its staging modules)."""
    downloaded = json.loads(run.output("mod", "download", "-json", f"{module}@{version}"))
    gomod = json.loads(run.output("mod", "edit", "-json", downloaded["GoMod"]))
    return sorted(
        entry["Old"]["Path"]
        for entry in gomod.get("Replace") or []
        if entry["Old"]["Path"].startswith("k8s.io/")
    )


class KubernetesRecipe:
    """k8s.io/kubernetes from a throwaway module with replace lines for its staging modules."""

    def build(self, source: GoSource, binaries: Sequence[str], outdir: Path, run: GoRun) -> None:
        packages = [f"{source.module}/cmd/{name}" for name in binaries]
        staged = staging_version(source.version)
        replaces = [
            f"-replace={m}={m}@{staged}"
            for m in replaced_k8s_modules(run, source.module, source.version)
        ]
        run.output("mod", "init", "plinth.local/build-kubernetes")
        run.output("mod", "edit", f"-require={source.module}@{source.version}", *replaces)
        run.long("get", *(f"{package}@{source.version}" for package in packages))
        ldflags = strip_and_stamp(*kubernetes_version_stamp(source.version))
        run.long("build", "-trimpath", "-ldflags", ldflags, "-o", f"{outdir}/", *packages)


class ModuleRootRecipe:
    """A module whose root package is the program (etcd's server), built from a throwaway module."""

    def build(self, source: GoSource, binaries: Sequence[str], outdir: Path, run: GoRun) -> None:
        (binary,) = binaries
        run.output("mod", "init", f"plinth.local/build-{source.name}")
        run.long("get", f"{source.module}@{source.version}")
        run.long(
            "build",
            "-trimpath",
            "-ldflags",
            strip_and_stamp(),
            "-o",
            str(outdir / binary),
            source.module,
        )


@dataclass(frozen=True)
class GoInstallRecipe:
    """`go install module/cmd/<binary>@version`, with version variables stamped in."""

    stamps: tuple[str, ...] = ()

    def build(self, source: GoSource, binaries: Sequence[str], outdir: Path, run: GoRun) -> None:
        packages = [f"{source.module}/cmd/{name}@{source.version}" for name in binaries]
        ldflags = strip_and_stamp(*self.stamps)
        run.long(
            "install", "-trimpath", "-ldflags", ldflags, *packages, extra_env={"GOBIN": str(outdir)}
        )


def kubernetes_minor_of_client_go(run: GoRun, module: str, version: str) -> str:
    """The Kubernetes minor version `module@version` is built against (from its client-go)."""
    downloaded = json.loads(run.output("mod", "download", "-json", f"{module}@{version}"))
    gomod = json.loads(run.output("mod", "edit", "-json", downloaded["GoMod"]))
    for requirement in gomod.get("Require") or []:
        if requirement["Path"] == "k8s.io/client-go":
            # client-go v0.X.Y belongs to Kubernetes 1.X.
            return str(requirement["Version"]).removeprefix("v").split(".")[1]
    raise BuildError(f"{module}@{version} does not require k8s.io/client-go")


def helm_version_stamp(version: str, kubernetes_minor: str) -> tuple[str, ...]:
    """The -X assignments of helm's own Makefile: its version and the Kubernetes version it
    assumes when it renders without a cluster (otherwise v1.20, which charts with a
    `kubeVersion` constraint refuse)."""
    return (
        f"helm.sh/helm/v3/internal/version.version={version}",
        "helm.sh/helm/v3/internal/version.gitTreeState=clean",
        *(
            f"helm.sh/helm/v3/pkg/{package}.{name}={value}"
            for package in ("lint/rules", "chartutil")
            for name, value in (("k8sVersionMajor", "1"), ("k8sVersionMinor", kubernetes_minor))
        ),
    )


class HelmRecipe:
    """`go install` of helm with the -ldflags of helm's release build."""

    def build(self, source: GoSource, binaries: Sequence[str], outdir: Path, run: GoRun) -> None:
        minor = kubernetes_minor_of_client_go(run, source.module, source.version)
        GoInstallRecipe(stamps=helm_version_stamp(source.version, minor)).build(
            source, binaries, outdir, run
        )


RECIPES: dict[str, Recipe] = {
    KUBERNETES.name: KubernetesRecipe(),
    ETCD.name: ModuleRootRecipe(),
    KWOK.name: GoInstallRecipe(),
    HELM.name: HelmRecipe(),
    KUEUE.name: GoInstallRecipe(
        stamps=(f"sigs.k8s.io/kueue/pkg/version.GitVersion={KUEUE.version}",)
    ),
    KUBEFLOW_TRAINING.name: GoInstallRecipe(),
}
