"""`torchrun`, but the pod's exit code is the failing worker's exit code.

`torchrun` exits with 1 whenever a worker fails, whatever the worker's own exit code was, so
a TrainingJob's `restartPolicy` could not tell a permanent error (say, exit 3 for a bad
configuration) from a crash. This launcher takes exactly torchrun's arguments and `PET_*`
variables, runs it in-process, and when workers fail exits with the exit code of the first
failure (128 + N for a worker killed by signal N, as a shell reports it):

    python -m plinth_client.launch [torchrun options] train.py [script arguments]

PyTorch is imported only when the launcher runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

SIGNAL_EXIT_BASE = 128


def exit_status(worker_exitcode: int) -> int:
    """A worker's exit code as a process exit status (signals as 128 + N, never 0)."""
    if worker_exitcode < 0:
        return SIGNAL_EXIT_BASE - worker_exitcode
    return worker_exitcode or 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run torchrun with `argv` (default: this process's arguments); return the exit status."""
    from torch.distributed.elastic.multiprocessing.errors import (  # noqa: PLC0415 - lazy
        ChildFailedError,
    )
    from torch.distributed.run import parse_args, run  # noqa: PLC0415 - lazy

    # torch leaves these two untyped; name the types we rely on.
    parse: Callable[[list[str]], object] = parse_args
    launch: Callable[[object], None] = run
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        launch(parse(arguments))
    except ChildFailedError as failure:
        _, first = failure.get_first_failure()
        print(failure, file=sys.stderr)
        return exit_status(first.exitcode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
