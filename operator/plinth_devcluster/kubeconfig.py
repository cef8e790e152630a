"""Self-contained kubeconfig files (CA and credentials embedded) for users and components."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from plinth_devcluster.pki import KeyPair


def embedded(path: Path) -> str:
    """A file's bytes as the base64 text kubeconfig `*-data` fields hold."""
    return base64.b64encode(path.read_bytes()).decode()


def token_credentials(token: str) -> dict[str, str]:
    return {"token": token}


def certificate_credentials(pair: KeyPair) -> dict[str, str]:
    return {"client-certificate-data": embedded(pair.cert), "client-key-data": embedded(pair.key)}


def write_kubeconfig(
    path: Path, *, context: str, server: str, ca: Path, credentials: dict[str, str]
) -> Path:
    """Write a kubeconfig with one cluster, user and context (the current one), mode 0600."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": embedded(ca)},
            }
        ],
        "users": [{"name": context, "user": credentials}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
