"""Plinth's training-side client: runs inside training containers, next to user code.

It reads the environment contract a Plinth `TrainingJob` renders into every worker pod
(`plinth_client.environment`), reports step metrics back to the operator
(`plinth_client.reporting`), saves and resumes checkpoints atomically
(`plinth_client.checkpoint`) and launches `torchrun` so that a worker's exit code reaches
the pod (`plinth_client.launch`).

The package imports only the standard library; the checkpoint and launch helpers import
PyTorch lazily, when they are first used.
"""

from plinth_client.checkpoint import Checkpoint, CheckpointStore
from plinth_client.environment import ContractError, NodeRange, PlinthEnvironment
from plinth_client.reporting import MetricsReporter

__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "ContractError",
    "MetricsReporter",
    "NodeRange",
    "PlinthEnvironment",
]
