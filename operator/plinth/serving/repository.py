"""The model repository inside a serving pod, and the model a deployment serves.

Each replica has its own repository in an emptyDir at `/models`: before Triton starts, the
model-loader init container fetches the model's files for one version into
`/models/<name>/<version>/` and writes the `config.pbtxt` Plinth rendered beside them.
A model is identified by its resolved location, version, format and name; its short hash
(the revision) names the Deployment that serves it, so a new model is a new Deployment
(a canary, or a replacement) while runtime changes roll through the same one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from plinth.api.v1alpha1 import ModelFormat

REPOSITORY_PATH = "/models"
#: Where a PersistentVolumeClaim named by a pvc:// URI is mounted in the loader.
PVC_MOUNT_PATH = "/mnt/model-source"
PVC_SCHEME = "pvc://"
#: The file (or folder) name Triton looks for in a version folder, per format.
DEFAULT_MODEL_FILENAMES: dict[ModelFormat, str] = {
    ModelFormat.ONNX: "model.onnx",
    ModelFormat.PYTORCH: "model.pt",
    ModelFormat.TENSORRT: "model.plan",
    ModelFormat.TENSORFLOW: "model.savedmodel",
    ModelFormat.PYTHON: "model.py",
}
REVISION_LENGTH = 10


@dataclass(frozen=True)
class ResolvedModel:
    """The model to serve, with its location resolved (from a URI, a TrainingJob or a
    sweep's best trial)."""

    name: str
    version: int
    format: ModelFormat
    uri: str

    @property
    def revision(self) -> str:
        """A short, stable hash of the model: changes exactly when the model does."""
        identity = f"{self.name}\n{self.version}\n{self.format.value}\n{self.uri}"
        return hashlib.sha256(identity.encode()).hexdigest()[:REVISION_LENGTH]

    @property
    def model_directory(self) -> str:
        return f"{REPOSITORY_PATH}/{self.name}"

    @property
    def version_directory(self) -> str:
        return f"{self.model_directory}/{self.version}"

    @property
    def default_filename(self) -> str:
        return DEFAULT_MODEL_FILENAMES[self.format]


@dataclass(frozen=True)
class PvcLocation:
    """A pvc://<claim>/<path> URI: the claim, and the path inside it."""

    claim: str
    path: str

    @property
    def mounted_path(self) -> str:
        """Where the loader finds the files, with the claim mounted at PVC_MOUNT_PATH."""
        return f"{PVC_MOUNT_PATH}/{self.path}".rstrip("/")


def pvc_location(uri: str) -> PvcLocation | None:
    """The claim and path of a pvc:// URI; None for any other URI."""
    if not uri.startswith(PVC_SCHEME):
        return None
    claim, _, path = uri.removeprefix(PVC_SCHEME).partition("/")
    return PvcLocation(claim=claim, path=path)


def loader_source(uri: str) -> str:
    """The location the loader reads: a pvc:// URI becomes the path under its mount."""
    location = pvc_location(uri)
    return location.mounted_path if location else uri


def joined_uri(base: str, path: str) -> str:
    """`path` under `base` (a checkpoint location), with exactly one / between them."""
    return f"{base.rstrip('/')}/{path.strip('/')}"
