"""Triton's model configuration (`config.pbtxt`) rendered from the typed spec.

Plinth owns the fields a user tunes through `spec.runtime` (max batch size, dynamic
batching and its queue policy, instance groups) and those that tie the model to the pod
(name, backend, the one version served). Tensors come from `spec.model.inputs/outputs`
when given; otherwise Triton reads them from the model itself (auto-complete).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from plinth.api.v1alpha1 import (
    DynamicBatching,
    InstanceGroup,
    InstanceKind,
    ModelFormat,
    ModelSource,
    Runtime,
    Tensor,
)

#: How Triton is told which backend runs a format: ("backend" | "platform", name).
BACKENDS: dict[ModelFormat, tuple[str, str]] = {
    ModelFormat.ONNX: ("backend", "onnxruntime"),
    ModelFormat.PYTORCH: ("backend", "pytorch"),
    ModelFormat.TENSORRT: ("platform", "tensorrt_plan"),
    ModelFormat.TENSORFLOW: ("platform", "tensorflow_savedmodel"),
    ModelFormat.PYTHON: ("backend", "python"),
}


def _quoted(text: str) -> str:
    """A protobuf text-format string literal."""
    return json.dumps(text)


def _tensor(tensor: Tensor) -> str:
    dims = ", ".join(str(d) for d in tensor.dims)
    return (
        f"  {{ name: {_quoted(tensor.name)} data_type: TYPE_{tensor.data_type.value} "
        f"dims: [ {dims} ] }}"
    )


def _tensors(field: str, tensors: Iterable[Tensor]) -> list[str]:
    rendered = [_tensor(t) for t in tensors]
    if not rendered:
        return []
    return [f"{field} [", ",\n".join(rendered), "]"]


def instance_kind(group: InstanceGroup, gpus: int) -> str:
    """Triton's instance kind: `auto` is the GPU when the replica has one."""
    if group.kind == InstanceKind.AUTO:
        return "KIND_GPU" if gpus > 0 else "KIND_CPU"
    return f"KIND_{group.kind.value.upper()}"


def _instance_groups(runtime: Runtime, gpus: int) -> list[str]:
    groups = runtime.instance_groups or (InstanceGroup(),)
    rendered = [f"  {{ count: {g.count} kind: {instance_kind(g, gpus)} }}" for g in groups]
    return ["instance_group [", ",\n".join(rendered), "]"]


def _dynamic_batching(batching: DynamicBatching | None) -> list[str]:
    if batching is None:
        return []
    lines = ["dynamic_batching {"]
    if batching.preferred_batch_sizes:
        sizes = ", ".join(str(s) for s in batching.preferred_batch_sizes)
        lines.append(f"  preferred_batch_size: [ {sizes} ]")
    lines.append(f"  max_queue_delay_microseconds: {batching.max_queue_delay_microseconds}")
    if batching.preserve_ordering:
        lines.append("  preserve_ordering: true")
    if batching.max_queue_size or batching.queue_timeout_microseconds:
        lines.append("  default_queue_policy {")
        if batching.queue_timeout_microseconds:
            lines.append("    timeout_action: REJECT")
            lines.append(f"    default_timeout_microseconds: {batching.queue_timeout_microseconds}")
        if batching.max_queue_size:
            lines.append(f"    max_queue_size: {batching.max_queue_size}")
        lines.append("  }")
    lines.append("}")
    return lines


def render_model_config(name: str, model: ModelSource, runtime: Runtime, gpus: int) -> str:
    """The config.pbtxt of model `name` (the one version `model.version` served)."""
    key, backend = BACKENDS[model.format]
    lines = [
        f"name: {_quoted(name)}",
        f"{key}: {_quoted(backend)}",
        f"max_batch_size: {runtime.max_batch_size}",
        f"version_policy: {{ specific: {{ versions: [ {model.version} ] }} }}",
        *_tensors("input", model.inputs),
        *_tensors("output", model.outputs),
        *_instance_groups(runtime, gpus),
        *_dynamic_batching(runtime.dynamic_batching),
    ]
    return "\n".join(lines) + "\n"
