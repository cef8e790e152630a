"""KEDA's own CustomResourceDefinition of ScaledObject, read from its Go module (fetched
once through the Go module proxy, like the control plane's sources), for tests that check
the API server accepts the ScaledObjects Plinth makes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from plinth_devcluster.gobuild import go_environment

KEDA_MODULE = "github.com/kedacore/keda/v2@v2.21.0"
SCALED_OBJECT_CRD = Path("config/crd/bases/keda.sh_scaledobjects.yaml")


def scaled_object_crd() -> Path:
    """The path of KEDA's ScaledObject CRD in the module cache (downloaded if needed)."""
    found = subprocess.run(
        ["go", "mod", "download", "-json", KEDA_MODULE],
        capture_output=True,
        text=True,
        check=True,
        env=go_environment(),
        timeout=600,
    )
    return Path(json.loads(found.stdout)["Dir"]) / SCALED_OBJECT_CRD
