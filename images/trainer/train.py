"""Plinth's reference training entrypoint: a small DDP model that honours the contract.

It trains a 2-layer MLP on one of two tasks (`--task`):

- `regression` (the default): fit a fixed function on synthetic data;
- `digits`: classify the 8x8 handwritten digits that ship inside scikit-learn (1,797
  images, no download), reporting `accuracy` on 360 held-out images (`held_out_digits`)
  beside the training `loss`.

Every batch is drawn from a generator seeded by (seed, step, rank), so a run interrupted
and resumed from a checkpoint follows exactly the path of an uninterrupted one.

Launch it either way Plinth supports:

- under `torchrun` (or `python -m plinth_client.launch`), which reads `PET_NNODES`,
  `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR`, `PET_MASTER_PORT`;
- directly, one process per node, with `MASTER_ADDR`, `MASTER_PORT`, `WORLD_SIZE`, `RANK`.

Without `WORLD_SIZE` it trains alone. The backend is NCCL when CUDA is available, else gloo.

The contract it honours: rank 0 resumes from the latest checkpoint under
`$PLINTH_CHECKPOINT_URI` (a local folder or `file://` URI) and broadcasts it to the other
ranks, so only rank 0 needs to reach the storage; rank 0 saves a checkpoint every
`--checkpoint-every` steps and at the end, and reports `loss` (averaged over the ranks)
through `$PLINTH_METRICS_URL`. At the end rank 0 exports the trained model as a Triton
python-backend model, `$PLINTH_CHECKPOINT_URI/model/` (`model.py` and `weights.npz`, numpy
only), which a ModelDeployment serves with `fromTrainingJob` or `fromSweep`. Every option
also reads a `TRAIN_<OPTION>` variable (`TRAIN_STEPS`, `TRAIN_LR`, ...); the command line
wins. Output lines, from rank 0:

    resumed from step 20          (or: starting from step 0)
    step 30 loss 0.01234          (digits: step 30 loss 0.2345 accuracy 0.9417)
    saved checkpoint step-30.pt
    final loss 0.0123             (digits: then final accuracy 0.9611)
    exported model to /ckpt/run/model

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
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from plinth_client import CheckpointStore, MetricsReporter, PlinthEnvironment

IN_FEATURES = 8
EVAL_SAMPLES = 512
TARGET_SEED = 1234
EVAL_SEED = 4321
#: The digits split: a fixed shuffle, the first HELD_OUT_DIGITS images never trained on.
DIGITS_SPLIT_SEED = 2026
HELD_OUT_DIGITS = 360
DIGIT_PIXELS, DIGIT_CLASSES = 64, 10
EXPORT_FOLDER = "model"


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

    task: str
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

    parser.add_argument(
        "--task",
        choices=sorted(TASKS),
        default=os.environ.get("TRAIN_TASK", "regression"),
        help="what to learn: synthetic regression, or scikit-learn's handwritten digits",
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


def finish_together(gang: Gang) -> None:
    """After a successful run, wait for every rank before the group is torn down: a rank that
    destroyed it while rank 0 was still exporting the model was seen aborting in Gloo's
    teardown (SIGABRT, "terminate called without an active exception"). Not after a failure:
    the other ranks may still be training, and learn of it from their next collective."""
    if gang.distributed:
        dist.barrier()


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
    generator = batch_generator(seed, step, rank)
    inputs = torch.randn(size, IN_FEATURES, generator=generator)
    return inputs, target_function(inputs)


def batch_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of `rank`'s batch at `step`: the same on every run."""
    mixed = ((seed * 1_000_003 + step) * 1_009 + rank + 1) % 2**63
    return torch.Generator().manual_seed(mixed)


def build_model(in_features: int, hidden: int, out_features: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, out_features))


class RegressionTask:
    """Fit `target_function` on fresh synthetic samples; evaluated by mean squared error."""

    in_features, out_features = IN_FEATURES, 1

    def batch(self, seed: int, step: int, rank: int, size: int) -> tuple[torch.Tensor, ...]:
        return make_batch(seed, step, rank, size)

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, targets)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Mean squared error on a fixed held-out set, the same on every rank."""
        inputs, targets = make_batch(EVAL_SEED, -1, -1, EVAL_SAMPLES)
        with torch.no_grad():
            prediction = model(inputs.to(device))
        return {"loss": float(nn.functional.mse_loss(prediction, targets.to(device)))}


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as (train images, train labels, held-out images, labels):
    pixels scaled to [0, 1], one fixed shuffle, the first HELD_OUT_DIGITS held out."""
    # Imported here: only this task needs scikit-learn (the regression runs without it).
    from sklearn.datasets import load_digits  # noqa: PLC0415

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(labels))
    images = (images[order] / 16.0).astype(np.float32)
    labels = labels[order].astype(np.int64)
    held = HELD_OUT_DIGITS
    return images[held:], labels[held:], images[:held], labels[:held]


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The images (N x 64, float32 in [0, 1]) and labels no digits run ever trains on."""
    _, _, images, labels = digits_split()
    return images, labels


class DigitsTask:
    """Classify 8x8 handwritten digits; evaluated on the held-out images."""

    in_features, out_features = DIGIT_PIXELS, DIGIT_CLASSES

    def __init__(self) -> None:
        train_x, train_y, held_x, held_y = digits_split()
        self.train = (torch.from_numpy(train_x), torch.from_numpy(train_y))
        self.held_out = (torch.from_numpy(held_x), torch.from_numpy(held_y))

    def batch(self, seed: int, step: int, rank: int, size: int) -> tuple[torch.Tensor, ...]:
        """`size` training images drawn at random (with replacement) for this step."""
        images, labels = self.train
        chosen = torch.randint(len(labels), (size,), generator=batch_generator(seed, step, rank))
        return images[chosen], labels[chosen]

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, targets)

    def evaluate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        """Cross-entropy and accuracy on the held-out images."""
        images, labels = (t.to(device) for t in self.held_out)
        with torch.no_grad():
            logits = model(images)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": float(self.loss(logits, labels)), "accuracy": float(accuracy)}


TASKS = {"regression": RegressionTask, "digits": DigitsTask}
Task = RegressionTask | DigitsTask


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


#: The exported model's Triton python backend: the MLP in numpy, softmax for a classifier.
SERVED_MODEL = '''"""A model exported by Plinth's reference trainer, for Triton's python backend:
the trained 2-layer MLP in numpy (weights.npz beside this file). INPUT is a batch of
feature rows; OUTPUT is the prediction (class probabilities, for a classifier)."""

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        weights = np.load(Path(__file__).with_name("weights.npz"))
        self.layers = [weights[name] for name in ("w1", "b1", "w2", "b2")]
        self.classifier = bool(weights["classifier"])

    def predict(self, rows):
        w1, b1, w2, b2 = self.layers
        out = np.tanh(rows @ w1.T + b1) @ w2.T + b2
        if self.classifier:
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        return out.astype(np.float32)

    def execute(self, requests):
        responses = []
        for request in requests:
            rows = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            output = pb_utils.Tensor("OUTPUT", self.predict(rows.astype(np.float32)))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses
'''


def export_model(model: nn.Module, classifier: bool, folder: Path) -> Path:
    """Write the model as a Triton python-backend model folder (replacing an older one)."""
    first, _, last = model
    weights = {
        "w1": first.weight,
        "b1": first.bias,
        "w2": last.weight,
        "b2": last.bias,
    }
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in weights.items()}
    staging = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.savez(staging / "weights.npz", classifier=np.array(classifier), **arrays)
    (staging / "model.py").write_text(SERVED_MODEL)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


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
        self.task: Task = TASKS[args.task]()
        shape = (self.task.in_features, args.hidden, self.task.out_features)
        self.model = build_model(*shape, args.seed).to(gang.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=args.lr)

    def run(self) -> int:
        """Resume, train up to --steps, and return the process exit code."""
        if self.env.checkpoint_uri and self.store is None:
            say(self.gang, f"checkpoint URI {self.env.checkpoint_uri} is not local: not saving")
        start = resume(read_checkpoint(self.store, self.gang), self.model, self.optimizer)
        say(self.gang, f"resumed from step {start}" if start else "starting from step 0")
        say(self.gang, f"initial loss {self.evaluate()['loss']:.6g}")
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
        final = self.evaluate()
        say(self.gang, "\n".join(f"final {name} {value:.6g}" for name, value in final.items()))
        self.export_if_local()
        return 0

    def evaluate(self) -> dict[str, float]:
        return self.task.evaluate(self.model, self.gang.device)

    def export_if_local(self) -> None:
        """Rank 0 exports the servable model under the checkpoint folder."""
        if self.store is None or not self.gang.is_primary:
            return
        classifier = isinstance(self.task, DigitsTask)
        folder = export_model(self.model, classifier, self.store.directory / EXPORT_FOLDER)
        say(self.gang, f"exported model to {folder}")

    def train_step(self, trained: nn.Module, step: int) -> torch.Tensor:
        device = self.gang.device
        args, rank = self.args, self.gang.rank
        inputs, targets = self.task.batch(args.seed, step, rank, args.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.task.loss(trained(inputs.to(device)), targets.to(device))
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
        """Average the loss over the ranks (all take part) and report it from rank 0, with
        the held-out accuracy of a classifier."""
        if step % self.args.report_every != 0 and not self.checkpoint_due(step):
            return
        metrics = {"loss": mean_over_gang(loss, self.gang)}
        if isinstance(self.task, DigitsTask) and self.gang.is_primary:
            metrics["accuracy"] = self.evaluate()["accuracy"]
        say(self.gang, f"step {step} " + " ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
        uri = None if saved is None else checkpoint_uri(self.env, saved)
        self.reporter.report(step, metrics, checkpoint=uri)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    env = PlinthEnvironment.from_environ()
    with join_gang(env, args.dist_timeout) as gang:
        job = env.job_name or "-"
        say(gang, f"job {job}: {gang.world_size} ranks, restart {env.restart_count}")
        exit_code = TrainingRun(args, env, gang).run()
        if exit_code == 0:
            finish_together(gang)
        return exit_code


if __name__ == "__main__":
    sys.exit(main())
