"""A container's command as a local argv: image entrypoints, image files, local executables."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plinth_devcluster.podrunner import triton
from plinth_devcluster.podrunner.environment import REPO_ROOT, expand
from plinth_devcluster.podrunner.pod import LOCAL_IP, ContainerConfigError
from plinth_devcluster.podrunner.volumes import localize_path

REFERENCE_TRAINER = REPO_ROOT / "images" / "trainer" / "train.py"
#: The example models Plinth's serving image ships (images/serving/examples).
SERVING_EXAMPLES = REPO_ROOT / "images" / "serving" / "examples"
PYTHON_NAME = re.compile(r"python(3(\.\d+)?)?")


@dataclass(frozen=True)
class LocalImage:
    """What a container image means locally: its entrypoint and files inside it."""

    entrypoint: tuple[str, ...] = ()
    files: Mapping[str, Path] = field(default_factory=dict)


_SERVING = LocalImage(files={"/opt/plinth/examples": SERVING_EXAMPLES})
DEFAULT_IMAGES: Mapping[str, LocalImage] = {
    "plinth-trainer": LocalImage(
        entrypoint=("python", "-m", "plinth_client.launch", "/opt/plinth/train.py"),
        files={"/opt/plinth/train.py": REFERENCE_TRAINER},
    ),
    # Plinth's serving image and NVIDIA's: `tritonserver` runs the wheel's real server.
    "plinth-serving": _SERVING,
    "tritonserver": _SERVING,
}


def find_image(image: str, images: Mapping[str, LocalImage]) -> LocalImage | None:
    """The local meaning of `image`, by full reference, without tag or digest, or last part."""
    untagged = image.partition("@")[0]
    if ":" in untagged.rsplit("/", 1)[-1]:
        untagged = untagged.rsplit(":", 1)[0]
    for key in (image, untagged, untagged.rsplit("/", 1)[-1]):
        if key in images:
            return images[key]
    return None


def local_argv(
    container: Mapping[str, Any],
    environment: Mapping[str, str],
    images: Mapping[str, LocalImage],
    *,
    pod_ip: str = LOCAL_IP,
    mounts: Mapping[str, Path] | None = None,
) -> list[str]:
    """The container's command and args as a local argv (see the package doc): image
    files and paths under the container's mounts become local paths."""
    image = find_image(str(container.get("image", "")), images) or LocalImage()
    command = list(container.get("command") or image.entrypoint)
    if not command:
        raise ContainerConfigError(
            f"no command, and image {container.get('image')!r} has no local entrypoint"
        )
    table = {**image.files, **(mounts or {})}
    words = [expand(str(word), environment) for word in [*command, *container.get("args", [])]]
    words = [localize_path(word, table) for word in words]
    return [*local_executable(words[0], pod_ip), *words[1:]]


def local_executable(executable: str, pod_ip: str = LOCAL_IP) -> list[str]:
    name = Path(executable).name
    if PYTHON_NAME.fullmatch(name):
        return [sys.executable]
    if name == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run"]
    if name == "tritonserver":
        return triton.server_argv(pod_ip)
    return [executable]
