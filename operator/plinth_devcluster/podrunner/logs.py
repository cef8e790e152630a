"""Where a local pod's output and working folder live, under the runner's log folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PodFiles:
    """Per pod: `<root>/<namespace>/<pod>.log` (stdout and stderr) and `<pod>.workdir`."""

    root: Path

    def log(self, namespace: str, name: str) -> Path:
        return self.root / namespace / f"{name}.log"

    def log_text(self, namespace: str, name: str) -> str:
        path = self.log(namespace, name)
        return path.read_text(errors="replace") if path.exists() else ""

    def workdir(self, namespace: str, name: str) -> Path:
        return self.root / namespace / f"{name}.workdir"
