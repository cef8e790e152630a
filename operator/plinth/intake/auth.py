"""Per-job bearer tokens for the metrics intake, derived from a key only the operator holds.

A job's token is HMAC-SHA256(key, "<kind>/<namespace>/<name>/<uid>"), so the operator never
stores tokens and never reads a Secret back: it hands the token to the job's workers in a
Secret it writes, and checks a presented token by deriving it again. A token names one job
(uid included, so a job re-created under the same name gets a new token) and is useless for
any other. Tokens never appear in status, events or logs.

The key comes from `PLINTH_INTAKE_KEY` (in a cluster: the chart mounts it from a Secret the
operator does not read through the API), from a key file, or is generated once into the
operator's state folder; with none of these writable the operator makes a key for its own
lifetime and says so (tokens then change when it restarts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from plinth.api.wellknown import ObjectRef

KEY_ENV = "PLINTH_INTAKE_KEY"
KEY_FILE_ENV = "PLINTH_INTAKE_KEY_FILE"
KEY_BYTES = 32
LOGGER = logging.getLogger("plinth.intake")


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and checks the intake tokens of every job under one key."""

    key: bytes = field(repr=False)

    def token_for(self, ref: ObjectRef) -> str:
        """The bearer token of the workloads of `ref` (URL-safe text, 43 characters)."""
        message = f"{ref.kind}/{ref.namespace}/{ref.name}/{ref.uid}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def is_valid(self, ref: ObjectRef, presented: str) -> bool:
        """Whether `presented` is `ref`'s token (compared in constant time)."""
        return bool(presented) and hmac.compare_digest(presented, self.token_for(ref))


def default_key_file() -> Path:
    """Where `plinth run` keeps its key outside a cluster."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "plinth" / "intake.key"


def _read_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(KEY_BYTES).encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(key)
    return key


def load_issuer(key_file: Path | None = None) -> TokenIssuer:
    """The issuer under the configured key (see the module docstring for the order)."""
    if key := os.environ.get(KEY_ENV, "").strip():
        return TokenIssuer(key.encode())
    path = key_file or Path(os.environ.get(KEY_FILE_ENV) or default_key_file())
    try:
        return TokenIssuer(_read_or_create(path))
    except OSError as error:
        LOGGER.warning(
            "no intake key (%s: %s); using one for this process only: metrics tokens "
            "change when the operator restarts",
            path,
            error.strerror,
        )
        return TokenIssuer(secrets.token_bytes(KEY_BYTES))
