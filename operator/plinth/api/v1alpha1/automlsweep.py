"""The AutoMLSweep kind: a hyperparameter search that runs each trial as a TrainingJob.

The sweep asks an optimiser (Optuna) for parameters, substitutes them into
`trialTemplate`, runs the resulting TrainingJob, reads the objective metrics it reports,
and stops trials early when `earlyStopping` says they will not win. `budget` bounds the
number of trials, their parallelism, failures and GPU-hours.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated

from pydantic import Field, PlainValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from plinth.api.schema import (
    AGE_COLUMN,
    ApiModel,
    DnsSubdomain,
    KindInfo,
    ListMap,
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
from plinth.api.v1alpha1.trainingjob import TrainingJobSpec

MAX_TRIALS = 1000
#: How trialTemplate refers to a parameter: "${params.<name>}".
PARAMETER_PLACEHOLDER = "${{params.{name}}}"
#: Placeholders for the trial itself: its TrainingJob name and its number.
TRIAL_NAME_PLACEHOLDER = "${trial.name}"
TRIAL_NUMBER_PLACEHOLDER = "${trial.number}"

ParameterName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_./-]*$")
]


def _parse_parameter_value(value: object) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    raise PydanticCustomError(
        "parameter_value",
        "must be a number, a string or a boolean; got {value}",
        {"value": repr(value)},
    )


#: One value of a parameter: a number, a string or a boolean.
ParameterValue = Annotated[
    bool | int | float | str,
    PlainValidator(_parse_parameter_value),
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True}),
]


def _parse_choice(value: object) -> int | str:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return value
    raise PydanticCustomError(
        "categorical_value",
        "must be an integer or a string (quote other values: '0.1', 'true'); got {value}",
        {"value": repr(value)},
    )


#: One choice of a categorical parameter: an integer or a string. (Floats are better
#: searched as a float parameter with a step; CEL cannot see untyped lists, so choices
#: are int-or-string, a type the API server can check.)
Choice = Annotated[
    int | str,
    PlainValidator(_parse_choice, json_schema_input_type=int | str),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
ParameterValues = Annotated[Mapping[ParameterName, ParameterValue], Field(max_length=32)]
ObjectiveValues = Annotated[Mapping[MetricName, float], Field(max_length=4)]


# --------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------


class Direction(enum.StrEnum):
    """Whether lower or higher is better."""

    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class ObjectiveStrategy(enum.StrEnum):
    """Which of a trial's reported values is its result."""

    LATEST = "latest"
    BEST = "best"
    MIN = "min"
    MAX = "max"


class Objective(ApiModel):
    """A metric the trials report and the sweep optimises."""

    metric: MetricName = Field(
        description="Name of the metric the training code reports, e.g. val_loss."
    )
    direction: Direction = Field(description="minimize or maximize.")
    goal: float | None = Field(
        None,
        description=(
            "Stop the sweep once a trial reaches this value (single objective only). "
            "Unset: run until the budget is spent."
        ),
    )
    strategy: ObjectiveStrategy = Field(
        ObjectiveStrategy.LATEST,
        description=(
            "A trial's result: latest (its final report: what its last checkpoint holds), "
            "best (its best report over the run, by direction), min or max (its lowest or "
            "highest report)."
        ),
    )


# --------------------------------------------------------------------------------------
# Search algorithm and early stopping
# --------------------------------------------------------------------------------------


class AlgorithmName(enum.StrEnum):
    """Optuna samplers."""

    TPE = "tpe"
    RANDOM = "random"
    GRID = "grid"
    CMAES = "cmaes"
    GP = "gp"
    QMC = "qmc"


class Algorithm(ApiModel):
    """The optimiser that suggests each trial's parameters."""

    name: AlgorithmName = Field(
        AlgorithmName.TPE,
        description=(
            "tpe (Bayesian, good default), random, grid (every combination; float "
            "parameters need a step), cmaes (continuous spaces, single objective), gp "
            "(Gaussian process, few expensive trials), qmc (quasi-random, even coverage)."
        ),
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**32 - 1,
        description=(
            "Seed of the optimiser, for reproducible suggestions. Unset: Plinth picks one "
            "and records it in status.seed."
        ),
    )


class EarlyStoppingName(enum.StrEnum):
    """Optuna pruners."""

    NONE = "none"
    ASHA = "asha"
    MEDIAN = "median"
    HYPERBAND = "hyperband"


class EarlyStopping(ApiModel):
    """Stop trials whose intermediate results show they will not win."""

    name: EarlyStoppingName = Field(
        EarlyStoppingName.NONE,
        description=(
            "none, asha (successive halving), median (stop below the median of earlier "
            "trials at the same step) or hyperband. Judged on the first objective."
        ),
    )
    min_steps: int | None = Field(
        None,
        ge=1,
        description=(
            "Steps every trial runs before it can be stopped (asha/hyperband min_resource, "
            "median warm-up). Default 1."
        ),
    )
    max_steps: int | None = Field(
        None,
        ge=1,
        description="hyperband only: steps of a full trial. Default: the first trial's last step.",
    )
    reduction_factor: int | None = Field(
        None,
        ge=2,
        le=10,
        description="asha and hyperband only: keep 1 in this many trials per rung. Default 3.",
    )
    startup_trials: int | None = Field(
        None,
        ge=0,
        le=100,
        description="median only: trials that finish before any is stopped. Default 5.",
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[EarlyStopping]]:
        return (
            Rule(
                cel="self.name != 'none' || (!has(self.minSteps) && !has(self.maxSteps) && "
                "!has(self.reductionFactor) && !has(self.startupTrials))",
                message="name none takes no settings",
                field_path=".name",
                holds=lambda e: (
                    e.name != EarlyStoppingName.NONE
                    or (e.min_steps, e.max_steps, e.reduction_factor, e.startup_trials)
                    == (None, None, None, None)
                ),
            ),
            Rule(
                cel="!has(self.maxSteps) || self.name == 'hyperband'",
                message="maxSteps applies to hyperband only",
                field_path=".maxSteps",
                holds=lambda e: e.max_steps is None or e.name == EarlyStoppingName.HYPERBAND,
            ),
            Rule(
                cel="!has(self.reductionFactor) || self.name in ['asha', 'hyperband']",
                message="reductionFactor applies to asha and hyperband only",
                field_path=".reductionFactor",
                holds=lambda e: (
                    e.reduction_factor is None
                    or e.name in (EarlyStoppingName.ASHA, EarlyStoppingName.HYPERBAND)
                ),
            ),
            Rule(
                cel="!has(self.startupTrials) || self.name == 'median'",
                message="startupTrials applies to median only",
                field_path=".startupTrials",
                holds=lambda e: e.startup_trials is None or e.name == EarlyStoppingName.MEDIAN,
            ),
            Rule(
                cel="!has(self.minSteps) || !has(self.maxSteps) || self.minSteps <= self.maxSteps",
                message="minSteps must be less than or equal to maxSteps",
                field_path=".minSteps",
                holds=lambda e: (
                    e.min_steps is None or e.max_steps is None or e.min_steps <= e.max_steps
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------


class ParameterType(enum.StrEnum):
    """Kinds of search dimension."""

    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


def _is_whole(number: float | None) -> bool:
    return number is None or (math.isfinite(number) and number == int(number))


def _whole_cel(field_name: str) -> str:
    return f"(!has(self.{field_name}) || double(int(self.{field_name})) == self.{field_name})"


class Parameter(ApiModel):
    """One dimension of the search space."""

    name: ParameterName = Field(
        description="Parameter name; trialTemplate refers to it as ${params.<name>}."
    )
    type: ParameterType = Field(
        description="float or int (a range: min, max, log, step) or categorical (values)."
    )
    min: float | None = Field(None, description="Lowest value (float and int).")
    max: float | None = Field(None, description="Highest value, inclusive (float and int).")
    log: bool = Field(
        False,
        description="Sample on a log scale, e.g. for learning rates (needs min > 0, no step).",
    )
    step: float | None = Field(
        None,
        gt=0,
        description="Only values min, min+step, ... (float and int; int default 1).",
    )
    values: tuple[Choice, ...] | None = Field(
        None,
        min_length=1,
        max_length=128,
        description=(
            "The choices of a categorical parameter: integers or strings, e.g. [adam, sgd] "
            "or [32, 64, 128]. For evenly spaced floats use type float with a step."
        ),
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Parameter]]:
        return (
            Rule(
                cel="self.type == 'categorical' || (has(self.min) && has(self.max))",
                message="float and int parameters need min and max",
                field_path=".min",
                holds=lambda p: (
                    p.type == ParameterType.CATEGORICAL or (p.min is not None and p.max is not None)
                ),
            ),
            Rule(
                cel="self.type != 'categorical' || has(self.values)",
                message="categorical parameters need values",
                field_path=".values",
                holds=lambda p: p.type != ParameterType.CATEGORICAL or p.values is not None,
            ),
            Rule(
                cel="self.type == 'categorical' || !has(self.values)",
                message="values applies to categorical parameters only; use min and max",
                field_path=".values",
                holds=lambda p: p.type == ParameterType.CATEGORICAL or p.values is None,
            ),
            Rule(
                cel="self.type != 'categorical' || "
                "(!has(self.min) && !has(self.max) && !has(self.step) && !self.log)",
                message="categorical parameters take values, not min, max, step or log",
                field_path=".type",
                holds=lambda p: (
                    p.type != ParameterType.CATEGORICAL
                    or (p.min is None and p.max is None and p.step is None and not p.log)
                ),
            ),
            Rule(
                cel="!has(self.min) || !has(self.max) || self.min <= self.max",
                message="min must be less than or equal to max",
                field_path=".min",
                holds=lambda p: p.min is None or p.max is None or p.min <= p.max,
            ),
            Rule(
                cel="!self.log || (has(self.min) && self.min > 0.0)",
                message="log needs min > 0",
                field_path=".log",
                holds=lambda p: not p.log or (p.min is not None and p.min > 0),
            ),
            Rule(
                cel="!(self.log && has(self.step))",
                message="set log or step, not both",
                field_path=".step",
                holds=lambda p: not (p.log and p.step is not None),
            ),
            Rule(
                cel=f"self.type != 'int' || ({_whole_cel('min')} && {_whole_cel('max')} && "
                f"{_whole_cel('step')})",
                message="min, max and step of an int parameter must be whole numbers",
                field_path=".type",
                holds=lambda p: (
                    p.type != ParameterType.INT or all(_is_whole(n) for n in (p.min, p.max, p.step))
                ),
            ),
        )


# --------------------------------------------------------------------------------------
# Budget and warm start
# --------------------------------------------------------------------------------------


class Budget(ApiModel):
    """How much the sweep may spend. Raise maxTrials later to add trials to a finished sweep."""

    max_trials: int = Field(
        ge=1, le=MAX_TRIALS, description="Trials to run in total (pruned trials count)."
    )
    parallel_trials: int = Field(1, ge=1, le=100, description="Trials running at the same time.")
    max_failed_trials: int = Field(
        3,
        ge=0,
        le=MAX_TRIALS,
        description=(
            "Failed trials tolerated before the sweep is Failed (a broken trialTemplate "
            "should not burn the whole budget). Pruned trials are not failures."
        ),
    )
    max_gpu_hours: float | None = Field(
        None,
        gt=0,
        description="GPU-hours all trials together may use; no new trial starts past it.",
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[Budget]]:
        return (
            Rule(
                cel="self.parallelTrials <= self.maxTrials",
                message="parallelTrials must be less than or equal to maxTrials",
                field_path=".parallelTrials",
                holds=lambda b: b.parallel_trials <= b.max_trials,
            ),
        )


class KnownTrial(ApiModel):
    """A result known from elsewhere, or a configuration to try first."""

    parameters: ParameterValues = Field(
        description="Value of each parameter, e.g. {lr: 0.001, optimizer: adam}."
    )
    values: ObjectiveValues | None = Field(
        None,
        description=(
            "Result for each objective metric. With values, the optimiser learns from it "
            "without running it; without, it runs as one of the first trials."
        ),
    )


class WarmStart(ApiModel):
    """Start from what is already known instead of from nothing."""

    from_sweeps: Annotated[tuple[DnsSubdomain, ...], ListSet()] = Field(
        (),
        max_length=16,
        description=(
            "AutoMLSweeps in this namespace whose finished trials seed the optimiser; their "
            "parameters must match this sweep's by name."
        ),
    )
    trials: tuple[KnownTrial, ...] = Field(
        (), max_length=100, description="Known results, or configurations to try first."
    )


# --------------------------------------------------------------------------------------
# Spec
# --------------------------------------------------------------------------------------


def _names_declared(spec: AutoMLSweepSpec) -> bool:
    declared = {p.name for p in spec.parameters}
    trials = spec.warm_start.trials if spec.warm_start else ()
    return all(set(trial.parameters) <= declared for trial in trials)


_PARAMETER_REFERENCE = re.compile(r"\$\{params\.([^}]*)\}")
_TRIAL_REFERENCE = re.compile(r"\$\{trial\.([^}]*)\}")
#: What `${trial.<field>}` may name (TRIAL_NAME_PLACEHOLDER, TRIAL_NUMBER_PLACEHOLDER).
_TRIAL_FIELDS = frozenset({"name", "number"})


def _unknown_references(spec: AutoMLSweepSpec) -> list[str]:
    """The placeholders of the trial template that name no declared parameter and no
    trial field, as written (e.g. "${params.momentum}", "${trial.nmae}")."""
    text = json.dumps(spec.trial_template.to_dict())
    declared = {p.name for p in spec.parameters}
    parameters = set(_PARAMETER_REFERENCE.findall(text)) - declared
    trial = set(_TRIAL_REFERENCE.findall(text)) - _TRIAL_FIELDS
    return [PARAMETER_PLACEHOLDER.format(name=n) for n in sorted(parameters)] + [
        f"${{trial.{n}}}" for n in sorted(trial)
    ]


def _references_declared(spec: AutoMLSweepSpec) -> bool:
    return not _unknown_references(spec)


def _undeclared_named(spec: AutoMLSweepSpec) -> str:
    return "unknown " + ", ".join(_unknown_references(spec))


def _metrics_declared(spec: AutoMLSweepSpec) -> bool:
    declared = {o.metric for o in spec.objectives}
    trials = spec.warm_start.trials if spec.warm_start else ()
    return all(set(trial.values or {}) <= declared for trial in trials)


class AutoMLSweepSpec(ApiModel):
    """What to optimise, over which parameters, with which budget, by running what."""

    objectives: Annotated[tuple[Objective, ...], ListMap("metric")] = Field(
        min_length=1,
        max_length=4,
        description=(
            "Metrics to optimise. Several objectives give a Pareto front "
            "(status.paretoFront) instead of a single best trial."
        ),
    )
    algorithm: Algorithm = Field(
        default_factory=Algorithm,
        json_schema_extra=object_default(Algorithm),
        description="The optimiser suggesting parameters.",
    )
    early_stopping: EarlyStopping = Field(
        default_factory=EarlyStopping,
        json_schema_extra=object_default(EarlyStopping),
        description="Stopping unpromising trials early (pruning).",
    )
    parameters: Annotated[tuple[Parameter, ...], ListMap("name")] = Field(
        min_length=1, max_length=32, description="The search space."
    )
    budget: Budget = Field(description="Limits on trials, parallelism, failures and GPU-hours.")
    trial_template: TrainingJobSpec = Field(
        description=(
            "The TrainingJob spec each trial runs. In its strings, ${params.<name>} becomes "
            "the trial's parameter value, ${trial.name} its TrainingJob name and "
            "${trial.number} its number; e.g. args: [--lr, '${params.lr}'] and "
            "checkpoint.uri: s3://bucket/sweeps/${trial.name}, so trials never share "
            "checkpoints."
        ),
    )
    warm_start: WarmStart | None = Field(
        None, description="Earlier sweeps or known results to learn from first."
    )

    @classmethod
    def cross_field_rules(cls) -> Sequence[Rule[AutoMLSweepSpec]]:
        return (
            Rule(
                cel="size(self.objectives) == 1 || self.objectives.all(o, !has(o.goal))",
                message="goal applies to a single objective only",
                field_path=".objectives",
                holds=lambda s: len(s.objectives) == 1 or all(o.goal is None for o in s.objectives),
            ),
            Rule(
                cel="self.earlyStopping.name == 'none' || size(self.objectives) == 1",
                message="earlyStopping needs a single objective",
                field_path=".earlyStopping",
                holds=lambda s: (
                    s.early_stopping.name == EarlyStoppingName.NONE or len(s.objectives) == 1
                ),
            ),
            Rule(
                cel="self.algorithm.name != 'cmaes' || size(self.objectives) == 1",
                message="algorithm cmaes optimises a single objective",
                field_path=".algorithm",
                holds=lambda s: s.algorithm.name != AlgorithmName.CMAES or len(s.objectives) == 1,
            ),
            Rule(
                cel="!(self.algorithm.name in ['cmaes', 'qmc']) || "
                "self.parameters.all(p, p.type != 'categorical')",
                message="algorithms cmaes and qmc search float and int parameters only",
                field_path=".algorithm",
                holds=lambda s: (
                    s.algorithm.name not in (AlgorithmName.CMAES, AlgorithmName.QMC)
                    or all(p.type != ParameterType.CATEGORICAL for p in s.parameters)
                ),
            ),
            Rule(
                cel="self.algorithm.name != 'grid' || "
                "self.parameters.all(p, p.type != 'float' || has(p.step))",
                message="algorithm grid needs a step on every float parameter",
                field_path=".parameters",
                holds=lambda s: (
                    s.algorithm.name != AlgorithmName.GRID
                    or all(
                        p.type != ParameterType.FLOAT or p.step is not None for p in s.parameters
                    )
                ),
            ),
            Rule(
                cel=None,  # placeholders sit anywhere in the template's strings
                message=(
                    "trialTemplate may only refer to declared parameters as ${params.<name>} "
                    "and to the trial as ${trial.name} or ${trial.number}"
                ),
                field_path=".trialTemplate",
                holds=_references_declared,
                detail=_undeclared_named,
            ),
            Rule(
                cel=None,  # parameter values have no single type, so CEL cannot see them
                message="warmStart.trials[].parameters may only name parameters of the sweep",
                field_path=".warmStart",
                holds=_names_declared,
            ),
            Rule(
                cel="!has(self.warmStart) || !has(self.warmStart.trials) || "
                "self.warmStart.trials.all(t, !has(t.values) || "
                "t.values.all(k, self.objectives.exists(o, o.metric == k)))",
                message="warmStart.trials[].values may only name objective metrics",
                field_path=".warmStart",
                holds=_metrics_declared,
            ),
        )

    def parameter(self, name: str) -> Parameter:
        """The parameter called `name`."""
        return next(p for p in self.parameters if p.name == name)


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


class AutoMLSweepPhase(enum.StrEnum):
    """A one-word summary for `kubectl get`."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class AutoMLSweepConditionType(enum.StrEnum):
    """Condition types an AutoMLSweep reports."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialState(enum.StrEnum):
    """Where a trial stands."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    PRUNED = "Pruned"
    FAILED = "Failed"


class TrialCounts(StatusModel):
    """Trials by state."""

    total: int = Field(0, ge=0, description="Trials created so far.")
    pending: int = Field(0, ge=0, description="Trials waiting for their nodes.")
    running: int = Field(0, ge=0, description="Trials running.")
    succeeded: int = Field(0, ge=0, description="Trials that finished with a result.")
    pruned: int = Field(0, ge=0, description="Trials stopped early by earlyStopping.")
    failed: int = Field(0, ge=0, description="Trials that failed.")


class StepValue(StatusModel):
    """An intermediate value of the first objective."""

    step: int = Field(ge=0, description="Training step.")
    value: float = Field(description="Value of the first objective at that step.")


class TrialRecord(StatusModel):
    """One trial, enough to rebuild the optimiser from status alone."""

    name: DnsSubdomain = Field(description="Name of the trial's TrainingJob.")
    number: int = Field(ge=0, description="Trial number, from 0 in the order of creation.")
    state: TrialState = Field(description="Pending, Running, Succeeded, Pruned or Failed.")
    parameters: ParameterValues = Field(
        default_factory=dict, description="The parameter values the trial ran with."
    )
    values: ObjectiveValues = Field(
        default_factory=dict, description="The trial's result for each objective metric."
    )
    intermediate_values: tuple[StepValue, ...] = Field(
        (),
        max_length=16,
        description="First-objective values at the steps early stopping judged (at most 16).",
    )
    gpu_hours: float = Field(0, ge=0, description="GPU-hours the trial used.")
    checkpoint_uri: str | None = Field(
        None, max_length=1024, description="The trial's checkpoint.uri after substitution."
    )
    reason: str | None = Field(
        None, max_length=1024, description="Why the trial failed or was pruned."
    )
    sampler_state: Mapping[str, str] = Field(
        default_factory=dict,
        max_length=16,
        description=(
            "The optimiser's own bookkeeping of this trial (Optuna system attributes such as "
            "a grid cell or the pruning rungs it passed), JSON-encoded, so that a study "
            "rebuilt from status continues exactly where it was."
        ),
    )
    start_time: Timestamp | None = Field(None, description="When the trial started.")
    completion_time: Timestamp | None = Field(None, description="When the trial finished.")


class BestTrial(StatusModel):
    """The trial with the best result so far."""

    name: DnsSubdomain = Field(description="Name of the trial's TrainingJob.")
    number: int = Field(ge=0, description="Trial number.")
    parameters: ParameterValues = Field(
        default_factory=dict, description="The parameter values it ran with."
    )
    value: float = Field(description="Its result for the first objective.")
    values: ObjectiveValues = Field(
        default_factory=dict, description="Its result for each objective metric."
    )
    checkpoint_uri: str | None = Field(
        None,
        max_length=1024,
        description="Its checkpoint location, which ModelDeployment fromSweep serves.",
    )


class AutoMLSweepStatus(StatusModel):
    """Progress of the sweep and what it found."""

    phase: AutoMLSweepPhase | None = Field(
        None, description="Pending, Running, Succeeded or Failed."
    )
    conditions: ConditionList = Field(
        (),
        description=(
            "Running, Succeeded (reason GoalReached or BudgetSpent), Failed (reason e.g. "
            "TooManyFailedTrials), each with reason and message."
        ),
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation this status was computed from."
    )
    seed: int | None = Field(
        None, ge=0, description="The optimiser's seed: spec.algorithm.seed or one Plinth picked."
    )
    trial_counts: TrialCounts = Field(default_factory=TrialCounts, description="Trials by state.")
    trials: Annotated[tuple[TrialRecord, ...], ListMap("name")] = Field(
        (), max_length=MAX_TRIALS, description="Every trial, in order of creation."
    )
    best_trial: BestTrial | None = Field(
        None,
        description=(
            "The best trial so far by the first objective (with several objectives: the "
            "best by the first objective among paretoFront)."
        ),
    )
    pareto_front: tuple[DnsSubdomain, ...] = Field(
        (),
        max_length=64,
        description="With several objectives: names of the trials no other trial beats on all.",
    )
    gpu_hours: float = Field(0, ge=0, description="GPU-hours all trials used together.")
    start_time: Timestamp | None = Field(None, description="When the first trial was created.")
    completion_time: Timestamp | None = Field(
        None, description="When the sweep Succeeded or Failed."
    )


AUTOML_SWEEP = KindInfo(
    group=API_GROUP,
    version=API_VERSION,
    kind="AutoMLSweep",
    plural="automlsweeps",
    short_names=("sweep",),
    description=(
        "A hyperparameter search: each trial is a TrainingJob made from trialTemplate with "
        "parameters an Optuna optimiser suggests; trials are stopped early when they cannot "
        "win, and the best is recorded."
    ),
    spec_model=AutoMLSweepSpec,
    status_model=AutoMLSweepStatus,
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", "string", "Summary of the sweep's state."),
        PrinterColumn("Trials", ".status.trialCounts.total", "integer", "Trials created."),
        PrinterColumn("Best", ".status.bestTrial.value", "number", "Best first-objective value."),
        PrinterColumn(
            "Running", ".status.trialCounts.running", "integer", "Trials running now.", 1
        ),
        PrinterColumn("GPU-hours", ".status.gpuHours", "number", "GPU-hours spent.", 1),
        AGE_COLUMN,
    ),
    spec_transition_rules=(
        immutable("objectives", optional=False),
        immutable("algorithm", optional=False),
        immutable("earlyStopping", optional=False),
        immutable("parameters", optional=False),
        immutable("trialTemplate", optional=False),
        immutable("warmStart", optional=True),
    ),
    object_rules=(name_rule(40, "trials are named <sweep>-<number>"),),
)
