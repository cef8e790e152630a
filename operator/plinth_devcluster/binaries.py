"""The cache of built binaries: where each pinned binary lives, and building the missing ones.

Binaries live in `<cache>/bin/<name>-<version>[-r<build revision>]/<name>`, where `<cache>` is
`$PLINTH_CACHE_DIR`, else `$XDG_CACHE_HOME/plinth`, else `~/.cache/plinth`. They are keyed by
version and by how they are built, so only the first start builds. A build writes into a
staging folder and renames it into place, so an interrupted build never leaves a half binary;
a file lock keeps two builds from racing.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from plinth_devcluster.gobuild import RECIPES, GoRun, Progress, find_go, format_duration
from plinth_devcluster.versions import (
    ADDON_SOURCES,
    BINARY_NAMES,
    SOURCES,
    GoSource,
    source_of,
)


class BinaryMissingError(LookupError):
    """A binary is not in the cache and building it was not allowed."""


@dataclass(frozen=True)
class Binaries:
    """Paths of every binary the emulated cluster uses."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    helm: Path

    @classmethod
    def from_cache(cls) -> Binaries:
        """The cached paths (whether or not they exist yet)."""
        return cls(**{name.replace("-", "_"): binary_path(name) for name in BINARY_NAMES})

    def missing(self) -> tuple[str, ...]:
        """Names of the binaries not present."""
        return tuple(name for name in BINARY_NAMES if not self.path(name).exists())

    def path(self, name: str) -> Path:
        """The path of the binary called `name` (e.g. `kube-apiserver`)."""
        source_of(name)
        path: Path = getattr(self, name.replace("-", "_"))
        return path


def say(message: str) -> None:
    """Default progress reporter: a line on stderr."""
    print(message, file=sys.stderr, flush=True)


def cache_root() -> Path:
    """The plinth cache folder (XDG), overridable with PLINTH_CACHE_DIR."""
    if explicit := os.environ.get("PLINTH_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "plinth"


def binary_path(name: str) -> Path:
    """Where the pinned version of binary `name` lives in the cache."""
    key = source_of(name).cache_key
    return cache_root() / "bin" / f"{name}-{key}" / name


def find_binary(name: str, *, build: bool = True, progress: Progress = say) -> Path:
    """The path of the pinned binary `name`, building it first if it is not cached."""
    path = binary_path(name)
    if path.exists():
        return path
    if not build:
        raise BinaryMissingError(f"{name} is not built yet; run `plinth build`")
    build_missing([name], progress)
    return path


def ensure_binaries(*, progress: Progress = say) -> Binaries:
    """Every binary of the emulated cluster, building the ones not cached yet."""
    binaries = Binaries.from_cache()
    if missing := binaries.missing():
        build_missing(missing, progress)
    return binaries


def build_missing(names: Collection[str], progress: Progress) -> None:
    """Build the named binaries, grouped by source, holding the cache's build lock."""
    with build_lock():
        remove_abandoned_staging()
        for source in (*SOURCES, *ADDON_SOURCES):
            wanted = [n for n in source.binaries if n in names and not binary_path(n).exists()]
            if wanted:
                build_source(source, wanted, progress)


@contextmanager
def build_lock() -> Iterator[None]:
    """An exclusive lock on the cache's bin folder, so two processes never build at once."""
    bin_dir = cache_root() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    with (bin_dir / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_abandoned_staging() -> None:
    """Remove staging folders a killed build left (only called holding the build lock)."""
    for staging in (cache_root() / "bin").glob(".*-*"):
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)


def build_source(source: GoSource, names: list[str], progress: Progress) -> None:
    """Build `names` from `source` in a throwaway module, then install them atomically."""
    go = find_go()
    logs = cache_root() / "build-logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{source.name}-{source.version}.log"
    progress(
        f"building {source.name} {source.version} ({', '.join(names)}) with {go}: once per "
        f"version, {source.cold_build} without a warm Go build cache; log: {log_path}"
    )
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="plinth-gomod-") as module_dir,
        tempfile.TemporaryDirectory(prefix=".staging-", dir=cache_root() / "bin") as outdir,
        log_path.open("w") as log,
    ):
        run = GoRun(go=go, workdir=Path(module_dir), log=log, log_path=log_path, progress=progress)
        RECIPES[source.name].build(source, names, Path(outdir), run)
        for name in names:
            install_atomically(Path(outdir) / name, binary_path(name))
    seconds = time.monotonic() - started
    record_build(source, names, seconds)
    progress(f"built {source.name} {source.version} in {format_duration(seconds)}")


def build_record_path(source: GoSource) -> Path:
    return cache_root() / "build-logs" / f"{source.name}-{source.version}.json"


def record_build(source: GoSource, names: list[str], seconds: float) -> None:
    """Keep how long the build of `source` took, next to its log (for benchmarks)."""
    record = {
        "source": source.name,
        "module": source.module,
        "version": source.version,
        "binaries": names,
        "seconds": round(seconds, 1),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    build_record_path(source).write_text(json.dumps(record, indent=2))


def install_atomically(built: Path, destination: Path) -> None:
    """Move `built` into `destination`'s folder by renaming a complete staging folder."""
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.parent.name}-", dir=destination.parent.parent)
    )
    if destination.parent.exists() and not destination.exists():
        shutil.rmtree(destination.parent)  # a leftover without its binary
    try:
        shutil.move(built, staging / destination.name)
        (staging / destination.name).chmod(0o755)
        staging.chmod(0o755)
        os.rename(staging, destination.parent)
    except OSError:
        if not destination.exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
