"""The TrainingJob kind: distributed PyTorch on a gang of GPU pods, resumable from checkpoints.

A TrainingJob runs `image` on `nodes` pods (or an elastic range of them), each with
`resources.gpus` GPUs and `procsPerNode` processes, wired for `torchrun`. A crash restarts
the whole gang from the last checkpoint up to `restartPolicy.backoffLimit` times; preemption
and node loss are counted apart and never use up that limit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import Field

from plinth.api.schema import (
    AGE_COLUMN,
    ApiModel,
    CommandArg,
    DnsSubdomain,
    ImageRef,
    KindInfo,
    ListSet,
    PrinterColumn,
    Rule,
    StatusModel,
    Timestamp,
    immutable,
    name_rule,
    object_default,
)
from plinth.api.v1alpha1.common import API_GROUP, API_VERSION, ConditionList
from plinth.api.v1alpha1.env import (
    RESERVED_ENV_CEL,
    RESERVED_ENV_MESSAGE,
    EnvList,
    is_reserved_env_name,
)
from plinth.api.v1alpha1.pods import PodTemplate, Resources

MAX_NODES = 1024
#: A process exit status that means failure.
ExitCode = Annotated[int, Field(ge=1, le=255)]
#: URIs of object stores ("s3://bucket/prefix") or absolute paths on a mounted volume.
CHECKPOINT_URI_PATTERN = r"^([a-z][a-z0-9+.-]*://\S+|/\S*)$"


class ElasticPolicy(ApiModel):
    """A node range instead of a fixed count: torchrun's elastic rendezvous (c10d)."""

    min_nodes: int = Field(
        ge=1,
        le=MAX_NODES,
        description=(
            "Fewest nodes training runs on; the job starts once this many are placed, and "
            "carries on while this many members remain."
        ),
    )
    max_nodes: int = Field(
        ge=1, le=MAX_NODES, description="Most nodes training scales up to when they are free."
    )
    max_restarts: int = Field(
        3,
        ge=0,
        le=100,
        description=(
            "How often torchrun may restart the worker group in place when membership "
            "changes or a worker fails (PET_MAX_RESTARTS). Plinth counts a member that "
            "leaves (its pod deleted, evicted, failed, or its node lost) as one such "
            "restart: while minNodes remain the others keep running and the member is "
            "replaced when it can be placed; past maxRestarts, or when worker 0 (the "
            "rendezvous host) leaves, the attempt ends and restartPolicy applies."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[ElasticPolicy]]:
        return (
            Rule(
                cel="self.minNodes <= self.maxNodes",
                message="minNodes must be less than or equal to maxNodes",
                field_path=".minNodes",
                holds=lambda e: e.min_nodes <= e.max_nodes,
            ),
        )


class Checkpoint(ApiModel):
    """Where checkpoints live, so that every restart resumes instead of starting over."""

    uri: str = Field(
        min_length=1,
        max_length=1024,
        pattern=CHECKPOINT_URI_PATTERN,
        description=(
            "Checkpoint location: an object-store URI (s3://bucket/runs/llm-7b, gs://...) "
            "or an absolute path on a volume mounted through podTemplate (/ckpt/llm-7b). "
            "Every worker gets it as PLINTH_CHECKPOINT_URI; the training code saves there "
            "and, on start, resumes from the newest checkpoint it finds."
        ),
    )


class RestartPolicy(ApiModel):
    """What a failure costs: a crash uses one retry, preemption and node loss use none."""

    backoff_limit: int = Field(
        3,
        ge=0,
        le=100,
        description=(
            "Gang restarts allowed after the program fails (non-zero exit, OOM kill) before "
            "the job is Failed. Each restart resumes from the last checkpoint. Restarts "
            "caused by preemption, eviction or node loss do not count."
        ),
    )
    permanent_exit_codes: Annotated[tuple[ExitCode, ...], ListSet()] = Field(
        (),
        max_length=32,
        description=(
            "Exit codes that mean the program itself is broken (bad arguments, missing "
            "data): the job fails at once, without using its restarts. E.g. [1, 2]."
        ),
    )
    max_preemptions: int | None = Field(
        None,
        ge=0,
        description=(
            "Restarts after preemption, eviction or node loss allowed before the job is "
            "Failed. Unset: no limit."
        ),
    )
    node_lost_timeout_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description=(
            "How long a worker may sit on a node that is not Ready (its kubelet silent, "
            "its lease expired) or no longer exists before Plinth counts a preemption and "
            "restarts the gang on other nodes, without waiting for that worker's pod to "
            "confirm its end (it never will)."
        ),
    )


class ScheduleTimeoutAction(enum.StrEnum):
    """What happens when the gang does not fit in time."""

    RETRY = "retry"
    FAIL = "fail"


class Scheduling(ApiModel):
    """How the workers are placed: all together (gang) or one by one."""

    gang: bool = Field(
        True,
        description=(
            "All-or-nothing placement: if not every worker is placed within "
            "scheduleTimeoutSeconds, Plinth releases them all so that no GPU is held by a "
            "job that cannot start, and says why in the Scheduled condition. Needs no extra "
            "scheduler. With queueName, Kueue admits the whole gang instead."
        ),
    )
    schedule_timeout_seconds: int = Field(
        300,
        ge=10,
        le=86400,
        description="How long a gang may wait for all of its workers to be placed.",
    )
    on_timeout: ScheduleTimeoutAction = Field(
        ScheduleTimeoutAction.RETRY,
        description=(
            "After a gang timed out and was released: retry (wait as long again, then try "
            "anew) or fail (the job becomes Failed with reason Unschedulable)."
        ),
    )


class TrainingJobSpec(ApiModel):
    """The program, how many nodes and GPUs it runs on, and what happens when it fails."""

    image: ImageRef = Field(
        description="Container image with the training code, e.g. ghcr.io/acme/train:1.4."
    )
    command: tuple[CommandArg, ...] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description=(
            "Entrypoint, e.g. [torchrun, train.py]. torchrun reads the PET_* variables "
            "Plinth sets, so it needs no flags; a plain [python, train.py] gets MASTER_ADDR, "
            "MASTER_PORT, WORLD_SIZE and RANK (with procsPerNode 1). Unset: the image's "
            "entrypoint."
        ),
    )
    args: tuple[CommandArg, ...] | None = Field(
        None, max_length=256, description="Arguments to the entrypoint."
    )
    env: EnvList = Field(
        (),
        description=(
            "Environment variables for every worker. Names Plinth sets itself (MASTER_*, "
            "WORLD_SIZE, RANK, PET_*, PLINTH_*) are refused."
        ),
    )
    nodes: int | None = Field(
        None,
        ge=1,
        le=MAX_NODES,
        description=(
            "Number of nodes (worker pods) in the gang, each with `resources`. Set this or elastic."
        ),
    )
    elastic: ElasticPolicy | None = Field(
        None, description="Run on a range of nodes instead of a fixed count. Set this or nodes."
    )
    procs_per_node: int | None = Field(
        None,
        ge=1,
        le=128,
        description=(
            "Processes per node (PET_NPROC_PER_NODE). Unset: one per GPU, or 1 without "
            "GPUs. At most resources.gpus when GPUs are requested."
        ),
    )
    resources: Resources = Field(
        default_factory=Resources,
        json_schema_extra=object_default(Resources),
        description="GPUs, CPU and memory of each node (worker pod).",
    )
    checkpoint: Checkpoint | None = Field(
        None,
        description=(
            "Checkpoint location, handed to the workers and used to resume after restarts. "
            "Without it every restart starts from scratch."
        ),
    )
    restart_policy: RestartPolicy = Field(
        default_factory=RestartPolicy,
        json_schema_extra=object_default(RestartPolicy),
        description="Which failures are retried and how often.",
    )
    active_deadline_seconds: int | None = Field(
        None,
        ge=1,
        description=(
            "Limit on the time the job spends started: counted from the first start (all "
            "workers running) and across restarts, and paused while the job is suspended "
            "(spec.suspend or its queue). Time before the first start never counts. Past "
            "it the job is Failed with reason DeadlineExceeded."
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        ge=0,
        description=(
            "Delete the job (and its pods) this long after it Succeeded or Failed. Unset: keep it."
        ),
    )
    suspend: bool = Field(
        False,
        description=(
            "True stops the job: its pods are deleted (GPUs freed) and the deadline clock "
            "pauses. A job that has not started yet is only held; a started one has its "
            "attempt stopped, and setting this back to false starts a new attempt from the "
            "last checkpoint. Suspension is neither a failure nor a preemption."
        ),
    )
    queue_name: DnsSubdomain | None = Field(
        None,
        description=(
            "Kueue LocalQueue to submit to (kueue.x-k8s.io/queue-name). Kueue then decides "
            "when the job starts, admitting the whole gang at once."
        ),
    )
    priority_class_name: DnsSubdomain | None = Field(
        None,
        description="PriorityClass of the worker pods: decides who preempts whom.",
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling,
        json_schema_extra=object_default(Scheduling),
        description="Gang placement and what to do when the gang does not fit.",
    )
    pod_template: PodTemplate | None = Field(
        None,
        description=(
            "Escape hatch: node selectors, tolerations, volumes, service account, labels "
            "and annotations copied onto every worker pod."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[TrainingJobSpec]]:
        return (
            Rule(
                cel="has(self.nodes) != has(self.elastic)",
                message="set exactly one of nodes (a fixed count) or elastic (a node range)",
                holds=lambda s: (s.nodes is None) != (s.elastic is None),
            ),
            Rule(
                cel=(
                    "!has(self.procsPerNode) || self.resources.gpus == 0 || "
                    "self.procsPerNode <= self.resources.gpus"
                ),
                message="procsPerNode must not exceed resources.gpus (one process per GPU at most)",
                field_path=".procsPerNode",
                holds=lambda s: (
                    s.procs_per_node is None
                    or s.resources.gpus == 0
                    or s.procs_per_node <= s.resources.gpus
                ),
            ),
            Rule(
                cel=RESERVED_ENV_CEL,
                message=RESERVED_ENV_MESSAGE,
                field_path=".env",
                holds=lambda s: not any(is_reserved_env_name(e.name) for e in s.env),
            ),
        )

    @property
    def effective_procs_per_node(self) -> int:
        """procsPerNode, or its default: one process per GPU, 1 without GPUs."""
        return self.procs_per_node or max(self.resources.gpus, 1)

    @property
    def min_nodes(self) -> int:
        """The fewest nodes the job runs on (the fixed count for a non-elastic job)."""
        return self.elastic.min_nodes if self.elastic else self.nodes or 1

    @property
    def max_nodes(self) -> int:
        """The most nodes the job runs on (the fixed count for a non-elastic job)."""
        return self.elastic.max_nodes if self.elastic else self.nodes or 1


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


class TrainingJobPhase(enum.StrEnum):
    """A one-word summary for `kubectl get`; conditions carry the details."""

    PENDING = "Pending"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingJobConditionType(enum.StrEnum):
    """Condition types a TrainingJob reports."""

    CREATED = "Created"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class WorkerCounts(StatusModel):
    """Worker pods of the current attempt, by phase."""

    pending: int = Field(0, ge=0, description="Workers created but not running yet.")
    running: int = Field(0, ge=0, description="Workers running.")
    succeeded: int = Field(0, ge=0, description="Workers that exited 0.")
    failed: int = Field(0, ge=0, description="Workers that failed.")
    unknown: int = Field(
        0,
        ge=0,
        description=(
            "Workers whose node stopped reporting (not Ready, or gone): their pods may still "
            "say Running, but nobody can tell."
        ),
    )


class CheckpointRecord(StatusModel):
    """The newest checkpoint the training code reported."""

    uri: str = Field(max_length=1024, description="Where it was written.")
    step: int | None = Field(None, ge=0, description="Training step it holds.")
    time: Timestamp | None = Field(None, description="When it was reported.")


MetricValues = Annotated[Mapping[str, float], Field(max_length=32)]


class ReportedMetrics(StatusModel):
    """Metrics the training code reported (bounded to 32 names)."""

    step: int | None = Field(None, ge=0, description="Step of the latest report.")
    time: Timestamp | None = Field(None, description="When the latest report arrived.")
    latest: MetricValues = Field(
        default_factory=dict, description="Each metric's most recent value."
    )
    min: MetricValues = Field(
        default_factory=dict, description="Each metric's lowest value so far (best if minimised)."
    )
    max: MetricValues = Field(
        default_factory=dict, description="Each metric's highest value so far (best if maximised)."
    )


class TrainingJobStatus(StatusModel):
    """What the job is doing, computed from its pods and the metrics it reported."""

    phase: TrainingJobPhase | None = Field(
        None, description="Pending, Running, Restarting, Suspended, Succeeded or Failed."
    )
    conditions: ConditionList = Field(
        (),
        description=(
            "Created, Scheduled, Running, Restarting, Suspended, Succeeded, Failed; each "
            "with reason and message (e.g. Scheduled=False, Unschedulable: needs 4 nodes "
            "x 8 nvidia.com/gpu; 2 fit)."
        ),
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation this status was computed from."
    )
    nodes: int | None = Field(
        None,
        ge=0,
        description="Nodes in the gang: spec.nodes, or an elastic job's current size.",
    )
    gpus: int | None = Field(
        None, ge=0, description="GPUs the whole gang uses: nodes x resources.gpus."
    )
    workers: WorkerCounts = Field(
        default_factory=WorkerCounts,
        description="Worker pods of the current attempt (one per node rank), by phase.",
    )
    restarts: int = Field(
        0, ge=0, description="Gang restarts after failures; counts towards backoffLimit."
    )
    preemptions: int = Field(
        0,
        ge=0,
        description="Gang restarts after preemption, eviction or node loss; not failures.",
    )
    membership_changes: int = Field(
        0,
        ge=0,
        description=(
            "Elastic jobs: members that left the current attempt and were (or will be) "
            "replaced while the others kept running; counts towards elastic.maxRestarts."
        ),
    )
    start_time: Timestamp | None = Field(
        None,
        description=(
            "When the job first started: every worker (minNodes of an elastic job) running at once."
        ),
    )
    completion_time: Timestamp | None = Field(None, description="When the job Succeeded or Failed.")
    gpu_seconds: float = Field(
        0, ge=0, description="GPU time held by the job's workers so far, in GPU-seconds."
    )
    last_checkpoint: CheckpointRecord | None = Field(
        None, description="The newest checkpoint the training code reported."
    )
    metrics: ReportedMetrics | None = Field(
        None, description="Latest, lowest and highest value of each reported metric."
    )


TRAINING_JOB = KindInfo(
    group=API_GROUP,
    version=API_VERSION,
    kind="TrainingJob",
    plural="trainingjobs",
    short_names=("tj",),
    description=(
        "A distributed PyTorch training run on a gang of GPU pods, wired for torchrun, "
        "restarted from its last checkpoint after failures and preemptions."
    ),
    spec_model=TrainingJobSpec,
    status_model=TrainingJobStatus,
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", "string", "Summary of the job's state."),
        PrinterColumn("Nodes", ".status.nodes", "integer", "Nodes in the gang."),
        PrinterColumn("GPUs", ".status.gpus", "integer", "GPUs across the gang."),
        PrinterColumn("Restarts", ".status.restarts", "integer", "Restarts after failures."),
        PrinterColumn(
            "Preemptions", ".status.preemptions", "integer", "Restarts after preemption.", 1
        ),
        PrinterColumn("Step", ".status.metrics.step", "integer", "Latest reported step.", 1),
        AGE_COLUMN,
    ),
    spec_transition_rules=(
        immutable("image", optional=False),
        immutable("command", optional=True),
        immutable("args", optional=True),
        immutable("env", optional=True),
        immutable("nodes", optional=True),
        immutable("elastic", optional=True),
        immutable("procsPerNode", optional=True),
        immutable("resources", optional=False),
        immutable("checkpoint", optional=True),
    ),
    object_rules=(name_rule(48, "it names the job's Service and pods"),),
)
