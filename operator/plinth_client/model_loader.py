"""The model loader: fetches a model into a serving pod's Triton model repository.

Runs as the `model-loader` init container of every ModelDeployment replica, before Triton
starts (stdlib only, so it runs in any image with Python 3):

    python3 -m plinth_client.model_loader --uri=URI --format=onnx \
        --model-dir=/models/<name> --version=<version>

It fetches the model's files for one version into `<model-dir>/<version>/` and writes the
`config.pbtxt` Plinth rendered (environment variable PLINTH_MODEL_CONFIG) beside them.
URI: an http:// or https:// URL, or an absolute path (a volume; a pvc:// URI arrives as the
path where its claim is mounted). A single file is stored under the name Triton looks for
(model.onnx, model.pt, model.plan, model.py); a folder is copied as it is; a .tar.gz, .tgz
or .zip archive is unpacked. On failure it exits 1 and its last line says why, which
Kubernetes shows as the container's termination message and Plinth in ModelReady.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

#: The file (or folder) name Triton looks for in a version folder, per format.
FORMAT_FILENAMES = {
    "onnx": "model.onnx",
    "pytorch": "model.pt",
    "tensorrt": "model.plan",
    "tensorflow": "model.savedmodel",
    "python": "model.py",
}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
CONFIG_VARIABLE = "PLINTH_MODEL_CONFIG"
TERMINATION_LOG = Path("/dev/termination-log")
HTTP_ATTEMPTS = 3
HTTP_TIMEOUT_SECONDS = 60.0


class LoadError(Exception):
    """The model cannot be fetched; the message says why, for the pod's status."""


def _is_archive(name: str) -> bool:
    return name.endswith(ARCHIVE_SUFFIXES)


def unpack(archive: Path, destination: Path) -> None:
    """Unpack a .tar.gz/.tgz/.zip archive into `destination` (no paths outside it)."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise LoadError(f"archive member {member!r} points outside the model folder")
            zipped.extractall(destination)
        return
    with tarfile.open(archive) as tarred:
        tarred.extractall(destination, filter="data")


def place_file(source: Path, name: str, destination: Path, filename: str) -> None:
    """A single fetched file: unpacked if an archive, else stored as `filename`."""
    if _is_archive(name):
        unpack(source, destination)
    else:
        shutil.copyfile(source, destination / filename)


def fetch_path(uri: str, destination: Path, filename: str) -> None:
    """A file or folder on a mounted volume."""
    source = Path(uri)
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    elif source.is_file():
        place_file(source, source.name, destination, filename)
    else:
        raise LoadError(f"{uri} does not exist in the loader (is its volume mounted?)")


def _download(url: str, target: Path) -> None:
    last: Exception | None = None
    for attempt in range(HTTP_ATTEMPTS):
        try:
            with (
                urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as answer,
                target.open("wb") as out,
            ):
                shutil.copyfileobj(answer, out)
            return
        except urllib.error.HTTPError as error:
            if error.code < 500:  # a client error does not change on a retry
                raise LoadError(f"GET {url}: HTTP {error.code} {error.reason}") from None
            last = error
        except (OSError, ValueError) as error:
            last = error
        time.sleep(2**attempt)
    raise LoadError(f"GET {url}: {getattr(last, 'reason', last)}")


def fetch_http(uri: str, destination: Path, filename: str) -> None:
    """One file over HTTP(S) (an archive for a folder)."""
    name = Path(urllib.parse.urlparse(uri).path).name
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / (name or "download")
        _download(uri, target)
        place_file(target, name, destination, filename)


#: What the loader fetches from, by URI scheme ("" for an absolute path).
FETCHERS: dict[str, Callable[[str, Path, str], None]] = {
    "": fetch_path,
    "http": fetch_http,
    "https": fetch_http,
}


def fetcher(uri: str) -> Callable[[str, Path, str], None]:
    scheme = urllib.parse.urlparse(uri).scheme if "://" in uri else ""
    if scheme == "" and not uri.startswith("/"):
        raise LoadError(f"{uri!r} is neither a URL nor an absolute path")
    if scheme not in FETCHERS:
        raise LoadError(f"the model loader cannot fetch {scheme}:// URIs")
    return FETCHERS[scheme]


def load(uri: str, model_format: str, model_dir: Path, version: int, config: str | None) -> Path:
    """Fetch the model into `model_dir/version` and write its config; returns the folder."""
    filename = FORMAT_FILENAMES.get(model_format)
    if filename is None:
        raise LoadError(f"unknown model format {model_format!r}")
    destination = model_dir / str(version)
    destination.mkdir(parents=True, exist_ok=True)
    fetcher(uri)(uri, destination, filename)
    if not any(destination.iterdir()):
        raise LoadError(f"{uri} holds no files")
    if config is not None:
        (model_dir / "config.pbtxt").write_text(config)
    return destination


def _report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    with contextlib.suppress(OSError):  # outside Kubernetes there is no termination log
        TERMINATION_LOG.write_text(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch a model into a Triton repository.")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--format", required=True, dest="model_format")
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--version", required=True, type=int)
    args = parser.parse_args(argv)
    try:
        folder = load(
            args.uri,
            args.model_format,
            args.model_dir,
            args.version,
            os.environ.get(CONFIG_VARIABLE),
        )
    except (LoadError, OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        _report(f"cannot load the model from {args.uri}: {error}")
        return 1
    files = sorted(p.name for p in folder.iterdir())
    print(f"loaded {args.uri} into {folder}: {', '.join(files)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
