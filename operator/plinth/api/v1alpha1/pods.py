"""Pod-shaped settings the kinds share: per-pod compute and the pod template escape hatch.

`Resources` is the compute of one pod (a training node or a serving replica);
`PodTemplate` carries what the typed fields do not cover (node selectors, tolerations,
volumes, service account, labels, annotations) onto every pod Plinth creates.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import ConfigDict, Field

from plinth.api.schema import (
    ApiModel,
    DnsLabel,
    DnsSubdomain,
    LabelValue,
    ListMap,
    ListSet,
    Quantity,
    Rule,
)
from plinth.api.wellknown import GPU_RESOURCE


class Resources(ApiModel):
    """Compute for one pod (a training node or a serving replica)."""

    gpus: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "NVIDIA GPUs (nvidia.com/gpu) for each pod, requested and limited alike. "
            "0 runs on CPU only."
        ),
    )
    gpu_type: LabelValue | None = Field(
        None,
        min_length=1,
        description=(
            "GPU model to run on, matched against the node label nvidia.com/gpu.product "
            "that NVIDIA GPU feature discovery sets (e.g. NVIDIA-H100-80GB-HBM3). "
            "Unset: any GPU model. Needs gpus > 0."
        ),
    )
    cpu: Quantity | None = Field(
        None,
        description=(
            "CPU for each pod as a Kubernetes quantity (8, 7500m); requested and limited. "
            "Unset: no CPU request (the namespace's defaults apply)."
        ),
    )
    memory: Quantity | None = Field(
        None,
        description=(
            "Memory for each pod as a Kubernetes quantity (64Gi, 512Mi); requested and "
            "limited, so the pod is OOM-killed above it. Unset: no memory request."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Resources]]:
        return (
            Rule(
                cel="!has(self.gpuType) || self.gpus > 0",
                message="gpuType needs gpus > 0",
                field_path=".gpuType",
                holds=lambda r: r.gpu_type is None or r.gpus > 0,
            ),
        )

    def container_requests(self) -> dict[str, str]:
        """A container's resource requests: CPU, memory and GPUs, those set."""
        requests = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus:
            requests[GPU_RESOURCE] = str(self.gpus)
        return {name: str(value) for name, value in requests.items() if value is not None}

    def container_limits(self) -> dict[str, str]:
        """A container's resource limits: memory and GPUs (GPUs are requested and limited
        alike, as the device plugin requires; CPU is not limited, so it may burst)."""
        limits = {"memory": self.memory, GPU_RESOURCE: str(self.gpus) if self.gpus else None}
        return {name: str(value) for name, value in limits.items() if value is not None}


# --------------------------------------------------------------------------------------
# Pod template escape hatch
# --------------------------------------------------------------------------------------


class TolerationOperator(enum.StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(enum.StrEnum):
    """Which taint effect a toleration matches."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Toleration(ApiModel):
    """Lets pods run on nodes with a matching taint (as in a Pod's spec.tolerations)."""

    key: str | None = Field(
        None,
        max_length=317,
        description="Taint key to match. Unset with operator Exists: tolerate every taint.",
    )
    operator: TolerationOperator = Field(
        TolerationOperator.EQUAL,
        description="Equal: the taint's value must equal value. Exists: any value.",
    )
    value: str | None = Field(
        None, max_length=63, description="Taint value to match (operator Equal only)."
    )
    effect: TaintEffect | None = Field(
        None, description="Taint effect to match. Unset: every effect."
    )
    toleration_seconds: int | None = Field(
        None,
        ge=0,
        description=(
            "For NoExecute: how long the pod stays on a node after the taint appears. "
            "Unset: forever."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Toleration]]:
        return (
            Rule(
                cel="self.operator != 'Exists' || !has(self.value)",
                message="value must be unset when operator is Exists",
                field_path=".value",
                holds=lambda t: t.operator != TolerationOperator.EXISTS or t.value is None,
            ),
        )


class Volume(ApiModel):
    """A pod volume exactly as in a Pod's spec.volumes (persistentVolumeClaim, secret,
    configMap, emptyDir, csi, ...); only `name` is checked here, the API server checks
    the rest when Plinth creates the pods."""

    model_config = ConfigDict(extra="allow")

    name: DnsLabel = Field(description="Volume name, referenced by volumeMounts.")


class VolumeMount(ApiModel):
    """Where a volume appears in the program's container."""

    name: DnsLabel = Field(description="Name of a volume in podTemplate.volumes.")
    mount_path: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^/",
        description="Absolute path in the container, e.g. /data.",
    )
    sub_path: str | None = Field(
        None, max_length=1024, description="Mount only this path within the volume."
    )
    read_only: bool = Field(False, description="Mount read-only.")


class PodTemplate(ApiModel):
    """Settings copied onto every pod Plinth creates, for what the typed fields don't cover."""

    node_selector: Mapping[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the pods must run on (merged with gpuType's selector).",
    )
    tolerations: tuple[Toleration, ...] = Field(
        (),
        max_length=32,
        description=(
            "Taints the pods tolerate. Plinth already tolerates nvidia.com/gpu:NoSchedule "
            "when GPUs are requested."
        ),
    )
    volumes: Annotated[tuple[Volume, ...], ListMap("name")] = Field(
        (), max_length=64, description="Pod volumes (as in a Pod's spec.volumes)."
    )
    volume_mounts: Annotated[tuple[VolumeMount, ...], ListMap("mount_path")] = Field(
        (), max_length=64, description="Mounts of those volumes in the program's container."
    )
    service_account_name: DnsSubdomain | None = Field(
        None,
        description=(
            "ServiceAccount the pods run as (e.g. one bound to cloud storage credentials). "
            "Unset: the namespace's default."
        ),
    )
    image_pull_secrets: Annotated[tuple[DnsSubdomain, ...], ListSet()] = Field(
        (), max_length=16, description="Names of Secrets used to pull private images."
    )
    labels: Mapping[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra pod labels. Keys under plinth.dev/ are Plinth's own and refused.",
    )
    annotations: Mapping[str, str] = Field(
        default_factory=dict, max_length=64, description="Extra pod annotations."
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[PodTemplate]]:
        return (
            Rule(
                cel="!has(self.volumeMounts) || self.volumeMounts.all(m, "
                "has(self.volumes) && self.volumes.exists(v, v.name == m.name))",
                message="every volumeMounts[].name must name a volume in volumes",
                field_path=".volumeMounts",
                holds=lambda p: {m.name for m in p.volume_mounts} <= {v.name for v in p.volumes},
            ),
            Rule(
                cel="!has(self.labels) || self.labels.all(k, !k.startsWith('plinth.dev/'))",
                message="labels must not use the plinth.dev/ prefix, which Plinth sets itself",
                field_path=".labels",
                holds=lambda p: not any(k.startswith("plinth.dev/") for k in p.labels),
            ),
        )
