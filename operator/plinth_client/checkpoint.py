"""Save and resume training checkpoints in a local folder, safely across crashes.

Layout of the checkpoint folder (`$PLINTH_CHECKPOINT_URI` when it is a local path or
`file://` URI):

    step-<N>.pt   one checkpoint per saved step: torch.save of {"step": N, "model": ...,
                  "optimizer": ..., anything else the caller adds}
    latest        a pointer: the file name of the newest checkpoint, e.g. "step-120.pt\\n"

Every file is written atomically: to a hidden temporary file in the same folder, flushed
and fsync'ed, then renamed over its final name, so a reader sees either the previous
file or the complete new one, never a torn write. The step file is renamed into place
before the pointer moves to it. A crash between the two leaves the pointer one checkpoint
behind, which loses some steps but never points at a broken file. `latest_step()`
follows the pointer while it names an existing checkpoint (so editing it rolls a job
back), and otherwise falls back to the highest `step-<N>.pt` present.

PyTorch is imported lazily, only when a checkpoint is actually saved or loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from plinth_client.environment import PlinthEnvironment

STEP_FILE = re.compile(r"step-(\d+)\.pt")
POINTER_NAME = "latest"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: its step, the file it came from and everything saved in it."""

    step: int
    path: Path
    state: dict[str, Any]


class CheckpointStore:
    """The checkpoints of one job in one folder; see the module docstring for the layout."""

    def __init__(self, directory: Path | str, *, keep_last: int | None = None) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    @classmethod
    def from_environment(
        cls, environment: PlinthEnvironment | None = None, *, keep_last: int | None = None
    ) -> CheckpointStore | None:
        """The store at `$PLINTH_CHECKPOINT_URI`; None when unset or not a local folder."""
        env = environment or PlinthEnvironment.from_environ()
        directory = env.checkpoint_dir
        return None if directory is None else cls(directory, keep_last=keep_last)

    def path_for(self, step: int) -> Path:
        return self.directory / f"step-{step}.pt"

    def steps(self) -> list[int]:
        """The steps of all complete checkpoint files, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (STEP_FILE.fullmatch(entry.name) for entry in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def latest_step(self) -> int | None:
        """The step to resume from: the pointer's, else the highest on disk; None if none."""
        pointed = self._pointer_step()
        if pointed is not None and self.path_for(pointed).is_file():
            return pointed
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Mapping[str, object]) -> Path:
        """Write `{"step": step, **state}` as step-<step>.pt, then move the pointer to it."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        if state.get("step", step) != step:
            raise ValueError(f"state carries step {state['step']!r}, saving it as step {step}")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path_for(step)
        _write_atomically(path, lambda file: _torch_save({**state, "step": step}, file))
        _write_atomically(self.directory / POINTER_NAME, lambda file: file.write(_pointer(path)))
        self._prune(keep=step)
        return path

    def load(
        self, step: int, *, map_location: str = "cpu", weights_only: bool = True
    ) -> Checkpoint:
        """Load step-<step>.pt; `weights_only` keeps torch.load from running pickled code."""
        path = self.path_for(step)
        state = _torch_load(path, map_location=map_location, weights_only=weights_only)
        if state.get("step") != step:
            raise ValueError(f"{path} holds step {state.get('step')!r}, not {step}")
        return Checkpoint(step=step, path=path, state=state)

    def load_latest(
        self, *, map_location: str = "cpu", weights_only: bool = True
    ) -> Checkpoint | None:
        """The checkpoint to resume from, or None when there is none yet."""
        step = self.latest_step()
        if step is None:
            return None
        return self.load(step, map_location=map_location, weights_only=weights_only)

    def discard_partial_writes(self) -> int:
        """Delete temporary files a killed writer left behind; call before the first save."""
        if not self.directory.is_dir():
            return 0
        leftovers = [
            entry
            for entry in self.directory.iterdir()
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)
        ]
        for entry in leftovers:
            entry.unlink(missing_ok=True)
        return len(leftovers)

    def _pointer_step(self) -> int | None:
        try:
            name = (self.directory / POINTER_NAME).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        match = STEP_FILE.fullmatch(name)
        return int(match.group(1)) if match else None

    def _prune(self, keep: int) -> None:
        """Delete all but the newest `keep_last` checkpoints, never the one just saved."""
        if self.keep_last is None:
            return
        for step in self.steps()[: -self.keep_last]:
            if step != keep:
                self.path_for(step).unlink(missing_ok=True)


def _pointer(path: Path) -> bytes:
    return f"{path.name}\n".encode()


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, fsync it, rename it into place."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())  # mkstemp's 0600 would hide it from readers
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; some platforms cannot open folders, which is fine."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _torch_save(state: Mapping[str, object], file: IO[bytes]) -> None:
    import torch  # noqa: PLC0415 - lazy: the package must import without torch

    torch.save(dict(state), file)


def _torch_load(path: Path, *, map_location: str, weights_only: bool) -> dict[str, Any]:
    import torch  # noqa: PLC0415 - lazy: the package must import without torch

    loaded: object = torch.load(path, map_location=map_location, weights_only=weights_only)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} does not hold a checkpoint dictionary")
    return loaded
