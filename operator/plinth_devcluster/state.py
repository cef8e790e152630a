"""A cluster's state folder: where its files go, and the record of what `up` started.

Default folder: `$XDG_STATE_HOME/plinth/clusters/<name>` (`~/.local/state/...`). The record
(`cluster.json`) is rewritten after every program starts, so `down` can stop whatever an
interrupted `up` left running.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from plinth_devcluster.processes import ProcessRecord

DEFAULT_NAME = "plinth"


@dataclass(frozen=True)
class Ports:
    """The TCP ports of one cluster on 127.0.0.1, chosen free at start."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int


@dataclass(frozen=True)
class Layout:
    """Paths inside one cluster's state folder."""

    name: str
    root: Path

    @classmethod
    def of(cls, name: str = DEFAULT_NAME, state_dir: Path | None = None) -> Layout:
        return cls(name=name, root=(state_dir or default_state_dir(name)).absolute())

    @property
    def record(self) -> Path:
        return self.root / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kwok_workdir(self) -> Path:
        return self.root / "kwok"

    def log(self, program: str) -> Path:
        return self.logs / f"{program}.log"

    def reset(self) -> None:
        """Remove what an earlier run of this cluster left (only the entries `up` creates)."""
        for path in (self.pki, self.config, self.etcd_data, self.logs, self.kwok_workdir):
            shutil.rmtree(path, ignore_errors=True)
        for path in (self.record, self.kubeconfig):
            path.unlink(missing_ok=True)
        for path in (self.root, self.pki, self.config, self.logs, self.kwok_workdir):
            path.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ClusterRecord:
    """What `up` started: enough for `status` and `down` from any later process."""

    name: str
    api_url: str
    ports: Ports
    processes: tuple[ProcessRecord, ...] = ()

    def with_process(self, process: ProcessRecord) -> ClusterRecord:
        return replace(self, processes=(*self.processes, process))

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "api_url": self.api_url,
            "ports": self.ports.__dict__,
            "processes": [p.to_json() for p in self.processes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterRecord:
        return cls(
            name=str(data["name"]),
            api_url=str(data["api_url"]),
            ports=Ports(**data["ports"]),
            processes=tuple(ProcessRecord.from_json(p) for p in data["processes"]),
        )


def default_state_dir(name: str) -> Path:
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "plinth" / "clusters" / name


def save_record(layout: Layout, record: ClusterRecord) -> None:
    """Write the record atomically (temp file, then rename)."""
    temporary = layout.record.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record.to_json(), indent=2))
    temporary.replace(layout.record)


def load_record(layout: Layout) -> ClusterRecord | None:
    """The record of the last `up` in this folder, or None if there is none."""
    try:
        return ClusterRecord.from_json(json.loads(layout.record.read_text()))
    except FileNotFoundError:
        return None
