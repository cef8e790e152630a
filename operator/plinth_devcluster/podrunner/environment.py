"""A local pod's environment, resolved as a kubelet would, laid over this process's own."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from plinth_devcluster.podrunner.pod import ContainerConfigError, PodFacts

HTTP_NOT_FOUND = 404
REPO_ROOT = Path(__file__).resolve().parents[3]
CONTRACT_PREFIXES = ("PLINTH_", "PET_", "TORCHELASTIC_")
CONTRACT_NAMES = frozenset(
    {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "KUBECONFIG"}
)
VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([-._A-Za-z0-9]+)\)")


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return variables.get(match[1], match[0])

    return VARIABLE_REFERENCE.sub(replace, text)


class EnvironmentResolver:
    """Resolves a container's `env` and `envFrom` against the API server, as a kubelet does."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def resolve(self, pod: PodFacts, container: Mapping[str, Any]) -> dict[str, str]:
        variables: dict[str, str] = {}
        for source in container.get("envFrom") or ():
            variables.update(self._from_source(pod.namespace, source))
        for entry in container.get("env") or ():
            if "valueFrom" in entry:
                value = self._value_from(pod, entry["name"], entry["valueFrom"])
            else:
                value = expand(str(entry.get("value", "")), variables)
            if value is not None:
                variables[entry["name"]] = value
        return variables

    def _from_source(self, namespace: str, source: Mapping[str, Any]) -> dict[str, str]:
        prefix = str(source.get("prefix", ""))
        if ref := source.get("configMapRef"):
            data = self._data("ConfigMap", namespace, ref)
        else:
            data = self._data("Secret", namespace, source["secretRef"])
        return {f"{prefix}{key}": value for key, value in (data or {}).items()}

    def _value_from(self, pod: PodFacts, name: str, source: Mapping[str, Any]) -> str | None:
        if ref := source.get("fieldRef"):
            return pod.field(str(ref["fieldPath"]))
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if ref := source.get(key):
                return self._key(kind, pod.namespace, ref)
        raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")

    def _key(self, kind: str, namespace: str, ref: Mapping[str, Any]) -> str | None:
        data = self._data(kind, namespace, ref)
        key = str(ref["key"])
        if data is not None and key in data:
            return data[key]
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{ref['name']}")

    def _data(self, kind: str, namespace: str, ref: Mapping[str, Any]) -> dict[str, str] | None:
        """A Secret's (decoded) or ConfigMap's data; None if absent and optional."""
        name = str(ref["name"])
        secret = kind == "Secret"
        read = (
            self._core.read_namespaced_secret if secret else self._core.read_namespaced_config_map
        )
        try:
            response: Any = read(name, namespace, _preload_content=False)  # raw JSON
        except ApiException as error:
            if error.status != HTTP_NOT_FOUND:
                raise
            if ref.get("optional"):
                return None
            raise ContainerConfigError(f'{kind.lower()} "{name}" not found') from None
        data: dict[str, str] = json.loads(response.data).get("data") or {}
        if secret:
            return {key: base64.b64decode(value).decode() for key, value in data.items()}
        return data


def base_environment() -> dict[str, str]:
    """This process's environment without the training contract's variables or KUBECONFIG."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONTRACT_PREFIXES) and name not in CONTRACT_NAMES
    }
    operator_sources = REPO_ROOT / "operator"
    if operator_sources.is_dir():
        paths = [str(operator_sources), inherited.get("PYTHONPATH", "")]
        inherited["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return {**inherited, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
