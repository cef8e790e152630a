"""Pods as the source kinds write them, read into Plinth's typed pieces.

Kubeflow, Katib and KServe all carry Kubernetes pod templates and containers. Plinth keeps
what its kinds type: the main container's image, command, args, environment and compute
(`Resources`), and the `podTemplate` escape hatch (node selector, tolerations, volumes,
service account, image pull secrets, labels, annotations). The node selector on
`nvidia.com/gpu.product` becomes `resources.gpuType`. Everything else in a pod is left for
the converter's leftover report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plinth.api.v1alpha1 import is_reserved_env_name
from plinth.api.wellknown import GPU_PRODUCT_LABEL, GPU_RESOURCE, Manifest
from plinth.convert.report import Severity
from plinth.convert.source import Source

#: Compute Plinth requests per pod, by Kubernetes resource name.
COMPUTE = {GPU_RESOURCE: "gpus", "cpu": "cpu", "memory": "memory"}

#: Why common pod and container fields have no Plinth equivalent, by field name.
HINTS = {
    "affinity": "podTemplate has no affinity: resources.gpuType and podTemplate.nodeSelector "
    "place the pods",
    "imagePullPolicy": "Plinth leaves the pull policy to Kubernetes' default",
    "securityContext": "podTemplate has no security context",
    "initContainers": "Plinth runs no init containers of yours",
    "envFrom": "list the variables one by one in env (valueFrom secretKeyRef/configMapKeyRef)",
    "workingDir": "set the working directory in the image or the command",
    "livenessProbe": "Plinth sets the probes it needs itself",
    "readinessProbe": "Plinth sets the probes it needs itself",
    "startupProbe": "Plinth sets the probes it needs itself",
    "ports": "Plinth opens the ports it needs itself",
    "terminationGracePeriodSeconds": "Plinth sets the grace period itself",
    "hostNetwork": "Plinth pods use the pod network",
    "topologySpreadConstraints": "podTemplate has no topology spread constraints",
    "lifecycle": "Plinth's container has no lifecycle hooks",
}


def hint(field_name: object, kind: str) -> str:
    """Why a field nobody read is left out."""
    return HINTS.get(str(field_name), f"no equivalent in Plinth's {kind}")


@dataclass
class Workload:
    """What Plinth keeps of a pod and its main container, as raw Plinth fields."""

    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[Manifest] = field(default_factory=list)
    resources: Manifest = field(default_factory=dict)
    pod_template: Manifest = field(default_factory=dict)
    priority_class_name: str | None = None


# --------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------


def main_container(pod_spec: Source, main_name: str | None, how: str) -> Source:
    """The container that runs the program: the one named `main_name`, or the only one.

    Other containers are reported as dropped; several containers without one named
    `main_name` is an error that says `how` to mark the main one.
    """
    containers = pod_spec.children("containers")
    if not containers:
        pod_spec.fail("needs a container", "containers")
    named = [c for c in containers if main_name and c.value.get("name") == main_name]
    if named:
        main = named[0]
    elif len(containers) == 1:
        main = containers[0]
    else:
        names = ", ".join(repr(c.value.get("name")) for c in containers)
        pod_spec.fail(f"has {len(containers)} containers ({names}) and {how}", "containers")
    for other in containers:
        if other is not main:
            reason = f"Plinth runs one container per pod: {other.value.get('name')!r} is left out"
            other.note(Severity.DROPPED, reason)
    main.take("name")
    return main


def read_container(container: Source, workload: Workload) -> None:
    """Image, command, args, env and compute of the main container into `workload`."""
    workload.image = container.text("image") or workload.image
    workload.command = container.texts("command") or workload.command
    workload.args = container.texts("args") or workload.args
    workload.env = merge_env(workload.env, env_list(container))
    workload.resources = compute(container.child("resources")) or workload.resources
    mounts = [volume_mount(mount) for mount in container.children("volumeMounts")]
    if mounts:
        workload.pod_template["volumeMounts"] = mounts


def merge_env(base: list[Manifest], overrides: list[Manifest]) -> list[Manifest]:
    """`base` with the variables of `overrides` replacing those of the same name."""
    names = {variable["name"] for variable in overrides}
    return [variable for variable in base if variable["name"] not in names] + overrides


def env_list(container: Source, key: str = "env") -> list[Manifest]:
    """The environment variables Plinth can carry: literal values and values from a
    Secret, a ConfigMap or a pod field."""
    variables: list[Manifest] = []
    for item in container.children(key):
        name = item.text("name")
        if not name:
            item.fail("is required", "name")
        if is_reserved_env_name(name):
            item.note(Severity.CHANGED, f"Plinth sets {name} itself; this value is not used")
            continue
        variable = _env_variable(item, name)
        if variable is not None:
            variables.append(variable)
    return variables


def _env_variable(item: Source, name: str) -> Manifest | None:
    value = item.raw("value")
    if value is not None and not isinstance(value, str):
        item.fail(f"must be a string (quote it: '{value}')", "value")
    source = item.child("valueFrom")
    if source is None:
        return {"name": name, "value": value or ""}
    value_from = _env_source(source)
    if value_from is None:
        item.note(
            Severity.DROPPED,
            "Plinth reads variables from secretKeyRef, configMapKeyRef or fieldRef only",
        )
        return None
    return {"name": name, "valueFrom": value_from}


def _env_source(source: Source) -> Manifest | None:
    for key in ("secretKeyRef", "configMapKeyRef"):
        ref = source.child(key)
        if ref is not None:
            fields = {
                "name": ref.text("name"),
                "key": ref.text("key"),
                "optional": ref.flag("optional"),
            }
            return {key: {k: v for k, v in fields.items() if v is not None}}
    ref = source.child("fieldRef")
    if ref is not None:
        ref.take("apiVersion")
        return {"fieldRef": {"fieldPath": ref.text("fieldPath")}}
    return None


def volume_mount(mount: Source) -> Manifest:
    fields = {
        "name": mount.text("name"),
        "mountPath": mount.text("mountPath"),
        "subPath": mount.text("subPath"),
        "readOnly": mount.flag("readOnly"),
    }
    return {key: value for key, value in fields.items() if value is not None}


# --------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------


def compute(resources: Source | None) -> Manifest:
    """`Resources` (gpus, cpu, memory) from a container's requests and limits.

    Plinth requests and limits each amount alike; where the source differs, the limit is
    used for both (or the request where there is no limit) and the difference is noted.
    """
    if resources is None:
        return {}
    limits, requests = resources.child("limits"), resources.child("requests")
    result: Manifest = {}
    for name, plinth_name in COMPUTE.items():
        amount = _amount(limits, requests, name)
        if amount is not None:
            result[plinth_name] = _gpu_count(resources, amount) if name == GPU_RESOURCE else amount
    for part in (part for part in (limits, requests) if part is not None):
        for name in part.fields():
            if name not in COMPUTE:
                part.dropped(name, "Plinth requests nvidia.com/gpu, cpu and memory only")
    resources.dropped("claims", "Plinth requests no dynamic resource claims")
    return result


def _amount(limits: Source | None, requests: Source | None, name: str) -> Any:
    limit = _quantity(limits.raw(name)) if limits else None
    request = _quantity(requests.raw(name)) if requests else None
    if request is not None and limit is not None and request != limit and requests:
        requests.note(
            Severity.CHANGED,
            f"Plinth requests and limits alike: the limit {limit} is used for both",
            name,
        )
    elif request is not None and limit is None and name != GPU_RESOURCE and requests:
        requests.note(Severity.CHANGED, f"Plinth also limits {name} to this amount", name)
    return limit if limit is not None else request


def _quantity(value: Any) -> Any:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return value


def _gpu_count(resources: Source, amount: Any) -> int:
    try:
        return int(str(amount))
    except ValueError:
        resources.fail(f"{GPU_RESOURCE} must be a whole number; got {amount!r}", "limits")


# --------------------------------------------------------------------------------------
# Pod settings
# --------------------------------------------------------------------------------------


def read_pod_spec(pod_spec: Source, workload: Workload) -> None:
    """Placement, volumes, service account and pull secrets of a pod spec into `workload`.

    Containers and anything else are left to the caller (and the leftover report)."""
    template = workload.pod_template
    selector = pod_spec.string_map("nodeSelector") or {}
    gpu_type = selector.pop(GPU_PRODUCT_LABEL, None)
    if gpu_type is not None and workload.resources.get("gpus"):
        workload.resources["gpuType"] = gpu_type
    elif gpu_type is not None:
        selector[GPU_PRODUCT_LABEL] = gpu_type
    _set(template, "nodeSelector", selector)
    _set(template, "tolerations", [toleration(t) for t in pod_spec.children("tolerations")])
    _set(template, "volumes", pod_spec.raw("volumes"))
    account = pod_spec.text("serviceAccountName") or pod_spec.text("serviceAccount")
    _set(template, "serviceAccountName", account)
    secrets = [secret.text("name") for secret in pod_spec.children("imagePullSecrets")]
    _set(template, "imagePullSecrets", [name for name in secrets if name])
    workload.priority_class_name = pod_spec.text("priorityClassName")


def read_pod_metadata(metadata: Source | None, workload: Workload) -> None:
    """Labels and annotations of a pod template into `workload.pod_template`."""
    if metadata is None:
        return
    _set(workload.pod_template, "labels", metadata.string_map("labels"))
    _set(workload.pod_template, "annotations", metadata.string_map("annotations"))


def toleration(source: Source) -> Manifest:
    fields = {
        "key": source.text("key"),
        "operator": source.text("operator"),
        "value": source.text("value"),
        "effect": source.text("effect"),
        "tolerationSeconds": source.integer("tolerationSeconds"),
    }
    return {key: value for key, value in fields.items() if value is not None}


def _set(target: Manifest, key: str, value: Any) -> None:
    if value:
        target[key] = value
