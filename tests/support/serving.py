"""ModelDeployments and what their children and Triton servers look like, for the serving
tests: a fluent spec factory, Deployments and Triton pods as the API server writes them,
metrics pages and repository indexes as Triton 2.51 writes them.

    a_modeldeployment().scaled(1, 4, target=20).with_canary(10, 50).spec()
    a_server_pod("scale-abc", "abc", ip="127.64.0.2").ready().build()
    metrics_page("scale", success=100, queue_us=50_000)
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from plinth.api.v1alpha1 import API_GROUP, API_VERSION, ModelDeploymentSpec, parse_spec
from plinth.api.wellknown import (
    LABEL_MODEL_REVISION,
    LABEL_MODELDEPLOYMENT,
    MODEL_LOADER_CONTAINER,
    TRITON_CONTAINER,
    Manifest,
    ObjectRef,
    OwnerMeta,
)

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The example model Plinth's serving image ships, and the tests' own models.
SCALE_MODEL = REPO_ROOT / "images" / "serving" / "examples" / "scale"
TEST_MODELS = Path(__file__).resolve().parent / "models"
FAILING_MODEL, BROKEN_MODEL, SLOW_MODEL = (TEST_MODELS / n for n in ("failing", "broken", "slow"))
TENSORS = {
    "inputs": [{"name": "INPUT", "dataType": "FP32", "dims": [4]}],
    "outputs": [{"name": "OUTPUT", "dataType": "FP32", "dims": [4]}],
}


def _default_fields() -> dict[str, Any]:
    return {
        "model": {"uri": str(SCALE_MODEL), "format": "python", "name": "scale", **TENSORS},
        "runtime": {"maxBatchSize": 8},
    }


@dataclass(frozen=True)
class ModelDeploymentFactory:
    """A ModelDeployment: by default `scale` in `ml`, the example python model (batches of
    up to 8), 1 replica."""

    name: str = "scale"
    namespace: str = "ml"
    uid: str = "md-1"
    generation: int = 1
    fields: Mapping[str, Any] = field(default_factory=_default_fields)

    def named(self, name: str) -> ModelDeploymentFactory:
        return replace(self, name=name)

    def in_namespace(self, namespace: str) -> ModelDeploymentFactory:
        return replace(self, namespace=namespace)

    def with_fields(self, **fields: Any) -> ModelDeploymentFactory:
        merged = {**self.fields, **fields}
        return replace(self, fields={k: v for k, v in merged.items() if v is not None})

    def _merged(self, key: str, **values: Any) -> ModelDeploymentFactory:
        merged = {**self.fields.get(key, {}), **values}
        return self.with_fields(**{key: {k: v for k, v in merged.items() if v is not None}})

    def with_model(self, **model: Any) -> ModelDeploymentFactory:
        return self._merged("model", **model)

    def from_uri(self, uri: str | Path, version: int = 1) -> ModelDeploymentFactory:
        return self.with_model(uri=str(uri), version=version)

    def with_runtime(self, **runtime: Any) -> ModelDeploymentFactory:
        return self._merged("runtime", **runtime)

    def with_env(self, **variables: str) -> ModelDeploymentFactory:
        return self.with_runtime(env=[{"name": k, "value": v} for k, v in variables.items()])

    def with_resources(self, **resources: Any) -> ModelDeploymentFactory:
        return self._merged("resources", **resources)

    def scaled(self, low: int, high: int, **autoscaling: Any) -> ModelDeploymentFactory:
        return self._merged("autoscaling", minReplicas=low, maxReplicas=high, **autoscaling)

    def with_canary(self, *weights: int, duration: int = 0, **gates: Any) -> ModelDeploymentFactory:
        steps = [{"weight": w, "durationSeconds": duration} for w in weights]
        canary: dict[str, Any] = {"steps": steps}
        if gates:
            canary["gates"] = gates
        return self.with_fields(rollout={"canary": canary})

    def run_locally(self) -> ModelDeploymentFactory:
        """Pods run by the local pod runner (real Triton) instead of kwok."""
        return self._merged("podTemplate", annotations={"devcluster.plinth.dev/runner": "local"})

    def spec_fields(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self.fields))

    def spec(self) -> ModelDeploymentSpec:
        parsed = parse_spec("ModelDeployment", self.spec_fields())
        assert isinstance(parsed, ModelDeploymentSpec)
        return parsed

    def body(self) -> Manifest:
        return {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self.spec_fields(),
        }

    def ref(self) -> ObjectRef:
        return ObjectRef(
            f"{API_GROUP}/{API_VERSION}", "ModelDeployment", self.namespace, self.name, self.uid
        )

    def owner(self) -> OwnerMeta:
        return OwnerMeta(ref=self.ref(), generation=self.generation, created=T0)


def a_modeldeployment() -> ModelDeploymentFactory:
    return ModelDeploymentFactory()


# --------------------------------------------------------------------------------------
# Children as the API server writes them
# --------------------------------------------------------------------------------------


def a_deployment(owner: str, revision: str, replicas: int = 1, ready: int = 0) -> Manifest:
    labels = {LABEL_MODELDEPLOYMENT: owner, LABEL_MODEL_REVISION: revision}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{owner}-{revision}",
            "namespace": "ml",
            "labels": labels,
            "generation": 1,
        },
        "spec": {"replicas": replicas},
        "status": {"observedGeneration": 1, "readyReplicas": ready, "updatedReplicas": replicas},
    }


@dataclass(frozen=True)
class ServerPod:
    """A Triton pod of one revision."""

    name: str
    revision: str
    owner: str = "scale"
    ip: str | None = "127.64.0.2"
    phase: str = "Running"
    is_ready: bool = False
    restarts: int = 0
    loader_error: str | None = None

    def ready(self) -> ServerPod:
        return replace(self, is_ready=True)

    def restarted(self, times: int) -> ServerPod:
        return replace(self, restarts=times)

    def loader_failed(self, message: str) -> ServerPod:
        return replace(self, loader_error=message, phase="Pending")

    def build(self) -> Manifest:
        labels = {LABEL_MODELDEPLOYMENT: self.owner, LABEL_MODEL_REVISION: self.revision}
        status: dict[str, Any] = {
            "phase": self.phase,
            "containerStatuses": [
                {"name": TRITON_CONTAINER, "ready": self.is_ready, "restartCount": self.restarts}
            ],
        }
        if self.ip:
            status["podIP"] = self.ip
        if self.loader_error:
            terminated = {"exitCode": 1, "message": self.loader_error}
            status["initContainerStatuses"] = [
                {"name": MODEL_LOADER_CONTAINER, "lastState": {"terminated": terminated}}
            ]
        return {
            "metadata": {"name": self.name, "namespace": "ml", "labels": labels},
            "status": status,
        }


def a_server_pod(name: str, revision: str, ip: str | None = "127.64.0.2") -> ServerPod:
    return ServerPod(name=name, revision=revision, ip=ip)


# --------------------------------------------------------------------------------------
# What Triton answers
# --------------------------------------------------------------------------------------


def metrics_page(
    model: str,
    version: int = 1,
    *,
    success: float = 0,
    failure: float = 0,
    inferences: float | None = None,
    queue_us: float = 0,
    request_us: float = 0,
    pending: float = 0,
    cpu: float = 0.1,
) -> str:
    """A metrics page as Triton 2.51 writes it, for one model version."""
    labels = f'model="{model}",version="{version}"'
    vl = f'version="{version}"'
    count = success if inferences is None else inferences
    return "\n".join(
        [
            "# HELP nv_inference_request_success Number of successful inference requests",
            "# TYPE nv_inference_request_success counter",
            f"nv_inference_request_success{{{labels}}} {success}",
            f'nv_inference_request_failure{{model="{model}",reason="BACKEND",{vl}}} {failure}',
            f'nv_inference_request_failure{{model="{model}",reason="OTHER",{vl}}} 0',
            f"nv_inference_count{{{labels}}} {count}",
            f"nv_inference_exec_count{{{labels}}} {count}",
            f"nv_inference_request_duration_us{{{labels}}} {request_us}",
            f"nv_inference_queue_duration_us{{{labels}}} {queue_us}",
            f"nv_inference_pending_request_count{{{labels}}} {pending}",
            f"nv_cpu_utilization {cpu}",
            "nv_cpu_memory_total_bytes 25276510208",
            "",
        ]
    )


def repository_index(model: str, version: int = 1, reason: str | None = None) -> str:
    """Triton's repository index: the model READY, or UNAVAILABLE with `reason`."""
    entry: dict[str, str] = {"name": model, "version": str(version)}
    entry |= {"state": "UNAVAILABLE", "reason": reason} if reason else {"state": "READY"}
    return json.dumps([entry])
