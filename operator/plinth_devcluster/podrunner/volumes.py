"""A pod's volumes as local folders, and its containers' paths rewritten to them.

An emptyDir is a folder of the pod's own (shared by its init containers and its
container, as in a pod); a hostPath is that path; a persistentVolumeClaim is the folder
`<runner root>/claims/<namespace>/<claim>` (a test or demo fills it). A word of a command
or a variable that names a path under a mount (`/models`, `--model-repository=/models`)
names the local folder instead. Other volumes (Secrets, ConfigMaps) are not mounted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plinth_devcluster.podrunner.pod import PodFacts


def local_volumes(pod: PodFacts, workdir: Path, claims: Path) -> dict[str, Path]:
    """Each volume of the pod that has a local meaning, by name."""
    found: dict[str, Path] = {}
    for volume in pod.volumes:
        name = str(volume["name"])
        if "emptyDir" in volume:
            found[name] = workdir / "volumes" / name
        elif "hostPath" in volume:
            found[name] = Path(str(volume["hostPath"]["path"]))
        elif "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"]["claimName"])
            found[name] = claims / pod.namespace / claim
    for folder in found.values():
        folder.mkdir(parents=True, exist_ok=True)
    return found


def mount_table(container: Mapping[str, Any], volumes: Mapping[str, Path]) -> dict[str, Path]:
    """Mount path -> local folder, for the container's mounts of local volumes."""
    table: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or ():
        if (folder := volumes.get(str(mount["name"]))) is not None:
            sub_path = mount.get("subPath")
            table[str(mount["mountPath"]).rstrip("/") or "/"] = (
                folder / sub_path if sub_path else folder
            )
    return table


def localize_path(word: str, table: Mapping[str, Path]) -> str:
    """`word` with a leading mounted path (or one after `=`) made local."""
    prefix, equals, value = word.rpartition("=") if word.startswith("-") else ("", "", word)
    for mount, folder in sorted(table.items(), key=lambda item: -len(item[0])):
        if value == mount or value.startswith(f"{mount}/"):
            return f"{prefix}{equals}{folder}{value[len(mount) :]}"
    return word
