"""Pieces every builder reuses: labels, ownerReferences, object metadata and pod settings.

Every child Plinth creates carries the labels `app.kubernetes.io/managed-by: plinth` and
`app.kubernetes.io/name: <kind, lowercase>`, and an ownerReference to its custom resource
(controller, blockOwnerDeletion) so that deleting the resource deletes the children.

The pod helpers turn the shared API types (`Resources`, `PodTemplate`, `EnvVar`) into the
fields of a Kubernetes pod spec: GPU requests and limits, the GPU taint toleration, the
`gpuType` node affinity, and the escape-hatch settings of `podTemplate`. Everything here
is pure and deterministic; optional fields are left out rather than written empty, so the
manifests are ready for server-side apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plinth.api.v1alpha1 import EnvVar, PodTemplate, Resources
from plinth.api.wellknown import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    GROUP,
    LABEL_APP_NAME,
    LABEL_MANAGED_BY,
    MANAGER,
    Manifest,
    ObjectRef,
)

#: The uid `plinth render` shows for a resource that exists only in a file.
PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


def rendered_owner(kind: str, metadata: Mapping[str, Any]) -> ObjectRef:
    """The reference of a `kind` resource read from a file (`plinth render`): its name and
    namespace (default "default"), and a placeholder uid unless the file gives one."""
    return ObjectRef(
        api_version=f"{GROUP}/v1alpha1",
        kind=kind,
        namespace=str(metadata.get("namespace", "default")),
        name=str(metadata.get("name", "<unnamed>")),
        uid=str(metadata.get("uid", PLACEHOLDER_UID)),
    )


def managed_labels(kind: str) -> dict[str, str]:
    """The labels every child of a resource of `kind` carries."""
    return {LABEL_MANAGED_BY: MANAGER, LABEL_APP_NAME: kind.lower()}


def child_metadata(owner: ObjectRef, name: str, labels: Mapping[str, str]) -> Manifest:
    """metadata of a child of `owner`: its name, the owner's namespace, labels, ownership."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner.owner_reference()],
    }


def without_empty(fields: Mapping[str, Any]) -> Manifest:
    """`fields` less the unset ones (None, empty lists and mappings); False and 0 stay."""
    return {key: value for key, value in fields.items() if value not in (None, {}, [])}


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------


def literal_env(name: str, value: str | int) -> Manifest:
    """An environment variable with a literal value (numbers written as strings)."""
    return {"name": name, "value": str(value)}


def field_env(name: str, field_path: str) -> Manifest:
    """An environment variable read from the pod itself (downward API)."""
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def secret_env(name: str, secret_name: str, key: str) -> Manifest:
    """An environment variable read from a key of a Secret."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def merged_env(user: Iterable[EnvVar], owned: list[Manifest]) -> list[Manifest]:
    """The user's variables first, then Plinth's; where both name one, Plinth's wins.

    The API already refuses most names Plinth sets; dropping the user's copy keeps the
    list free of repeated names, which server-side apply would refuse.
    """
    owned_names = {variable["name"] for variable in owned}
    kept = [variable.to_dict() for variable in user if variable.name not in owned_names]
    return kept + owned


# --------------------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------------------


def container_resources(resources: Resources) -> Manifest:
    """requests and limits of a container: GPUs requested and limited alike, CPU requested,
    memory requested and limited."""
    requests = {**resources.container_requests()}
    limits = {**resources.container_limits()}
    return without_empty({"requests": requests, "limits": limits})


def gpu_node_affinity(gpu_type: str | None) -> Manifest | None:
    """A required node affinity to nodes with that GPU model; None for any model."""
    if gpu_type is None:
        return None
    match = {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [gpu_type]}
    terms = [{"matchExpressions": [match]}]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    }


def gpu_toleration() -> Manifest:
    """Tolerates the taint GPU nodes commonly carry (nvidia.com/gpu, any value)."""
    return {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def pod_tolerations(resources: Resources, template: PodTemplate) -> list[Manifest]:
    """The GPU taint's toleration when GPUs are requested, then the template's own."""
    own = [gpu_toleration()] if resources.gpus else []
    extra = [toleration.to_dict() for toleration in template.tolerations]
    return own + [toleration for toleration in extra if toleration not in own]


def pod_spec_settings(resources: Resources, template: PodTemplate | None) -> Manifest:
    """The pod spec fields every workload takes from `resources` and `podTemplate`:
    service account, placement (node selector, GPU affinity, tolerations), image pull
    secrets and volumes. Unset ones are left out."""
    template = template or PodTemplate()
    return without_empty(
        {
            "serviceAccountName": template.service_account_name,
            "nodeSelector": dict(template.node_selector),
            "affinity": gpu_node_affinity(resources.gpu_type),
            "tolerations": pod_tolerations(resources, template),
            "imagePullSecrets": [{"name": secret} for secret in template.image_pull_secrets],
            "volumes": [volume.to_dict() for volume in template.volumes],
        }
    )


def template_volume_mounts(template: PodTemplate | None) -> list[Manifest]:
    """The container's volumeMounts from `podTemplate`."""
    return [mount.to_dict() for mount in template.volume_mounts] if template else []


def pod_template_metadata(template: PodTemplate | None, labels: Mapping[str, str]) -> Manifest:
    """metadata of a pod template: the template's labels under Plinth's (which win), and
    its annotations."""
    extra_labels = dict(template.labels) if template else {}
    annotations = dict(template.annotations) if template else {}
    return without_empty({"labels": extra_labels | dict(labels), "annotations": annotations})
