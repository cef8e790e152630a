"""The `plinth` command: run the operator, manage the local cluster, render and generate CRDs."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from plinth.devcluster import commands as devcluster_commands

DEFAULT_CRD_DIR = Path("crds")


def _run_operator(args: argparse.Namespace) -> int:
    from plinth.handlers.operator import OperatorOptions, run_operator  # noqa: PLC0415

    options = OperatorOptions(
        namespaces=tuple(args.namespace),
        probe_port=args.probe_port,
        peering=args.peering,
        verbose=args.verbose,
        metrics_base_url=args.metrics_base_url,
    )
    run_operator(options)
    return 0


def _write_crds(args: argparse.Namespace) -> int:
    from plinth.api.crds import write_crds  # noqa: PLC0415

    for path in write_crds(Path(args.output)):
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
    yaml.safe_dump_all(rendered.manifests, sys.stdout, sort_keys=False)
    return 0


def _add_operator_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        "--metrics-base-url",
        default=os.environ.get("PLINTH_METRICS_BASE_URL"),
        help=(
            "URL at which training pods reach this operator's probe port, e.g. "
            "http://plinth-metrics.plinth-system.svc:8080 (env PLINTH_METRICS_BASE_URL); "
            "unset: pods get no metrics endpoint"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plinth",
        description="Plinth: distributed training, sweeps and Triton serving on Kubernetes.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_operator_commands(subparsers)
    devcluster_commands.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        exit_code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (e.g. `plinth render ... | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return exit_code
