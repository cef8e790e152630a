"""The environment contract between a Plinth `TrainingJob` and the code in its pods.

Plinth renders these variables into every worker container; `PlinthEnvironment.from_environ()`
reads them into one frozen value, checking each and naming the variable when one is wrong.
An unset or empty variable reads as absent (None), so the same code runs on a laptop.

Plinth's own variables:

- `PLINTH_JOB_NAME`, `PLINTH_NAMESPACE`: the TrainingJob this pod belongs to.
- `PLINTH_CHECKPOINT_URI`: where checkpoints live. A local path or a `file://` URI is
  resolved to `checkpoint_dir`; any other scheme (`s3://`, `gs://`, ...) is passed through
  untouched in `checkpoint_uri` for user code to handle, and `checkpoint_dir` is None.
- `PLINTH_METRICS_URL`, `PLINTH_METRICS_TOKEN`: where to report metrics and the per-job
  bearer token; reporting is enabled only when both are set. The token is kept out of
  `repr()` so that logging the environment never leaks it.
- `PLINTH_RESTART_COUNT`: how many times the gang has been restarted (0 on the first run).

The variables `torchrun` reads (each `PET_X` is the default of its `--x` flag):
`PET_NNODES` (`N` or an elastic range `MIN:MAX`), `PET_NPROC_PER_NODE` (an integer, or
`auto`/`cpu`/`gpu`), `PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`.

The variables plain `torch.distributed` reads (`init_method="env://"`), which `torchrun`
also sets for each worker it starts: `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`,
`LOCAL_RANK`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import unquote, urlsplit

NprocKeyword: TypeAlias = Literal["auto", "cpu", "gpu"]
NPROC_KEYWORDS: tuple[NprocKeyword, ...] = ("auto", "cpu", "gpu")
MAX_PORT = 65535


class ContractError(ValueError):
    """A variable of the environment contract holds a value that cannot be used."""


@dataclass(frozen=True)
class NodeRange:
    """The number of nodes of a job: fixed (`minimum == maximum`) or an elastic range."""

    minimum: int
    maximum: int

    def __str__(self) -> str:
        if self.minimum == self.maximum:
            return str(self.minimum)
        return f"{self.minimum}:{self.maximum}"


@dataclass(frozen=True)
class PlinthEnvironment:
    """Everything a training process learns from its environment, parsed and checked."""

    job_name: str | None = None
    namespace: str | None = None
    checkpoint_uri: str | None = None
    metrics_url: str | None = None
    metrics_token: str | None = field(default=None, repr=False)
    restart_count: int = 0
    nnodes: NodeRange | None = None
    nproc_per_node: int | NprocKeyword | None = None
    node_rank: int | None = None
    pet_master_addr: str | None = None
    pet_master_port: int | None = None
    master_addr: str | None = None
    master_port: int | None = None
    world_size: int | None = None
    rank: int | None = None
    local_rank: int | None = None
    #: A sweep trial's parameter values (PLINTH_PARAMS, JSON), e.g. {"lr": 0.001}; empty
    #: outside a sweep.
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_rank_below("RANK", self.rank, "WORLD_SIZE", self.world_size)
        if self.nnodes is not None:
            _check_rank_below("PET_NODE_RANK", self.node_rank, "PET_NNODES", self.nnodes.maximum)
        if self.checkpoint_uri is not None:
            local_checkpoint_dir(self.checkpoint_uri)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> PlinthEnvironment:
        """Read the contract from `environ` (default: this process's environment)."""
        env = _Reader(os.environ if environ is None else environ)
        return cls(
            job_name=env.text("PLINTH_JOB_NAME"),
            namespace=env.text("PLINTH_NAMESPACE"),
            checkpoint_uri=env.text("PLINTH_CHECKPOINT_URI"),
            metrics_url=env.text("PLINTH_METRICS_URL"),
            metrics_token=env.text("PLINTH_METRICS_TOKEN"),
            restart_count=env.count("PLINTH_RESTART_COUNT") or 0,
            nnodes=env.node_range("PET_NNODES"),
            nproc_per_node=env.nproc("PET_NPROC_PER_NODE"),
            node_rank=env.count("PET_NODE_RANK"),
            pet_master_addr=env.text("PET_MASTER_ADDR"),
            pet_master_port=env.port("PET_MASTER_PORT"),
            master_addr=env.text("MASTER_ADDR"),
            master_port=env.port("MASTER_PORT"),
            world_size=env.positive("WORLD_SIZE"),
            rank=env.count("RANK"),
            local_rank=env.count("LOCAL_RANK"),
            params=env.json_object("PLINTH_PARAMS"),
        )

    @property
    def checkpoint_dir(self) -> Path | None:
        """The checkpoint folder when the URI is local; None when unset or remote."""
        if self.checkpoint_uri is None:
            return None
        return local_checkpoint_dir(self.checkpoint_uri)

    @property
    def reporting_enabled(self) -> bool:
        """Whether both the metrics endpoint and its token were handed to this pod."""
        return self.metrics_url is not None and self.metrics_token is not None

    @property
    def global_rank(self) -> int:
        """This process's rank in the whole job; 0 when not launched distributed."""
        return self.rank or 0

    @property
    def is_primary(self) -> bool:
        """Whether this process is rank 0, the one that reports and writes checkpoints."""
        return self.global_rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether `torch.distributed` can be initialised from this environment (env://)."""
        return self.world_size is not None and self.master_addr is not None


def local_checkpoint_dir(uri: str) -> Path | None:
    """Turn a local path or `file://` URI into a Path; None for remote schemes."""
    parts = urlsplit(uri)
    if parts.scheme == "":
        return Path(uri)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        raise ContractError(
            f"PLINTH_CHECKPOINT_URI={uri!r}: a file:// URI needs an absolute path "
            f"(file:///path), not the host {parts.netloc!r}"
        )
    return Path(unquote(parts.path))


def _check_rank_below(rank_name: str, rank: int | None, size_name: str, size: int | None) -> None:
    if rank is not None and size is not None and rank >= size:
        raise ContractError(f"{rank_name}={rank} must be below {size_name}={size}")


class _Reader:
    """Reads single variables, treating empty as unset and naming the variable on errors."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def count(self, name: str) -> int | None:
        """A non-negative integer (ranks, restart counts)."""
        return self._integer(name, minimum=0, meaning="a non-negative integer")

    def positive(self, name: str) -> int | None:
        return self._integer(name, minimum=1, meaning="a positive integer")

    def json_object(self, name: str) -> dict[str, Any]:
        """A JSON object (a sweep trial's parameters); {} when unset."""
        value = self.text(name)
        if value is None:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise ContractError(f"{name}: expected a JSON object ({error.msg})") from None
        if not isinstance(parsed, dict):
            raise ContractError(f"{name}: expected a JSON object, got {type(parsed).__name__}")
        return parsed

    def port(self, name: str) -> int | None:
        port = self._integer(name, minimum=1, meaning="a TCP port (1-65535)")
        if port is not None and port > MAX_PORT:
            raise ContractError(f"{name}={port}: expected a TCP port (1-65535)")
        return port

    def node_range(self, name: str) -> NodeRange | None:
        value = self.text(name)
        if value is None:
            return None
        low, separator, high = value.partition(":")
        minimum = _parse_integer(name, low, 1, "N or MIN:MAX with positive integers")
        maximum = _parse_integer(
            name, high if separator else low, minimum, "N or MIN:MAX with MIN <= MAX"
        )
        return NodeRange(minimum, maximum)

    def nproc(self, name: str) -> int | NprocKeyword | None:
        value = self.text(name)
        if value in NPROC_KEYWORDS:
            return value
        return self._integer(name, minimum=1, meaning="a positive integer, auto, cpu or gpu")

    def _integer(self, name: str, minimum: int, meaning: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        return _parse_integer(name, value, minimum, meaning)


def _parse_integer(name: str, value: str, minimum: int, meaning: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ContractError(f"{name}={value!r}: expected {meaning}") from None
    if number < minimum:
        raise ContractError(f"{name}={value!r}: expected {meaning}")
    return number
