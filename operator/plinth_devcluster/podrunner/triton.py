"""A real Triton Inference Server for local pods: the `tritonserver` the nvidia-pytriton
wheel ships (Triton 2.51, python backend, CPU).

The wheel's python backend lacks its stub beside it, so a backend folder of symlinks is
made once (symlinks keep the stub's RPATH to the wheel's libraries working); the server
needs this interpreter's `bin` first on PATH, so the stub's Python finds numpy. A local
Triton pod binds its pod IP (`--http-address` and friends), as a server in a pod binds
its pod's network. Nothing here imports pytriton.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path

from plinth_devcluster.podrunner.pod import ContainerConfigError

_LOCK = threading.Lock()
STUB_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def triton_home() -> Path:
    """The wheel's tritonserver folder (bin/, backends/, python_backend_stubs/)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ContainerConfigError(
            "tritonserver is not installed here: pip install nvidia-pytriton (the serving extra)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def backend_directory() -> Path:
    """A backend folder holding the python backend and its stub for this Python (made once
    per user, beside the other temporary files)."""
    home = triton_home()
    folder = Path(tempfile.gettempdir()) / f"plinth-triton-backends-{os.getuid()}" / STUB_PYTHON
    python = folder / "python"
    with _LOCK:
        python.mkdir(parents=True, exist_ok=True)
        sources = (
            home / "backends" / "python" / "libtriton_python.so",
            home / "backends" / "python" / "triton_python_backend_utils.py",
            home / "python_backend_stubs" / STUB_PYTHON / "triton_python_backend_stub",
        )
        for source in sources:
            link = python / source.name
            if not link.is_symlink() or link.resolve() != source.resolve():
                link.unlink(missing_ok=True)
                link.symlink_to(source)
    return folder


def server_argv(address: str) -> list[str]:
    """`tritonserver` as a local command, serving on `address`."""
    binary = triton_home() / "bin" / "tritonserver"
    return [
        str(binary),
        f"--backend-directory={backend_directory()}",
        f"--http-address={address}",
        f"--grpc-address={address}",
        f"--metrics-address={address}",
    ]


def server_environment(environment: dict[str, str]) -> dict[str, str]:
    """`environment` with this interpreter's bin first on PATH (for the backend's stub)."""
    bin_dir = str(Path(sys.executable).parent)
    path = environment.get("PATH", os.environ.get("PATH", ""))
    return {**environment, "PATH": os.pathsep.join(filter(None, [bin_dir, path]))}
