"""The `plinth` command: run the operator, render and generate CRDs, manage the local cluster.

The operator's commands (`run`, `crds`, `render`, `convert`, `sweep plot`) live here. The emulated
cluster's commands (`up`, `down`, `status`, `spawn`, `build`) belong to the separate dev package
`plinth_devcluster`, loaded only when one of them is asked for: the operator never imports
it, and the operator image does not hold it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

import yaml

DEFAULT_CRD_DIR = Path("crds")
DEVCLUSTER_CLI = "plinth_devcluster.cli"
DEV_COMMANDS = {
    "up": "start the emulated cluster with fake GPU nodes (builds its binaries on first use)",
    "down": "stop every process of the emulated cluster",
    "status": "show the emulated cluster's processes (exit code 0 only if it runs)",
    "spawn": "run a program in the background beside the cluster; `plinth down` stops it too",
    "build": "build and cache the emulated cluster's binaries",
}

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class DevclusterMissingError(RuntimeError):
    """The emulated cluster's package, or one of its dependencies, is not installed."""


def _run_operator(args: argparse.Namespace) -> int:
    from plinth.handlers.registry import ADAPTERS  # noqa: PLC0415
    from plinth.runtime.operator import OperatorOptions, run_operator  # noqa: PLC0415

    options = OperatorOptions(
        namespaces=tuple(args.namespace),
        probe_port=args.probe_port,
        peering=args.peering,
        peering_lifetime=args.peering_lifetime,
        peering_priority=args.peering_priority,
        verbose=args.verbose,
        metrics_base_url=args.metrics_base_url,
        intake_key_file=args.intake_key_file,
    )
    run_operator(ADAPTERS, options)
    return 0


def _write_crds(args: argparse.Namespace) -> int:
    from plinth.api.schema.crds import write_crds  # noqa: PLC0415
    from plinth.api.v1alpha1 import KINDS  # noqa: PLC0415

    for path in write_crds(Path(args.output), KINDS.values()):
        print(path)
    return 0


def _render(args: argparse.Namespace) -> int:
    from plinth.builders.render import RenderError, render_documents  # noqa: PLC0415

    try:
        with Path(args.filename).open(encoding="utf-8") as stream:
            rendered = render_documents(yaml.safe_load_all(stream))
    except (OSError, yaml.YAMLError, RenderError) as error:
        print(f"plinth render: {error}", file=sys.stderr)
        return 1
    for name in rendered.without_builder:
        print(f"# {name}: this kind has no child objects yet", file=sys.stderr)
    for name in rendered.waiting_for_cluster:
        print(
            f"# {name}: no children until a cluster resolves what it refers to "
            "(its model's TrainingJob or AutoMLSweep)",
            file=sys.stderr,
        )
    yaml.safe_dump_all(rendered.manifests, sys.stdout, sort_keys=False)
    return 0


def _convert_inputs(source: Path) -> list[tuple[Path, str]]:
    """The YAML files to convert and the names their outputs get: a file, or every
    .yaml/.yml file under a folder (by relative path)."""
    if not source.is_dir():
        return [(source, source.name)]
    files = sorted(p for p in source.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return [(path, str(path.relative_to(source))) for path in files]


def _convert(args: argparse.Namespace) -> int:
    from plinth.convert import InputFile, convert_files  # noqa: PLC0415

    try:
        paths = _convert_inputs(Path(args.filename))
        inputs = [InputFile(name, path.read_text(encoding="utf-8")) for path, name in paths]
    except (OSError, UnicodeDecodeError) as error:
        print(f"plinth convert: {error}", file=sys.stderr)
        return 1
    conversion = convert_files(inputs, strict=args.strict)
    if not conversion.ok:
        for problem in conversion.errors:
            print(f"plinth convert: error: {problem}", file=sys.stderr)
        print("plinth convert: nothing written", file=sys.stderr)
        return 1
    for line in conversion.messages():
        print(f"plinth convert: {line}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(conversion.text())
        return 0
    return _write_converted(Path(args.output), conversion.files(), [path for path, _ in paths])


def _write_converted(folder: Path, files: dict[str, str], inputs: list[Path]) -> int:
    targets = {folder / name: text for name, text in files.items()}
    sources = {path.resolve() for path in inputs}
    if any(target.resolve() in sources for target in targets):
        print(
            "plinth convert: -o would overwrite the input; choose another folder", file=sys.stderr
        )
        return 1
    for target, text in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(target)
    return 0


def _sweep_plot(args: argparse.Namespace) -> int:
    from plinth.api.v1alpha1 import (  # noqa: PLC0415
        API_GROUP,
        API_VERSION,
        parse_spec,
        parse_status,
    )
    from plinth.kube.client import Kube, load_api_client  # noqa: PLC0415
    from plinth.tuning.plot import sweep_png  # noqa: PLC0415

    kube = Kube(api=load_api_client())
    api_version = f"{API_GROUP}/{API_VERSION}"
    sweep = kube.get_object(api_version, "AutoMLSweep", args.namespace, args.name)
    if sweep is None:
        print(f"plinth sweep plot: no AutoMLSweep {args.namespace}/{args.name}", file=sys.stderr)
        return 1
    spec = parse_spec("AutoMLSweep", sweep.get("spec") or {})
    status = parse_status("AutoMLSweep", sweep.get("status"))
    try:
        png = sweep_png(spec, status, f"AutoMLSweep {args.namespace}/{args.name}")
    except RuntimeError as error:
        print(f"plinth sweep plot: {error}", file=sys.stderr)
        return 1
    output = Path(args.output or f"{args.name}.png")
    output.write_bytes(png)
    print(output)
    return 0


def _add_sweep_commands(subparsers: SubParsers) -> None:
    sweep = subparsers.add_parser("sweep", help="look at an AutoMLSweep")
    actions = sweep.add_subparsers(dest="action", required=True)
    plot = actions.add_parser(
        "plot",
        help="write a PNG of a sweep: optimisation history, intermediate values, importances",
    )
    plot.add_argument("name", help="the AutoMLSweep's name")
    plot.add_argument("--namespace", "-n", default="default", help="its namespace")
    plot.add_argument("--output", "-o", default=None, help="PNG file to write (NAME.png)")
    plot.set_defaults(func=_sweep_plot)


def _add_operator_commands(subparsers: SubParsers) -> None:
    run = subparsers.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: the whole cluster",
    )
    run.add_argument(
        "--probe-port",
        type=int,
        default=8080,
        help="port of /healthz, /readyz and /metrics (0 picks a free one)",
    )
    run.add_argument(
        "--peering",
        default=None,
        help="Kopf peering name for a single active replica (in-cluster); default: standalone",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=10,
        help="seconds a replica's peering heartbeat is valid: the longest a dead active "
        "replica holds the others back (default: 10)",
    )
    run.add_argument(
        "--peering-priority",
        type=int,
        default=None,
        help="this replica's peering priority; default: the earliest started replica is active",
    )
    run.add_argument(
        "--metrics-base-url",
        default=os.environ.get("PLINTH_METRICS_BASE_URL"),
        help=(
            "URL at which training pods reach this operator's probe port, e.g. "
            "http://plinth-metrics.plinth-system.svc:8080 (env PLINTH_METRICS_BASE_URL); "
            "unset: pods get no metrics endpoint"
        ),
    )
    run.add_argument(
        "--intake-key-file",
        type=Path,
        default=None,
        help=(
            "file holding the key metrics tokens are derived from (env PLINTH_INTAKE_KEY or "
            "PLINTH_INTAKE_KEY_FILE); default: created once under $XDG_STATE_HOME/plinth"
        ),
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.set_defaults(func=_run_operator)

    crds = subparsers.add_parser("crds", help="write the CRDs generated from the typed specs")
    crds.add_argument("--output", "-o", default=str(DEFAULT_CRD_DIR), help="folder to write into")
    crds.set_defaults(func=_write_crds)

    render = subparsers.add_parser(
        "render",
        help="print the child objects Plinth would apply for the resources in a file",
    )
    render.add_argument("-f", "--filename", required=True, help="YAML file of Plinth resources")
    render.set_defaults(func=_render)

    convert = subparsers.add_parser(
        "convert",
        help="convert Kubeflow PyTorchJob/TrainJob, Katib Experiment and KServe "
        "InferenceService YAML into TrainingJob, AutoMLSweep and ModelDeployment",
    )
    convert.add_argument("-f", "--filename", required=True, help="YAML file, or folder of them")
    convert.add_argument(
        "-o", "--output", default=None, help="folder to write the converted files into (stdout)"
    )
    convert.add_argument(
        "--strict", action="store_true", help="fail on any source field Plinth cannot map"
    )
    convert.set_defaults(func=_convert)
    _add_sweep_commands(subparsers)


def _devcluster_register() -> Callable[[SubParsers], None]:
    """The dev package's `register`, imported by name so that `plinth` never depends on it."""
    try:
        module = importlib.import_module(DEVCLUSTER_CLI)
    except ModuleNotFoundError as error:
        raise DevclusterMissingError(
            f"the emulated cluster is a dev tool that is not installed here ({error}); "
            "from a checkout of Plinth: pip install -e '.[devcluster]'"
        ) from error
    register: Callable[[SubParsers], None] = module.register
    return register


def _add_dev_placeholders(subparsers: SubParsers) -> None:
    """List the emulated cluster's commands in `plinth --help` without loading them."""
    for name, text in DEV_COMMANDS.items():
        subparsers.add_parser(name, help=text)


def build_parser(*, devcluster: bool = False) -> argparse.ArgumentParser:
    """The `plinth` parser; with `devcluster`, the emulated cluster's commands are loaded."""
    parser = argparse.ArgumentParser(
        prog="plinth",
        description="Plinth: distributed training, sweeps and Triton serving on Kubernetes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_operator_commands(subparsers)
    if devcluster:
        _devcluster_register()(subparsers)
    else:
        _add_dev_placeholders(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    devcluster = bool(arguments) and arguments[0] in DEV_COMMANDS
    try:
        parser = build_parser(devcluster=devcluster)
    except DevclusterMissingError as error:
        print(f"plinth {arguments[0]}: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(arguments)
    try:
        exit_code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (e.g. `plinth render ... | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return exit_code
