"""Programs started beside a running cluster (`plinth spawn`): the operator and the pod
runner of `make demo`, say. They are recorded with the cluster's own programs, so
`plinth down` stops them too, before the cluster (see `cluster.stop_programs`), and
`plinth status` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from plinth_devcluster.processes import ProcessRecord, is_alive, spawn, stop_all
from plinth_devcluster.state import DEFAULT_NAME, Layout, load_record, save_record


class ClusterNotStartedError(ValueError):
    """There is no cluster to start a program beside."""


def start_companion(
    program: str,
    argv: Sequence[str],
    *,
    name: str = DEFAULT_NAME,
    state_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessRecord:
    """Start `argv` detached as `program` beside cluster `name`, its output in the cluster's
    `logs/<program>.log`; a live program of that name is stopped first (a restart)."""
    layout = Layout.of(name, state_dir)
    record = load_record(layout)
    if record is None:
        raise ClusterNotStartedError(f"cluster {name!r} was never started ({layout.root})")
    same = [p for p in record.processes if p.name == program]
    stop_all([p for p in same if is_alive(p)])
    started = spawn(program, argv, layout.log(program), os.environ if env is None else env)
    kept = tuple(p for p in record.processes if p.name != program)
    save_record(layout, replace(record, processes=(*kept, started)))
    return started
