"""The ModelDeployment kind: a model served by NVIDIA Triton, autoscaled, rolled out by canary.

The model comes from a URI or from the output of a TrainingJob or an AutoMLSweep's best
trial. Plinth runs Triton replicas with `resources` each, scales them between
`autoscaling.minReplicas` and `maxReplicas` on a model-server metric, and moves a changed
model through `rollout.canary` steps guarded by error-rate and latency gates.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field, StringConstraints

from plinth.api.schema import (
    AGE_COLUMN,
    ApiModel,
    CommandArg,
    DnsSubdomain,
    ImageRef,
    KindInfo,
    ListMap,
    PrinterColumn,
    Rule,
    StatusModel,
    Timestamp,
    name_rule,
    object_default,
)
from plinth.api.v1alpha1.common import API_GROUP, API_VERSION, ConditionList
from plinth.api.v1alpha1.env import EnvList
from plinth.api.v1alpha1.pods import PodTemplate, Resources
from plinth.api.v1alpha1.trainingjob import CHECKPOINT_URI_PATTERN

TritonModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
]
RelativePath = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/]\S*$")
]
TensorName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]

#: URI schemes the model loader fetches from (plinth_client.model_loader.FETCHERS); a path
#: starting with / is a file or folder on a volume mounted through podTemplate.
MODEL_URI_SCHEMES = ("http", "https", "pvc")
MODEL_URI_MESSAGE = (
    "uri must be an http:// or https:// URL, pvc://<claim>/<path> or an absolute path "
    "(/models/...): the model loader fetches no other scheme"
)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


class ModelFormat(enum.StrEnum):
    """How the model is stored, which picks the Triton backend."""

    ONNX = "onnx"
    PYTORCH = "pytorch"
    TENSORRT = "tensorrt"
    TENSORFLOW = "tensorflow"
    PYTHON = "python"


def is_supported_model_uri(uri: str) -> bool:
    """Whether the model loader fetches from `uri` (see MODEL_URI_SCHEMES)."""
    scheme, separator, rest = uri.partition("://")
    return uri.startswith("/") or (bool(separator) and scheme in MODEL_URI_SCHEMES and bool(rest))


class DataType(enum.StrEnum):
    """Element type of a tensor, as Triton names it (without the TYPE_ prefix)."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    BF16 = "BF16"
    FP32 = "FP32"
    FP64 = "FP64"
    STRING = "STRING"


class Tensor(ApiModel):
    """An input or output of the model (Triton's model configuration)."""

    name: TensorName = Field(description="Tensor name, as the model declares it.")
    data_type: DataType = Field(description="Element type, e.g. FP32, INT64, STRING.")
    dims: tuple[Annotated[int, Field(ge=-1)], ...] = Field(
        min_length=1,
        max_length=8,
        description="Shape without the batch dimension; -1 for a variable size.",
    )


class TrainingOutput(ApiModel):
    """A model written by a training run into its checkpoint location."""

    name: DnsSubdomain = Field(
        description="Name of the TrainingJob or AutoMLSweep, in this namespace."
    )
    path: RelativePath = Field(
        "model",
        description=(
            "Path of the exported model under the run's checkpoint.uri (e.g. the training "
            "code writes $PLINTH_CHECKPOINT_URI/model)."
        ),
    )


class ModelSource(ApiModel):
    """Which model to serve; set exactly one of uri, fromTrainingJob, fromSweep."""

    uri: str | None = Field(
        None,
        min_length=1,
        max_length=1024,
        pattern=CHECKPOINT_URI_PATTERN,
        description=(
            "Location of the model's files for one version (a file such as model.onnx, or "
            "a folder): https://..., http://..., pvc://<claim>/<path> (a "
            "PersistentVolumeClaim in this namespace), or an absolute path on a volume "
            "mounted through podTemplate."
        ),
    )
    from_training_job: TrainingOutput | None = Field(
        None,
        description="Serve what a TrainingJob exported, once it has Succeeded.",
    )
    from_sweep: TrainingOutput | None = Field(
        None,
        description="Serve what an AutoMLSweep's best trial exported; follows a new best trial.",
    )
    format: ModelFormat = Field(
        description="onnx, pytorch (TorchScript), tensorrt, tensorflow (SavedModel) or python."
    )
    name: TritonModelName | None = Field(
        None, description="Name Triton serves the model under. Default: the object's name."
    )
    version: int = Field(
        1, ge=1, description="Triton model version (the numbered directory in the repository)."
    )
    inputs: Annotated[tuple[Tensor, ...], ListMap("name")] = Field(
        (),
        max_length=64,
        description=(
            "The model's input tensors. Unset: Triton reads them from the model (onnx, "
            "tensorrt, tensorflow, python with auto_complete_config); pytorch needs them."
        ),
    )
    outputs: Annotated[tuple[Tensor, ...], ListMap("name")] = Field(
        (), max_length=64, description="The model's output tensors (as inputs)."
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[ModelSource]]:
        return (
            Rule(
                cel="!has(self.uri) || self.uri.startsWith('/') || "
                "self.uri.matches('^(http|https|pvc)://.+$')",
                message=MODEL_URI_MESSAGE,
                field_path=".uri",
                holds=lambda m: m.uri is None or is_supported_model_uri(m.uri),
            ),
            Rule(
                cel="self.format != 'pytorch' || (has(self.inputs) && self.inputs.size() > 0 "
                "&& has(self.outputs) && self.outputs.size() > 0)",
                message="format pytorch needs inputs and outputs: Triton cannot read them "
                "from a TorchScript file",
                field_path=".inputs",
                holds=lambda m: m.format != ModelFormat.PYTORCH or bool(m.inputs and m.outputs),
            ),
            Rule(
                cel="[has(self.uri), has(self.fromTrainingJob), has(self.fromSweep)]"
                ".filter(x, x).size() == 1",
                message="set exactly one of uri, fromTrainingJob or fromSweep",
                holds=lambda m: (
                    sum(src is not None for src in (m.uri, m.from_training_job, m.from_sweep)) == 1
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Runtime
# --------------------------------------------------------------------------------------


class DynamicBatching(ApiModel):
    """Triton's dynamic batcher: requests arriving together run as one batch."""

    preferred_batch_sizes: tuple[int, ...] = Field(
        (),
        max_length=16,
        description="Batch sizes the batcher aims for, each at most maxBatchSize.",
    )
    max_queue_delay_microseconds: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="How long a request may wait for others to fill a batch.",
    )
    preserve_ordering: bool = Field(
        False, description="Return responses in the order requests arrived."
    )
    max_queue_size: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Requests queued at most; more are refused at once. 0: no limit.",
    )
    queue_timeout_microseconds: int = Field(
        0,
        ge=0,
        le=3_600_000_000,
        description="A request still queued after this long is refused. 0: no timeout.",
    )


class InstanceKind(enum.StrEnum):
    """Where a model instance runs."""

    AUTO = "auto"
    GPU = "gpu"
    CPU = "cpu"


class InstanceGroup(ApiModel):
    """Copies of the model loaded in each replica (Triton instance_group)."""

    count: int = Field(1, ge=1, le=64, description="Instances (per GPU when kind is gpu).")
    kind: InstanceKind = Field(
        InstanceKind.AUTO, description="gpu, cpu, or auto (GPU when the replica has one)."
    )


class Runtime(ApiModel):
    """The Triton Inference Server that serves the model."""

    image: ImageRef | None = Field(
        None,
        description="Triton image. Default: the Triton image the operator is configured with.",
    )
    args: tuple[CommandArg, ...] = Field(
        (),
        max_length=64,
        description="Extra tritonserver arguments, e.g. [--log-verbose=1].",
    )
    env: EnvList = Field(
        (),
        description="Environment of the server, e.g. storage credentials from a Secret.",
    )
    max_batch_size: int = Field(
        0,
        ge=0,
        le=4096,
        description=(
            "Largest batch Triton forms (max_batch_size); 0: the model has no batch dimension."
        ),
    )
    dynamic_batching: DynamicBatching | None = Field(
        None, description="Enable Triton's dynamic batcher (needs maxBatchSize > 0)."
    )
    instance_groups: tuple[InstanceGroup, ...] = Field(
        (),
        max_length=8,
        description="Model instances per replica. Default: one, on the GPU if there is one.",
    )
    startup_timeout_seconds: int = Field(
        600,
        ge=10,
        le=7200,
        description=(
            "How long a replica may take to fetch and load the model before it is "
            "restarted; liveness is checked only after that. Size it for the slowest load."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Runtime]]:
        return (
            Rule(
                cel="!has(self.dynamicBatching) || self.maxBatchSize > 0",
                message="dynamicBatching needs maxBatchSize > 0",
                field_path=".dynamicBatching",
                holds=lambda r: r.dynamic_batching is None or r.max_batch_size > 0,
            ),
            Rule(
                cel="!has(self.dynamicBatching) || "
                "!has(self.dynamicBatching.preferredBatchSizes) || "
                "self.dynamicBatching.preferredBatchSizes.all(b, b >= 1 && b <= self.maxBatchSize)",
                message="dynamicBatching.preferredBatchSizes must lie between 1 and maxBatchSize",
                field_path=".dynamicBatching.preferredBatchSizes",
                holds=lambda r: (
                    r.dynamic_batching is None
                    or all(
                        1 <= b <= r.max_batch_size for b in r.dynamic_batching.preferred_batch_sizes
                    )
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Autoscaling
# --------------------------------------------------------------------------------------


class ScalingMetric(enum.StrEnum):
    """The signal replicas are scaled on; the unit of `target` depends on it."""

    QUEUE_TIME = "queueTime"
    PENDING_REQUESTS = "pendingRequests"
    INFERENCE_RATE = "inferenceRate"
    CPU = "cpu"
    GPU_UTILIZATION = "gpuUtilization"


class ScalingBackend(enum.StrEnum):
    """What adjusts the replica count."""

    BUILTIN = "builtin"
    HPA = "hpa"
    KEDA = "keda"


class Autoscaling(ApiModel):
    """How many replicas run, and on what signal their number changes."""

    min_replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description="Fewest replicas. 0 (scale to zero when idle) only with backend keda.",
    )
    max_replicas: int = Field(1, ge=1, le=1000, description="Most replicas.")
    metric: ScalingMetric = Field(
        ScalingMetric.QUEUE_TIME,
        description=(
            "queueTime (average ms a request waits in Triton's queue), pendingRequests "
            "(requests waiting per replica), inferenceRate (inferences/s per replica), cpu "
            "or gpuUtilization (percent)."
        ),
    )
    target: float | None = Field(
        None,
        gt=0,
        description=(
            "Value of metric to hold, in its unit (e.g. queueTime 20 = 20 ms). Required "
            "when maxReplicas > minReplicas."
        ),
    )
    backend: ScalingBackend = Field(
        ScalingBackend.BUILTIN,
        description=(
            "builtin (Plinth reads Triton's metrics from the replicas itself: nothing else "
            "to install), hpa (a HorizontalPodAutoscaler; Triton's metrics reach it through "
            "prometheus-adapter, see the chart's values) or keda (a KEDA ScaledObject with "
            "a Prometheus trigger; needs prometheusAddress)."
        ),
    )
    scale_down_delay_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description=(
            "How long load must stay low before replicas are removed (the scale-down "
            "stabilisation window of every backend)."
        ),
    )
    prometheus_address: str | None = Field(
        None,
        max_length=1024,
        pattern=r"^https?://\S+$",
        description=(
            "Prometheus that scrapes the replicas, for backend keda "
            "(e.g. http://prometheus.monitoring.svc:9090)."
        ),
    )

    @property
    def fixed(self) -> bool:
        """Whether the replica count is fixed (nothing to scale between)."""
        return self.min_replicas == self.max_replicas

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Autoscaling]]:
        return (
            Rule(
                cel="self.minReplicas <= self.maxReplicas",
                message="minReplicas must be less than or equal to maxReplicas",
                field_path=".minReplicas",
                holds=lambda a: a.min_replicas <= a.max_replicas,
            ),
            Rule(
                cel="self.minReplicas == self.maxReplicas || has(self.target)",
                message="target is required when maxReplicas > minReplicas",
                field_path=".target",
                holds=lambda a: a.fixed or a.target is not None,
            ),
            Rule(
                cel="self.minReplicas >= 1 || self.backend == 'keda'",
                message="minReplicas 0 (scale to zero) needs backend keda",
                field_path=".minReplicas",
                holds=lambda a: a.min_replicas >= 1 or a.backend == ScalingBackend.KEDA,
            ),
            Rule(
                cel="(self.backend == 'keda') == has(self.prometheusAddress)",
                message="prometheusAddress is required with backend keda, and only used by it",
                field_path=".prometheusAddress",
                holds=lambda a: (
                    (a.backend == ScalingBackend.KEDA) == (a.prometheus_address is not None)
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Rollout
# --------------------------------------------------------------------------------------


class CanaryStep(ApiModel):
    """One stage of a canary rollout."""

    weight: int = Field(
        ge=1,
        le=99,
        description=(
            "Percent of replicas (and so of requests) the new model gets in this step; "
            "after the last step it takes them all."
        ),
    )
    duration_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="How long the step lasts while gates are watched before the next.",
    )


class RolloutFailureAction(enum.StrEnum):
    """What a failed gate does."""

    ROLLBACK = "rollback"
    PAUSE = "pause"


class Gates(ApiModel):
    """Checks on the new model during each canary step, from Triton's own metrics of the
    new and the stable replicas; a failed check stops the rollout."""

    max_error_rate: float | None = Field(
        0.01,
        ge=0,
        le=1,
        description="Highest share of failed requests on the new model (0.01: 1%).",
    )
    max_latency_ms: float | None = Field(
        None,
        gt=0,
        description="Highest average request latency on the new model, in milliseconds.",
    )
    max_latency_ratio: float | None = Field(
        None,
        ge=1,
        le=100,
        description=(
            "Highest average latency of the new model relative to the stable one's in the "
            "same step (1.5: at most 50% slower)."
        ),
    )
    min_requests: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description=(
            "Requests the new model must serve in a step before its gates are judged; a "
            "step does not end before that."
        ),
    )


class Canary(ApiModel):
    """Shift traffic to a changed model step by step."""

    steps: Annotated[tuple[CanaryStep, ...], ListMap("weight")] = Field(
        min_length=1,
        max_length=10,
        description=(
            "Increasing traffic weights, e.g. [{weight: 10}, {weight: 50}]; after the last "
            "the new model takes all traffic."
        ),
    )
    gates: Gates = Field(
        default_factory=Gates,
        json_schema_extra=object_default(Gates),
        description="Error-rate and latency checks on the new model.",
    )
    on_failure: RolloutFailureAction = Field(
        RolloutFailureAction.ROLLBACK,
        description="rollback (all traffic back to the old model) or pause (hold the weight).",
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Canary]]:
        return (
            Rule(
                cel="self.steps.map(s, s.weight).isSorted()",
                message="steps must have increasing weights",
                field_path=".steps",
                holds=lambda c: [s.weight for s in c.steps] == sorted(s.weight for s in c.steps),
            ),
        )


class Rollout(ApiModel):
    """How a change of model reaches traffic. Without canary, the new model's replicas
    start beside the old ones and replace them once they are ready."""

    canary: Canary | None = Field(
        None, description="Canary steps with gates. The first deployment skips them."
    )


# --------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------


class ModelDeploymentSpec(ApiModel):
    """Which model, served how, on how many replicas, changed how."""

    model: ModelSource = Field(description="The model to serve and its format.")
    runtime: Runtime = Field(
        default_factory=Runtime,
        json_schema_extra=object_default(Runtime),
        description="Triton image, arguments, batching and instances.",
    )
    resources: Resources = Field(
        default_factory=Resources,
        json_schema_extra=object_default(Resources),
        description="GPUs, CPU and memory of each replica.",
    )
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling,
        json_schema_extra=object_default(Autoscaling),
        description="Replica bounds and the metric that scales between them. Default: 1 replica.",
    )
    rollout: Rollout = Field(
        default_factory=Rollout,
        json_schema_extra=object_default(Rollout),
        description="How a changed model is rolled out.",
    )
    pod_template: PodTemplate | None = Field(
        None,
        description=(
            "Escape hatch: node selectors, tolerations, volumes, service account, labels "
            "and annotations copied onto every replica."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[ModelDeploymentSpec]]:
        return (
            Rule(
                cel="self.autoscaling.metric != 'gpuUtilization' || self.resources.gpus > 0",
                message="metric gpuUtilization needs resources.gpus > 0",
                field_path=".autoscaling.metric",
                holds=lambda s: (
                    s.autoscaling.metric != ScalingMetric.GPU_UTILIZATION or s.resources.gpus > 0
                ),
            ),
            Rule(
                cel="!has(self.runtime.instanceGroups) || self.resources.gpus > 0 || "
                "!self.runtime.instanceGroups.exists(g, g.kind == 'gpu')",
                message="instanceGroups of kind gpu need resources.gpus > 0",
                field_path=".runtime.instanceGroups",
                holds=lambda s: (
                    s.resources.gpus > 0
                    or all(g.kind != InstanceKind.GPU for g in s.runtime.instance_groups)
                ),
            ),
            Rule(
                cel="self.autoscaling.metric != 'cpu' || self.autoscaling.backend == 'builtin' "
                "|| has(self.resources.cpu)",
                message="metric cpu with backend hpa or keda needs resources.cpu (utilisation "
                "is measured against the request)",
                field_path=".autoscaling.metric",
                holds=lambda s: (
                    s.autoscaling.metric != ScalingMetric.CPU
                    or s.autoscaling.backend == ScalingBackend.BUILTIN
                    or s.resources.cpu is not None
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


class ModelDeploymentPhase(enum.StrEnum):
    """A one-word summary for `kubectl get`."""

    PENDING = "Pending"
    READY = "Ready"
    ROLLING_OUT = "RollingOut"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ModelDeploymentConditionType(enum.StrEnum):
    """Condition types a ModelDeployment reports."""

    MODEL_RESOLVED = "ModelResolved"
    MODEL_READY = "ModelReady"
    READY = "Ready"
    ROLLING_OUT = "RollingOut"
    DEGRADED = "Degraded"
    SCALING_ACTIVE = "ScalingActive"


class CanaryState(enum.StrEnum):
    """Where a canary rollout stands."""

    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"


class ServedModel(StatusModel):
    """The model as resolved and served."""

    name: str = Field(max_length=128, description="Name Triton serves it under.")
    version: int = Field(ge=1, description="Triton model version.")
    uri: str = Field(max_length=1024, description="Resolved location it was loaded from.")
    revision: str = Field(
        "", max_length=16, description="Short hash of the model; names its Deployment."
    )


class Traffic(StatusModel):
    """Requests served by one side of a canary step (from Triton's counters)."""

    requests: int = Field(0, ge=0, description="Requests answered, successful or not.")
    failures: int = Field(0, ge=0, description="Requests that failed.")
    latency_microseconds: int = Field(
        0, ge=0, description="Sum of their request durations, in microseconds."
    )


class CanaryStatus(StatusModel):
    """Progress of the current canary rollout."""

    state: CanaryState = Field(description="Progressing, Paused, Promoted or RolledBack.")
    step: int = Field(ge=0, description="Index of the current step in rollout.canary.steps.")
    weight: int = Field(
        ge=0, le=100, description="Percent of replicas (so of traffic) on the new model now."
    )
    model: ServedModel | None = Field(None, description="The new model being rolled out.")
    step_start_time: Timestamp | None = Field(
        None, description="When the current step began (its replicas all ready)."
    )
    canary: Traffic = Field(
        default_factory=Traffic, description="What the new model served in this step."
    )
    stable: Traffic = Field(
        default_factory=Traffic, description="What the stable model served in this step."
    )
    message: str | None = Field(
        None, max_length=1024, description="The verdict: why it waits, paused or rolled back."
    )


class ScaleDownCandidate(StatusModel):
    """Fewer replicas the autoscaler has wanted since `since` (applied after the delay)."""

    since: Timestamp = Field(description="When load first stayed low.")
    replicas: int = Field(ge=0, description="The most replicas wanted since then.")


class AutoscalerStatus(StatusModel):
    """What the autoscaler sees and decided."""

    backend: ScalingBackend = Field(description="builtin, hpa or keda.")
    metric: ScalingMetric = Field(description="The metric it scales on.")
    current_value: float | None = Field(
        None, description="The metric's latest value, in its unit (None: not read)."
    )
    target: float | None = Field(None, description="The value it holds the metric at.")
    desired_replicas: int | None = Field(None, ge=0, description="Replicas it wants now.")
    reason: str | None = Field(
        None, max_length=1024, description="Why it wants that many (or why it cannot tell)."
    )
    last_scale_time: Timestamp | None = Field(
        None, description="When it last changed the replica count."
    )
    scale_down: ScaleDownCandidate | None = Field(
        None, description="A pending scale-down, applied once the delay has passed."
    )


class ModelDeploymentStatus(StatusModel):
    """What is served, where, on how many replicas."""

    phase: ModelDeploymentPhase | None = Field(
        None, description="Pending, Ready, RollingOut, Degraded or Failed."
    )
    conditions: ConditionList = Field(
        (),
        description=(
            "ModelResolved, ModelReady (False with Triton's own load error), Ready, "
            "RollingOut, Degraded, ScalingActive; each with reason and message."
        ),
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation this status was computed from."
    )
    url: str | None = Field(
        None, max_length=1024, description="In-cluster URL of Triton's HTTP endpoint."
    )
    grpc_url: str | None = Field(
        None, max_length=1024, description="In-cluster address of Triton's gRPC endpoint."
    )
    desired_replicas: int | None = Field(
        None, ge=0, description="Replicas of the serving model the autoscaler wants."
    )
    ready_replicas: int = Field(0, ge=0, description="Replicas with the model loaded and ready.")
    model: ServedModel | None = Field(None, description="The model serving (stable) traffic.")
    canary: CanaryStatus | None = Field(
        None, description="The canary rollout, while one runs, and the verdict of the last."
    )
    autoscaler: AutoscalerStatus | None = Field(
        None, description="What the autoscaler sees (current metric value) and decided."
    )


MODEL_DEPLOYMENT = KindInfo(
    group=API_GROUP,
    version=API_VERSION,
    kind="ModelDeployment",
    plural="modeldeployments",
    short_names=("md",),
    description=(
        "A model served by NVIDIA Triton Inference Server: replicas, a Service, an "
        "autoscaler and a disruption budget, with canary rollouts of new model versions."
    ),
    spec_model=ModelDeploymentSpec,
    status_model=ModelDeploymentStatus,
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", "string", "Summary of the deployment's state."),
        PrinterColumn("Model", ".status.model.name", "string", "Model served."),
        PrinterColumn("Version", ".status.model.version", "integer", "Model version served."),
        PrinterColumn("Ready", ".status.readyReplicas", "integer", "Replicas ready."),
        PrinterColumn("Desired", ".status.desiredReplicas", "integer", "Replicas wanted."),
        PrinterColumn("URL", ".status.url", "string", "In-cluster inference URL."),
        PrinterColumn("URI", ".status.model.uri", "string", "Where the model came from.", 1),
        PrinterColumn("Canary", ".status.canary.weight", "integer", "Canary traffic %.", 1),
        AGE_COLUMN,
    ),
    object_rules=(name_rule(48, "it names the deployment's Service and pods"),),
)
