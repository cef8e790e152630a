"""KServe InferenceService (serving.kserve.io/v1beta1) with a Triton predictor into a
ModelDeployment.

The predictor's model (`storageUri`, `modelFormat`) becomes `model`; its container gives
the Triton image (or `runtimeVersion` the tag of NVIDIA's image), extra server arguments,
environment and per-replica `resources`; min/max replicas and the scale metric become
`autoscaling`; `canaryTrafficPercent` becomes a canary step; the batcher becomes Triton's
dynamic batcher. A predictor KServe serves with another runtime (scikit-learn, TorchServe,
Hugging Face, a custom container) is kept as it is, and said so.
"""

from __future__ import annotations

from plinth.api.v1alpha1 import MODEL_URI_SCHEMES, is_supported_model_uri
from plinth.api.wellknown import Manifest
from plinth.convert.document import Inputs
from plinth.convert.pods import Workload, read_container, read_pod_spec
from plinth.convert.report import Severity
from plinth.convert.source import Source

KIND = "InferenceService"
API_VERSION = "serving.kserve.io/v1beta1"
TRITON_RUNTIME = "kserve-tritonserver"
#: The image KServe's Triton runtime runs; `runtimeVersion` is its tag.
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver"
#: Formats a converted ModelDeployment takes (pytorch needs tensors KServe leaves to Triton).
FORMATS = ("onnx", "tensorrt", "tensorflow", "python")
#: Formats KServe serves with Triton when no runtime is named.
TRITON_BY_DEFAULT = ("onnx", "tensorrt", "triton")
OTHER_PREDICTORS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)
#: tritonserver arguments Plinth sets itself (model repository, ports, model control).
PLINTH_ARGS = (
    "--model-store",
    "--model-repository",
    "--http-port",
    "--grpc-port",
    "--metrics-port",
    "--allow-http",
    "--allow-grpc",
    "--allow-metrics",
    "--model-control-mode",
    "--load-model",
)
#: KServe's defaults where Plinth needs a value: CPU utilisation target, batcher settings.
KSERVE_CPU_TARGET = 80
KSERVE_BATCH_SIZE = 32
KSERVE_BATCH_LATENCY_MS = 5000
MAX_QUEUE_DELAY_US = 10_000_000
ANNOTATION_PREFIXES = (
    "serving.kserve.io/",
    "autoscaling.knative.dev/",
    "serving.knative.dev/",
    "networking.knative.dev/",
)
#: Knative's metrics: Plinth's nearest metric, Knative's default target, and how they differ.
SCALE_METRICS = {
    "concurrency": (
        "pendingRequests",
        100,
        "Knative's in-flight requests per replica become Triton's pending requests per replica",
    ),
    "rps": (
        "inferenceRate",
        200,
        "requests per second become Triton's inferences per second",
    ),
}


def convert(document: Source, inputs: Inputs) -> Manifest | None:
    """The ModelDeployment spec of an InferenceService, or None to keep it as it is."""
    spec = document.require("spec")
    predictor = spec.require("predictor")
    found = _triton_model(predictor)
    if isinstance(found, str):
        predictor.note(Severity.KEPT, found)
        return None
    model, model_format = found
    workload = _workload(predictor, model)
    result = {
        "model": {"uri": _storage_uri(model), "format": model_format},
        "runtime": _runtime(predictor, model, workload),
        "resources": workload.resources,
        "autoscaling": _autoscaling(predictor),
        "rollout": _rollout(predictor, spec),
        "podTemplate": workload.pod_template,
    }
    _not_carried(document, spec, predictor)
    return {key: value for key, value in result.items() if value}


# --------------------------------------------------------------------------------------
# Is it Triton?
# --------------------------------------------------------------------------------------


def _triton_model(predictor: Source) -> tuple[Source, str] | str:
    """The model part of a Triton predictor and its format, or why it is not Triton."""
    others = [key for key in OTHER_PREDICTORS if predictor.has(key)]
    if others:
        return f"a {others[0]} predictor: Plinth serves models with Triton only"
    if predictor.has("containers"):
        return "a custom predictor (containers): Plinth serves models with Triton only"
    if predictor.has("triton"):
        predictor.fail(
            "a Triton model repository does not say which format its model has, and a "
            "ModelDeployment serves one model of a known format: write it as model: "
            "{modelFormat: {name: onnx|tensorrt|tensorflow}, runtime: "
            f"{TRITON_RUNTIME}, storageUri: <the model's folder>}}",
            "triton",
        )
    legacy = predictor.child("onnx")
    if legacy is not None:
        reason = "KServe's onnx predictor becomes Triton's onnxruntime backend"
        predictor.note(Severity.CHANGED, reason, "onnx")
        return legacy, "onnx"
    model = predictor.child("model")
    if model is None:
        predictor.fail("needs a model", "model")
    return _model_format(model)


def _model_format(model: Source) -> tuple[Source, str] | str:
    model_format = model.require("modelFormat")
    name = (model_format.text("name") or "").lower()
    runtime = model.text("runtime")
    triton = "triton" in runtime if runtime else name in TRITON_BY_DEFAULT
    if not triton:
        served_by = runtime or f"the runtime KServe picks for {name}"
        return f"served by {served_by}: Plinth serves models with Triton only"
    if name == "triton":
        model_format.fail(
            "a Triton model repository does not say which format its model has: set "
            f"modelFormat.name to one of {', '.join(FORMATS)} and storageUri to that model",
            "name",
        )
    if name == "pytorch":
        model_format.fail(
            "a pytorch (TorchScript) ModelDeployment declares its inputs and outputs, which "
            "KServe's Triton read from the repository's config.pbtxt: convert the model to "
            "onnx, or write the ModelDeployment with spec.model.inputs and outputs",
            "name",
        )
    if name not in FORMATS:
        model_format.fail(f"must be one of {', '.join(FORMATS)} for Triton", "name")
    model_format.changed("version", "Plinth's Triton loads the format's current version")
    if runtime != TRITON_RUNTIME:
        reason = "Plinth runs its own Triton; the ServingRuntime's settings are not read"
        model.changed("runtime", reason)
    return model, name


# --------------------------------------------------------------------------------------
# Model, runtime, pod
# --------------------------------------------------------------------------------------


def _workload(predictor: Source, model: Source) -> Workload:
    model.dropped("command", "Plinth starts tritonserver itself")
    model.take("name")
    workload = Workload()
    read_container(model, workload)
    read_pod_spec(predictor, workload)
    if workload.priority_class_name:
        reason = "a ModelDeployment has no priority class"
        predictor.note(Severity.DROPPED, reason, "priorityClassName")
    for key in ("labels", "annotations"):
        values = predictor.string_map(key)
        if values:
            workload.pod_template[key] = values
    return workload


def _storage_uri(model: Source) -> str:
    uri = model.text("storageUri")
    if not uri:
        model.fail("is required: Plinth loads the model from a URI", "storageUri")
    if not is_supported_model_uri(uri):
        schemes = ", ".join(f"{scheme}://" for scheme in MODEL_URI_SCHEMES)
        model.fail(
            f"Plinth's model loader fetches from {schemes} or an absolute path on a mounted "
            f"volume, not {uri.partition('://')[0]}://: copy the model there (e.g. a "
            "PersistentVolumeClaim) and point storageUri at it",
            "storageUri",
        )
    model.dropped("storage", "Plinth reads the model from storageUri only")
    return uri


def _runtime(predictor: Source, model: Source, workload: Workload) -> Manifest:
    runtime: Manifest = {}
    version = model.text("runtimeVersion")
    if workload.image:
        runtime["image"] = workload.image
    elif version:
        runtime["image"] = f"{TRITON_IMAGE}:{version}"
        reason = f"the tag of KServe's default Triton image: {runtime['image']}"
        model.note(Severity.CHANGED, reason, "runtimeVersion")
    runtime["args"] = _server_args(model, workload.args or [])
    runtime["env"] = workload.env
    if model.text("protocolVersion") == "v1":
        reason = "Triton speaks the v2 (Open Inference) protocol, over HTTP and gRPC"
        model.note(Severity.CHANGED, reason, "protocolVersion")
    runtime |= _batching(predictor.child("batcher"))
    return {key: value for key, value in runtime.items() if value}


def _server_args(model: Source, args: list[str]) -> list[str]:
    kept = []
    for index, argument in enumerate(args):
        if argument.split("=", 1)[0] in PLINTH_ARGS:
            reason = "Plinth sets the model repository, ports and model control itself"
            model.note(Severity.CHANGED, reason, "args", index)
        else:
            kept.append(argument)
    return kept


def _batching(batcher: Source | None) -> Manifest:
    """KServe's request batcher as Triton's dynamic batcher."""
    if batcher is None:
        return {}
    size = batcher.integer("maxBatchSize") or KSERVE_BATCH_SIZE
    latency = batcher.integer("maxLatency") or KSERVE_BATCH_LATENCY_MS
    batcher.dropped("timeout", "Triton's dynamic batcher has no request timeout")
    reason = (
        "KServe batches requests in a sidecar; Plinth turns on Triton's dynamic batcher with "
        "the same batch size and delay (the model needs a batch dimension)"
    )
    batcher.note(Severity.CHANGED, reason)
    delay = min(latency * 1000, MAX_QUEUE_DELAY_US)
    return {"maxBatchSize": size, "dynamicBatching": {"maxQueueDelayMicroseconds": delay}}


# --------------------------------------------------------------------------------------
# Autoscaling and rollout
# --------------------------------------------------------------------------------------


def _autoscaling(predictor: Source) -> Manifest:
    low = predictor.integer("minReplicas")
    if low == 0:
        reason = "scale to zero is not offered: 1 replica at least"
        predictor.note(Severity.CHANGED, reason, "minReplicas")
    low = max(low or 1, 1)
    high = predictor.integer("maxReplicas") or 0
    scales = any(predictor.has(key) for key in ("scaleMetric", "scaleTarget", "autoScaling"))
    if high < low and scales:
        reason = "KServe leaves the maximum open; Plinth needs one: minReplicas (raise it)"
        predictor.note(Severity.CHANGED, reason, "maxReplicas")
    result: Manifest = {"minReplicas": low, "maxReplicas": max(high, low)}
    metric = _scale_metric(predictor, autoscales=high > low)
    if metric is not None:
        result["metric"], result["target"] = metric
    return result


def _scale_metric(predictor: Source, *, autoscales: bool) -> tuple[str, int] | None:
    name = predictor.text("scaleMetric")
    target = predictor.integer("scaleTarget")
    if name is None:
        name, hpa_target = _hpa_metric(predictor)
        target = target or hpa_target
    if predictor.text("scaleMetricType") not in (None, "Utilization") and name == "cpu":
        reason = "Plinth scales on CPU utilisation (percent) only"
        predictor.note(Severity.DROPPED, reason, "scaleMetricType")
    if name in SCALE_METRICS:
        metric, default, reason = SCALE_METRICS[name]
        if target is None:
            reason += f"; Knative's default target, {default}, is written out"
        predictor.note(Severity.CHANGED, reason, "scaleMetric")
        return metric, target or default
    if name not in (None, "cpu"):
        reason = f"Plinth does not scale on {name}: CPU at {KSERVE_CPU_TARGET}% is used"
        predictor.note(Severity.DROPPED, reason, "scaleMetric")
        return "cpu", KSERVE_CPU_TARGET
    if name is None and not autoscales:
        return None
    if name is None:
        reason = f"KServe's default, CPU at {KSERVE_CPU_TARGET}% utilisation, is written out"
        predictor.note(Severity.CHANGED, reason, "scaleMetric")
    return "cpu", target or KSERVE_CPU_TARGET


def _hpa_metric(predictor: Source) -> tuple[str | None, int | None]:
    """A single CPU-utilisation metric of `autoScaling` is read as scaleMetric cpu."""
    autoscaling = predictor.child("autoScaling")
    if autoscaling is None:
        return None, None
    metrics = autoscaling.value.get("metrics") or []
    first = metrics[0] if len(metrics) == 1 and isinstance(metrics[0], dict) else {}
    resource = first.get("resource") or {}
    target = resource.get("target") or {}
    if resource.get("name") == "cpu" and target.get("type") == "Utilization":
        autoscaling.take("metrics")
        utilization = target.get("averageUtilization")
        return "cpu", int(utilization) if isinstance(utilization, int) else None
    reason = "Plinth scales on Triton's metrics or CPU by itself: choose autoscaling.metric"
    predictor.note(Severity.DROPPED, reason, "autoScaling")
    return None, None


def _rollout(predictor: Source, spec: Source) -> Manifest:
    weights = set()
    percent = predictor.integer("canaryTrafficPercent")
    if percent is not None and 0 < percent < 100:
        weights.add(percent)
        reason = (
            f"KServe holds the new model at {percent}% until you change it; Plinth gives it "
            f"{percent}% for the step's duration, then all traffic while the gates hold"
        )
        predictor.note(Severity.CHANGED, reason, "canaryTrafficPercent")
    elif percent == 0:
        reason = "a dark launch (0%) is not offered: canary steps start at 1%"
        predictor.note(Severity.DROPPED, reason, "canaryTrafficPercent")
    for canary in spec.children("canary"):
        weights |= _raw_canary(canary)
    if not weights:
        return {}
    return {"canary": {"steps": [{"weight": weight} for weight in sorted(weights)]}}


def _raw_canary(canary: Source) -> set[int]:
    """A canary predictor of raw deployment mode: its share becomes a canary step; its
    model is the one to roll out next."""
    share = canary.integer("trafficPercent")
    uri = ((canary.value.get("predictor") or {}).get("model") or {}).get("storageUri")
    reason = (
        "a ModelDeployment serves one model and canaries a changed one: after applying, set "
        f"spec.model.uri to {uri or 'its storageUri'} to roll it out through the canary steps"
    )
    canary.note(Severity.DROPPED, reason, "predictor")
    if share is None or not 0 < share < 100:
        return set()
    reason = "becomes the weight of a canary step for the next change of model"
    canary.note(Severity.CHANGED, reason, "trafficPercent")
    return {share}


def _not_carried(document: Source, spec: Source, predictor: Source) -> None:
    for key in ("transformer", "explainer"):
        spec.dropped(key, "Plinth serves the model only: no transformer or explainer")
    predictor.changed("name", "Plinth names the replicas after the ModelDeployment")
    for key, reason in {
        "containerConcurrency": "Triton queues requests instead (see autoscaling on queueTime)",
        "timeout": "no request timeout",
        "logger": "no request logging",
        "deploymentStrategy": "replicas are replaced one by one, or through rollout.canary",
        "workerSpec": "one replica serves the whole model (no multi-node serving)",
        "storageUris": "Plinth loads one model from spec.model.uri",
    }.items():
        predictor.dropped(key, reason)
    annotations = document.under("metadata", "annotations")
    if annotations is None:
        return
    for key in annotations.fields():
        if key.startswith(ANNOTATION_PREFIXES):
            reason = "kept on the object, but Plinth does not read it"
            annotations.note(Severity.CHANGED, reason, key)
