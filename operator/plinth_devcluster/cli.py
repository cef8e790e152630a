"""The `plinth up`, `down`, `status`, `spawn` and `build` commands: the emulated cluster's CLI.

`plinth.cli` loads this module only when one of these commands is asked for, so the
operator's own commands never import the emulated cluster. `register(subparsers)` adds them
to its argparse tree; each sets `func`, which takes the parsed Namespace and returns the exit
code. Progress goes to stderr; `up` prints the `export KUBECONFIG=...` line on stdout, so
`eval "$(plinth up)"` works. `spawn` starts a program beside the cluster (the operator,
the pod runner) that `down` stops with it.
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from plinth_devcluster.binaries import BinaryMissingError, ensure_binaries, find_binary, say
from plinth_devcluster.cluster import (
    ADDONS,
    ClusterAlreadyRunningError,
    ClusterInfo,
    ClusterStatus,
    ProgramExitedError,
    down,
    status,
    up,
)
from plinth_devcluster.companions import start_companion
from plinth_devcluster.gobuild import BuildError, format_duration
from plinth_devcluster.kubeflow import DEFAULT_THREADS as DEFAULT_KUBEFLOW_THREADS
from plinth_devcluster.nodes import DEFAULT_GPU_PRODUCT
from plinth_devcluster.processes import StillRunningError
from plinth_devcluster.state import DEFAULT_NAME
from plinth_devcluster.versions import ADDON_BINARY_NAMES, BINARY_NAMES, SOURCES
from plinth_devcluster.waiting import WaitTimeoutError

EXPECTED_ERRORS = (
    BuildError,
    BinaryMissingError,
    WaitTimeoutError,
    ProgramExitedError,
    StillRunningError,
    ValueError,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `up`, `down`, `status` and `build` to `subparsers`."""
    add_up(subparsers)
    add_down(subparsers)
    add_status(subparsers)
    add_spawn(subparsers)
    add_build(subparsers)


def add_location_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default: %(default)s)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="state folder (default: $XDG_STATE_HOME/plinth/clusters/<name>)",
    )


def add_up(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up",
        help="start the emulated cluster with fake GPU nodes (builds its binaries on first use)",
    )
    add_location_flags(parser)
    parser.add_argument(
        "--nodes", type=int, default=4, help="fake GPU nodes (default: %(default)s)"
    )
    parser.add_argument(
        "--gpus-per-node",
        type=int,
        default=8,
        help="nvidia.com/gpu per node (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu-product",
        default=DEFAULT_GPU_PRODUCT,
        help="nvidia.com/gpu.product label (default: %(default)s)",
    )
    parser.add_argument(
        "--gpu-taint", action="store_true", help="taint GPU nodes nvidia.com/gpu=present:NoSchedule"
    )
    parser.add_argument(
        "--with",
        dest="addons",
        action="append",
        default=[],
        choices=ADDONS,
        metavar="ADDON",
        help=f"also install and start (repeatable; built on first use): {', '.join(ADDONS)}",
    )
    parser.add_argument(
        "--kubeflow-threads",
        type=int,
        default=DEFAULT_KUBEFLOW_THREADS,
        help="--controller-threads of the Kubeflow training operator (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each start-up step"
    )
    parser.set_defaults(func=run_up)


def add_down(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("down", help="stop every process of the emulated cluster")
    add_location_flags(parser)
    parser.set_defaults(func=run_down)


def add_status(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status", help="show the emulated cluster's processes (exit code 0 only if it runs)"
    )
    add_location_flags(parser)
    parser.set_defaults(func=run_status)


def add_spawn(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "spawn",
        help="run a program in the background beside the cluster; `plinth down` stops it too",
    )
    add_location_flags(parser)
    parser.add_argument("program", help="a name for it (its log: <state>/logs/<program>.log)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command line, after --")
    parser.set_defaults(func=run_spawn)


def add_build(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pinned = ", ".join(f"{s.name} {s.version}" for s in SOURCES)
    parser = subparsers.add_parser(
        "build", help=f"build and cache the cluster's binaries ({pinned})"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(*BINARY_NAMES, *ADDON_BINARY_NAMES),
        metavar="BINARY",
        help="build only this binary (repeatable): "
        f"{', '.join((*BINARY_NAMES, *ADDON_BINARY_NAMES))}",
    )
    parser.set_defaults(func=run_build)


def export_line(cluster: ClusterInfo) -> str:
    return f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig))}"


def run_up(args: argparse.Namespace) -> int:
    began = time.monotonic()
    try:
        cluster = up(
            args.name,
            state_dir=args.state_dir,
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            gpu_product=args.gpu_product,
            gpu_taint=args.gpu_taint,
            addons=tuple(args.addons),
            kubeflow_threads=args.kubeflow_threads,
            timeout=args.timeout,
        )
    except ClusterAlreadyRunningError as running:
        say(f"{running}; nothing started")
        print(export_line(running.cluster))
        return 0
    except EXPECTED_ERRORS as error:
        say(f"error: {error}")
        return 1
    print(export_line(cluster))
    say(f"up took {format_duration(time.monotonic() - began)}; kubectl: {cluster.kubectl}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    try:
        stopped = down(args.name, state_dir=args.state_dir)
    except StillRunningError as error:
        say(f"error: {error}")
        return 1
    say(
        f"cluster {args.name!r}: stopped {stopped} processes"
        if stopped
        else f"cluster {args.name!r} is not running"
    )
    return 0


def describe(found: ClusterStatus) -> list[str]:
    if found.cluster is None:
        return [f"cluster {found.name!r}: never started (state folder {found.state_dir})"]
    state = "running" if found.running else "not running"
    lines = [f"cluster {found.name!r}: {state}", f"  state folder: {found.state_dir}"]
    if found.running:
        lines += [f"  api: {found.cluster.api_url}", f"  {export_line(found.cluster)}"]
    lines += [
        f"  {p.name:<24} pid {p.pid:<8} {'running' if p.alive else 'exited':<8} log: {p.log}"
        for p in found.processes
    ]
    return lines


def run_status(args: argparse.Namespace) -> int:
    found = status(args.name, state_dir=args.state_dir)
    print("\n".join(describe(found)))
    return 0 if found.running else 1


def run_spawn(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        say("error: no command given (plinth spawn NAME -- COMMAND...)")
        return 2
    try:
        started = start_companion(args.program, command, name=args.name, state_dir=args.state_dir)
    except EXPECTED_ERRORS as error:
        say(f"error: {error}")
        return 1
    say(f"{args.program}: pid {started.pid}, log {started.log}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    began = time.monotonic()
    try:
        if args.only:
            paths = [find_binary(name) for name in args.only]
        else:
            binaries = ensure_binaries()
            paths = [binaries.path(name) for name in BINARY_NAMES]
    except EXPECTED_ERRORS as error:
        say(f"error: {error}")
        return 1
    print("\n".join(str(path) for path in paths))
    say(f"binaries ready in {format_duration(time.monotonic() - began)}")
    return 0
