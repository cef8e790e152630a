"""Run the local pod runner until interrupted (the demo serves a model this way):

    python -m plinth_devcluster.podrunner --namespace plinth-demo --log-dir /tmp/pods

It plays the kubelet of the pods annotated `devcluster.plinth.dev/runner: local` of the
current kubeconfig's cluster (see the package doc); SIGINT or SIGTERM stops it and every
process it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from plinth_devcluster.podrunner.runner import PodRunner


def main() -> int:
    parser = argparse.ArgumentParser(description="Run local pods of the emulated cluster.")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--namespace", default=None, help="only this namespace (default: all)")
    parser.add_argument("--log-dir", type=Path, required=True, help="pods' output and folders")
    args = parser.parse_args()
    if args.kubeconfig is None:
        parser.error("--kubeconfig or KUBECONFIG is required")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with PodRunner(Path(args.kubeconfig), args.log_dir, namespace=args.namespace):
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
