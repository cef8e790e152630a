"""The children of a ModelDeployment: a Deployment of Triton per model revision, one
Service in front of them, a PodDisruptionBudget, and the autoscaler's object (an HPA or a
KEDA ScaledObject, none for the builtin autoscaler).

For a ModelDeployment `N` serving model `M` version `V` (revision `R`, a hash of the model):

- Deployment `N-R`: each replica's `model-loader` init container fetches the model into
  `/models/M/V/` (an emptyDir) and writes the `config.pbtxt` Plinth rendered from
  `spec.runtime`; then `tritonserver` serves only that model (explicit model control) on
  8000 (HTTP), 8001 (gRPC) and 8002 (metrics). A load error keeps the server up and not
  ready (`--exit-on-error=false`), so the operator can read Triton's own message.
- Probes: the startup probe (the server is live) allows `runtime.startupTimeoutSeconds`
  for the fetch and the load, so a slow model is not killed while it loads; liveness is
  checked only after it, and only asks whether the server is live, so a model that fails
  to load is reported rather than restarted in a loop; readiness is the model's own ready
  endpoint (`/v2/models/M/versions/V/ready`), which implies the server is ready and, unlike
  `/v2/health/ready`, recovers after a failed load of any model.
- Service `N` selects every replica of every revision: during a canary the share of
  replicas is the share of requests. PodDisruptionBudget `N` allows one voluntary eviction
  at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from plinth.api.v1alpha1 import (
    MODEL_DEPLOYMENT,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ServedModel,
    parse_spec,
)
from plinth.api.wellknown import (
    LABEL_MODEL_REVISION,
    LABEL_MODELDEPLOYMENT,
    MODEL_LOADER_CONTAINER,
    TRITON_CONTAINER,
    TRITON_GRPC_PORT,
    TRITON_HTTP_PORT,
    TRITON_METRICS_PORT,
    Manifest,
    ObjectRef,
    OwnerMeta,
    serving_deployment_name,
)
from plinth.builders.common import (
    child_metadata,
    container_resources,
    managed_labels,
    pod_spec_settings,
    pod_template_metadata,
    rendered_owner,
    template_volume_mounts,
    without_empty,
)
from plinth.serving.autoscalers import KEDA_API_VERSION, ScaleTarget, backend_for
from plinth.serving.repository import (
    PVC_MOUNT_PATH,
    REPOSITORY_PATH,
    ResolvedModel,
    loader_source,
    pvc_location,
)
from plinth.serving.triton_config import render_model_config
from plinth.status.modeldeployment import (
    ModelDeploymentInputs,
    ModelDeploymentPlan,
    plan_modeldeployment,
)
from plinth.status.modeldeployment_observe import ObservedModelDeployment
from plinth.status.plan import ChildChanges

#: Plinth's serving image: NVIDIA's Triton Inference Server plus Plinth's model loader
#: (images/serving). The loader always runs from it; `runtime.image` replaces only Triton.
SERVING_IMAGE = "ghcr.io/plinth-dev/plinth-serving:0.1.0"
MODELS_VOLUME = "plinth-models"
SOURCE_VOLUME = "plinth-model-source"
SHARED_MEMORY_VOLUME = "plinth-dshm"
SHARED_MEMORY_PATH = "/dev/shm"
#: Probe periods: the startup probe's failure threshold is sized from the startup timeout.
STARTUP_PERIOD_SECONDS = 5
READINESS_PERIOD_SECONDS = 5
LIVENESS_PERIOD_SECONDS = 10
LIVENESS_FAILURES = 6
TERMINATION_GRACE_SECONDS = 30
#: The time `plinth render` plans at (nothing it shows depends on it).
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PORTS = (("http", TRITON_HTTP_PORT), ("grpc", TRITON_GRPC_PORT), ("metrics", TRITON_METRICS_PORT))


def modeldeployment_labels(name: str) -> dict[str, str]:
    """Labels of every child of the ModelDeployment `name`."""
    return managed_labels(MODEL_DEPLOYMENT.kind) | {LABEL_MODELDEPLOYMENT: name}


def revision_labels(name: str, revision: str) -> dict[str, str]:
    """Labels of one revision's Deployment and pods."""
    return modeldeployment_labels(name) | {LABEL_MODEL_REVISION: revision}


# --------------------------------------------------------------------------------------
# Service and PodDisruptionBudget
# --------------------------------------------------------------------------------------


def build_service(owner: ObjectRef) -> Manifest:
    ports = [
        {"name": name, "port": port, "targetPort": name, "protocol": "TCP"} for name, port in PORTS
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, owner.name, modeldeployment_labels(owner.name)),
        "spec": {"selector": {LABEL_MODELDEPLOYMENT: owner.name}, "ports": ports},
    }


def build_disruption_budget(owner: ObjectRef) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(owner, owner.name, modeldeployment_labels(owner.name)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {LABEL_MODELDEPLOYMENT: owner.name}},
        },
    }


# --------------------------------------------------------------------------------------
# A revision's Deployment
# --------------------------------------------------------------------------------------


def _http_probe(path: str, period: int, failures: int, timeout: int = 2) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def triton_probes(spec: ModelDeploymentSpec, model: ResolvedModel) -> Manifest:
    """startupProbe, readinessProbe and livenessProbe of the Triton container."""
    startup_failures = math.ceil(spec.runtime.startup_timeout_seconds / STARTUP_PERIOD_SECONDS)
    ready_path = f"/v2/models/{model.name}/versions/{model.version}/ready"
    return {
        "startupProbe": _http_probe("/v2/health/live", STARTUP_PERIOD_SECONDS, startup_failures),
        "readinessProbe": _http_probe(ready_path, READINESS_PERIOD_SECONDS, 2),
        "livenessProbe": _http_probe(
            "/v2/health/live", LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURES, timeout=5
        ),
    }


def triton_args(spec: ModelDeploymentSpec, model: ResolvedModel) -> list[str]:
    return [
        f"--model-repository={REPOSITORY_PATH}",
        "--model-control-mode=explicit",
        f"--load-model={model.name}",
        "--exit-on-error=false",
        "--strict-readiness=true",
        f"--http-port={TRITON_HTTP_PORT}",
        f"--grpc-port={TRITON_GRPC_PORT}",
        f"--metrics-port={TRITON_METRICS_PORT}",
        *spec.runtime.args,
    ]


def _models_mount() -> Manifest:
    return {"name": MODELS_VOLUME, "mountPath": REPOSITORY_PATH}


def _needs_shared_memory(spec: ModelDeploymentSpec) -> bool:
    mounts = spec.pod_template.volume_mounts if spec.pod_template else ()
    return all(mount.mount_path.rstrip("/") != SHARED_MEMORY_PATH for mount in mounts)


def triton_container(spec: ModelDeploymentSpec, model: ResolvedModel) -> Manifest:
    shared_memory = [{"name": SHARED_MEMORY_VOLUME, "mountPath": SHARED_MEMORY_PATH}]
    container = {
        "name": TRITON_CONTAINER,
        "image": spec.runtime.image or SERVING_IMAGE,
        "command": ["tritonserver"],
        "args": triton_args(spec, model),
        "env": [variable.to_dict() for variable in spec.runtime.env],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS],
        "resources": container_resources(spec.resources),
        **triton_probes(spec, model),
        "volumeMounts": [_models_mount()]
        + (shared_memory if _needs_shared_memory(spec) else [])
        + template_volume_mounts(spec.pod_template),
    }
    return without_empty(container)


def loader_container(spec: ModelDeploymentSpec, model: ResolvedModel, config: str) -> Manifest:
    """The init container that fetches the model and writes its config.pbtxt."""
    mounts = [_models_mount(), *template_volume_mounts(spec.pod_template)]
    if pvc_location(model.uri):
        mounts.append({"name": SOURCE_VOLUME, "mountPath": PVC_MOUNT_PATH, "readOnly": True})
    args = [
        f"--uri={loader_source(model.uri)}",
        f"--format={model.format.value}",
        f"--model-dir={model.model_directory}",
        f"--version={model.version}",
    ]
    env = [variable.to_dict() for variable in spec.runtime.env]
    container = {
        "name": MODEL_LOADER_CONTAINER,
        "image": SERVING_IMAGE,
        "command": ["python3", "-m", "plinth_client.model_loader"],
        "args": args,
        "env": [*env, {"name": "PLINTH_MODEL_CONFIG", "value": config}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }
    return without_empty(container)


def _volumes(spec: ModelDeploymentSpec, model: ResolvedModel) -> list[Manifest]:
    volumes: list[Manifest] = [{"name": MODELS_VOLUME, "emptyDir": {}}]
    if _needs_shared_memory(spec):
        volumes.append({"name": SHARED_MEMORY_VOLUME, "emptyDir": {"medium": "Memory"}})
    if location := pvc_location(model.uri):
        claim = {"claimName": location.claim, "readOnly": True}
        volumes.append({"name": SOURCE_VOLUME, "persistentVolumeClaim": claim})
    return volumes


def pod_template(spec: ModelDeploymentSpec, owner: ObjectRef, model: ResolvedModel) -> Manifest:
    config = render_model_config(model.name, spec.model, spec.runtime, spec.resources.gpus)
    settings = pod_spec_settings(spec.resources, spec.pod_template)
    pod_spec = {
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "enableServiceLinks": False,
        **settings,
        "volumes": [*settings.get("volumes", []), *_volumes(spec, model)],
        "initContainers": [loader_container(spec, model, config)],
        "containers": [triton_container(spec, model)],
    }
    labels = revision_labels(owner.name, model.revision)
    return {
        "metadata": pod_template_metadata(spec.pod_template, labels),
        "spec": without_empty(pod_spec),
    }


def build_deployment(
    spec: ModelDeploymentSpec, owner: ObjectRef, model: ResolvedModel, replicas: int | None
) -> Manifest:
    """The Deployment of one model revision; `replicas` None leaves the count to the
    autoscaler (the field is not applied, so Plinth does not fight the HPA over it)."""
    name = serving_deployment_name(owner.name, model.revision)
    labels = revision_labels(owner.name, model.revision)
    deployment_spec = {
        "replicas": replicas,
        "selector": {
            "matchLabels": {LABEL_MODELDEPLOYMENT: owner.name, LABEL_MODEL_REVISION: model.revision}
        },
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "progressDeadlineSeconds": spec.runtime.startup_timeout_seconds + 60,
        "template": pod_template(spec, owner, model),
    }
    metadata = child_metadata(owner, name, labels)
    metadata["annotations"] = {"plinth.dev/model-uri": model.uri}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {key: value for key, value in deployment_spec.items() if value is not None},
    }


def replicas_patch(owner: ObjectRef, revision: str, replicas: int) -> Manifest:
    """The replica count of a revision's Deployment that is not re-applied (the stable
    one during a canary): its pod template stays as it was."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": serving_deployment_name(owner.name, revision),
            "namespace": owner.namespace,
        },
        "spec": {"replicas": replicas},
    }


# --------------------------------------------------------------------------------------
# From the plan to writes
# --------------------------------------------------------------------------------------


def autoscaler_manifests(
    spec: ModelDeploymentSpec, owner: ObjectRef, serving: ServedModel
) -> tuple[Manifest, ...]:
    target = ScaleTarget(
        deployment=serving_deployment_name(owner.name, serving.revision),
        namespace=owner.namespace,
        model=serving.name,
        version=serving.version,
        autoscaling=spec.autoscaling,
        metadata=child_metadata(owner, owner.name, modeldeployment_labels(owner.name)),
    )
    return backend_for(spec.autoscaling).manifests(target)


def _deletes(owner: ObjectRef, plan: ModelDeploymentPlan) -> tuple[ObjectRef, ...]:
    namespace = owner.namespace
    deletes = [
        ObjectRef("apps/v1", "Deployment", namespace, serving_deployment_name(owner.name, revision))
        for revision in plan.retire
    ]
    deletes += [
        ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
        for name in plan.delete_hpas
    ]
    if plan.delete_scaled_object:
        deletes.append(ObjectRef(KEDA_API_VERSION, "ScaledObject", namespace, owner.name))
    return tuple(deletes)


def modeldeployment_changes(
    spec: ModelDeploymentSpec, owner: ObjectRef, plan: ModelDeploymentPlan
) -> ChildChanges:
    """The writes that carry out the planner's decision."""
    if plan.serving is None and plan.target is None:
        return ChildChanges(delete=_deletes(owner, plan))
    apply = [build_service(owner), build_disruption_budget(owner)]
    if plan.target is not None:
        apply.append(build_deployment(spec, owner, plan.target, plan.target_replicas))
    patch = []
    if plan.serving is not None:
        apply.extend(autoscaler_manifests(spec, owner, plan.serving))
        if plan.serving_replicas is not None:
            patch.append(replicas_patch(owner, plan.serving.revision, plan.serving_replicas))
    return ChildChanges(apply=tuple(apply), patch=tuple(patch), delete=_deletes(owner, plan))


# --------------------------------------------------------------------------------------
# plinth render
# --------------------------------------------------------------------------------------


def render_modeldeployment(resource: Mapping[str, Any]) -> list[Manifest]:
    """The children `plinth render` prints for a ModelDeployment document: its first
    revision as the operator applies it (a model from a TrainingJob or sweep shows nothing
    until it is resolved in a cluster)."""
    metadata = resource.get("metadata") or {}
    spec = parse_spec("ModelDeployment", resource.get("spec") or {})
    assert isinstance(spec, ModelDeploymentSpec)
    owner = rendered_owner(MODEL_DEPLOYMENT.kind, metadata)
    meta = OwnerMeta(ref=owner, generation=1, created=_EPOCH)
    inputs = ModelDeploymentInputs(
        spec=spec,
        owner=meta,
        previous=ModelDeploymentStatus(),
        observed=ObservedModelDeployment(),
        now=_EPOCH,
    )
    plan = plan_modeldeployment(inputs)
    changes = modeldeployment_changes(spec, owner, plan)
    return [*changes.apply, *changes.patch]
