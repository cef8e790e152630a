"""Plinth's reference training entrypoint: a small DDP regression that honours the contract.

It trains a 2-layer MLP to fit a fixed function on synthetic data. Every batch is drawn
from a generator seeded by (seed, step, rank), so a run interrupted and resumed from a
checkpoint follows exactly the path of an uninterrupted one.

Launch it either way Plinth supports:

- under `torchrun` (or `python -m plinth_client.launch`), which reads `PET_NNODES`,
  `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`;
- directly, one process per node, with `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`.

Without `WORLD_SIZE` it trains alone. The backend is NCCL when CUDA is available, else gloo.

The contract it honours: rank 0 resumes from the latest checkpoint under
`$PLINTH_CHECKPOINT_URI` (a local folder or `file://` URI) and broadcasts it to the other
ranks, so only rank 0 needs to reach the storage; rank 0 saves a checkpoint every
`--checkpoint-every` steps and at the end, and reports `loss` (averaged over the ranks)
through `$PLINTH_METRICS_URL`. Every option also reads a `TRAIN_<OPTION>` variable
(`TRAIN_STEPS`, `TRAIN_LR`, ...); the command line wins. Output lines, from rank 0:

    resumed from step 20          (or: starting from step 0)
    step 30 loss 0.01234
    saved checkpoint step-30.pt
    final loss 0.0123

Two faults exist for tests of restarts: `--fail-at-step N` makes the run exit with
`--exit-code` right after step N (and its checkpoint, if one is due), and `--hang-at-step
N` makes every rank block there until it is killed, as a preempted or wedged worker
would. Each happens once: a marker file in the checkpoint folder stops the restarted run,
launched with the same arguments, from repeating it.
"""

# I001 is silenced because, with `tests/torch/` under a ruff `src` root, ruff takes torch for
# first-party until pyproject.toml lists it in known-third-party; then drop the directive.
from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from plinth_client import CheckpointStore, MetricsReporter, PlinthEnvironment

IN_FEATURES = 8
EVAL_SAMPLES = 512
TARGET_SEED = 1234
EVAL_SEED = 4321


@dataclass(frozen=True)
class Gang:
    """This process's place in the job: its rank, the world size and its device."""

    rank: int
    world_size: int
    device: torch.device
    distributed: bool

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Options:
    """The command line, typed (see `parse_args` for what each option means)."""

    steps: int
    checkpoint_every: int
    keep_checkpoints: int
    report_every: int
    lr: float
    batch_size: int
    hidden: int
    seed: int
    fail_at_step: int | None
    fail_rank: int | None
    hang_at_step: int | None
    exit_code: int
    dist_timeout: float
    step_seconds: float


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def option(name: str, kind: type, default: str | None, help_text: str) -> None:
        variable = "TRAIN_" + name.upper().replace("-", "_")
        parser.add_argument(
            f"--{name}", type=kind, default=os.environ.get(variable, default), help=help_text
        )

    option("steps", int, "100", "optimizer steps to train in total")
    option("checkpoint-every", int, "20", "save a checkpoint every this many steps")
    option("keep-checkpoints", int, "3", "how many checkpoints to keep on disk")
    option("report-every", int, "10", "report and print the loss every this many steps")
    option("lr", float, "0.01", "Adam learning rate")
    option("batch-size", int, "32", "samples per rank per step")
    option("hidden", int, "32", "width of the hidden layer")
    option("seed", int, "0", "seed of the model initialisation and of the data")
    option("fail-at-step", int, None, "exit with --exit-code after this step, once (tests)")
    option("fail-rank", int, None, "only this rank fails at --fail-at-step (default: all)")
    option("exit-code", int, "1", "exit code used by --fail-at-step")
    option("hang-at-step", int, None, "block after this step until killed, once (tests)")
    option("dist-timeout", float, "600", "seconds to wait for the other ranks")
    option(
        "step-seconds",
        float,
        "0",
        "sleep this long after each step: makes a tiny run last like a real one (demos, tests)",
    )
    return Options(**vars(parser.parse_args(argv)))


@contextmanager
def join_gang(env: PlinthEnvironment, timeout_s: float) -> Iterator[Gang]:
    """Initialise torch.distributed from the environment (env://) and tear it down after."""
    use_cuda = torch.cuda.is_available()
    local_rank = env.local_rank or 0
    device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not env.is_distributed:
        yield Gang(rank=0, world_size=1, device=device, distributed=False)
        return
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    try:
        yield Gang(dist.get_rank(), dist.get_world_size(), device, distributed=True)
    finally:
        dist.destroy_process_group()


def say(gang: Gang, message: str) -> None:
    if gang.is_primary:
        print(message, flush=True)


def target_function(inputs: torch.Tensor) -> torch.Tensor:
    """The fixed function the model learns: a sine of one projection plus another."""
    generator = torch.Generator().manual_seed(TARGET_SEED)
    weights = torch.randn(IN_FEATURES, 2, generator=generator) / math.sqrt(IN_FEATURES)
    projections = inputs @ weights.to(inputs.device)
    return torch.sin(2 * projections[:, :1]) + 0.5 * projections[:, 1:]


def make_batch(seed: int, step: int, rank: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of `rank` at `step`: the same on every run, whatever was interrupted."""
    mixed = ((seed * 1_000_003 + step) * 1_009 + rank + 1) % 2**63
    generator = torch.Generator().manual_seed(mixed)
    inputs = torch.randn(size, IN_FEATURES, generator=generator)
    return inputs, target_function(inputs)


def build_model(hidden: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(IN_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def evaluate(model: nn.Module, device: torch.device) -> float:
    """Mean squared error on a fixed held-out set, the same on every rank."""
    inputs, targets = make_batch(EVAL_SEED, -1, -1, EVAL_SAMPLES)
    with torch.no_grad():
        prediction = model(inputs.to(device))
    return float(nn.functional.mse_loss(prediction, targets.to(device)))


def mean_over_gang(value: torch.Tensor, gang: Gang) -> float:
    if gang.distributed:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= gang.world_size
    return float(value)


def read_checkpoint(store: CheckpointStore | None, gang: Gang) -> dict[str, Any] | None:
    """Rank 0 loads the latest checkpoint and hands it to every other rank."""
    state = None
    if store is not None and gang.is_primary:
        store.discard_partial_writes()
        latest = store.load_latest()
        state = None if latest is None else latest.state
    if gang.distributed:
        shared: list[Any] = [state]
        dist.broadcast_object_list(shared, src=0)
        state = shared[0]
    return state


def resume(state: dict[str, Any] | None, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer from a checkpoint; the step to continue after."""
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def checkpoint_uri(env: PlinthEnvironment, path: Path) -> str:
    base = env.checkpoint_uri or str(path.parent)
    return f"{base.rstrip('/')}/{path.name}"


class OneShotFault:
    """A fault injected once at a step; a marker file in the checkpoint folder remembers it.

    The marker is checked at start-up, so every rank of a restarted gang agrees that the
    fault already happened. Without a checkpoint folder the fault happens on every run.
    """

    def __init__(self, name: str, step: int | None, store: CheckpointStore | None) -> None:
        self.step = step
        self.marker = None if store is None else store.directory / f".{name}-at-step-{step}"
        self.armed = step is not None and not (self.marker and self.marker.exists())

    def due(self, step: int) -> bool:
        return self.armed and step == self.step

    def remember(self) -> None:
        if self.marker is not None:
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.touch()


class FaultInjection:
    """--fail-at-step exits with --exit-code; --hang-at-step blocks until killed."""

    def __init__(self, args: Options, store: CheckpointStore | None) -> None:
        self.failure = OneShotFault("failed", args.fail_at_step, store)
        self.hang = OneShotFault("hung", args.hang_at_step, store)
        self.fail_rank = args.fail_rank
        self.exit_code = args.exit_code

    def exit_code_after(self, step: int, gang: Gang) -> int | None:
        """The code to exit with after `step`, if a failure is due; hangs if a hang is due."""
        if self.hang.due(step):
            self.hang.remember()
            print(f"hanging at step {step}", flush=True)
            signal.pause()
        rank_fails = self.fail_rank is None or self.fail_rank == gang.rank
        if not (rank_fails and self.failure.due(step)):
            return None
        self.failure.remember()
        print(f"failing at step {step} with exit code {self.exit_code}", flush=True)
        return self.exit_code


class TrainingRun:
    """One process's share of the job: model, optimizer, checkpoints and reports."""

    def __init__(self, args: Options, env: PlinthEnvironment, gang: Gang) -> None:
        self.args = args
        self.env = env
        self.gang = gang
        self.store = CheckpointStore.from_environment(env, keep_last=args.keep_checkpoints)
        self.reporter = MetricsReporter.from_environment(env)
        self.faults = FaultInjection(args, self.store)
        self.model = build_model(args.hidden, args.seed).to(gang.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)

    def run(self) -> int:
        """Resume, train up to --steps, and return the process exit code."""
        if self.env.checkpoint_uri and self.store is None:
            say(self.gang, f"checkpoint URI {self.env.checkpoint_uri} is not local: not saving")
        start = resume(read_checkpoint(self.store, self.gang), self.model, self.optimizer)
        say(self.gang, f"resumed from step {start}" if start else "starting from step 0")
        say(self.gang, f"initial loss {evaluate(self.model, self.gang.device):.6g}")
        trained = DistributedDataParallel(self.model) if self.gang.distributed else self.model
        for step in range(start + 1, self.args.steps + 1):
            loss = self.train_step(trained, step)
            if self.args.step_seconds > 0:
                time.sleep(self.args.step_seconds)
            saved = self.save_if_due(step)
            self.report_if_due(step, loss, saved)
            exit_code = self.faults.exit_code_after(step, self.gang)
            if exit_code is not None:
                return exit_code
        say(self.gang, f"final loss {evaluate(self.model, self.gang.device):.6g}")
        return 0

    def train_step(self, trained: nn.Module, step: int) -> torch.Tensor:
        device = self.gang.device
        inputs, targets = make_batch(self.args.seed, step, self.gang.rank, self.args.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(trained(inputs.to(device)), targets.to(device))
        torch.autograd.backward(loss)
        self.optimizer.step()
        return loss.detach()

    def checkpoint_due(self, step: int) -> bool:
        return step % self.args.checkpoint_every == 0 or step == self.args.steps

    def save_if_due(self, step: int) -> Path | None:
        """Rank 0 saves every --checkpoint-every steps and at the last step."""
        if self.store is None or not self.checkpoint_due(step) or not self.gang.is_primary:
            return None
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        path = self.store.save(step, state)
        say(self.gang, f"saved checkpoint {path.name}")
        return path

    def report_if_due(self, step: int, loss: torch.Tensor, saved: Path | None) -> None:
        """Average the loss over the ranks (all take part) and report it from rank 0."""
        if step % self.args.report_every != 0 and not self.checkpoint_due(step):
            return
        mean_loss = mean_over_gang(loss, self.gang)
        say(self.gang, f"step {step} loss {mean_loss:.6g}")
        uri = None if saved is None else checkpoint_uri(self.env, saved)
        self.reporter.report(step, {"loss": mean_loss}, checkpoint=uri)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    env = PlinthEnvironment.from_environ()
    with join_gang(env, args.dist_timeout) as gang:
        job = env.job_name or "-"
        say(gang, f"job {job}: {gang.world_size} ranks, restart {env.restart_count}")
        return TrainingRun(args, env, gang).run()


if __name__ == "__main__":
    sys.exit(main())
