"""A sweep's trial records brought up to date from what its trial TrainingJobs say.

A record that has ended (Succeeded, Pruned, Failed) never changes state again. A running
trial's result follows its first objective's strategy (latest, best, min or max of what it
reported); a trial that succeeds without reporting an objective metric fails with reason
NoMetric; a trial whose TrainingJob fails carries that job's own reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from plinth.api.v1alpha1 import (
    AutoMLSweepSpec,
    Direction,
    Objective,
    ObjectiveStrategy,
    StepValue,
    TrainingJobPhase,
    TrialRecord,
    TrialState,
)
from plinth.api.v1alpha1.trainingjob import ReportedMetrics
from plinth.status.automlsweep_observed import ObservedTrial

FINAL_STATES = frozenset({TrialState.SUCCEEDED, TrialState.PRUNED, TrialState.FAILED})
#: Intermediate values kept per trial (the status field's bound); the oldest go first.
MAX_INTERMEDIATE_VALUES = 16
#: How long a created trial may be missing from the operator's view before it is lost.
MISSING_GRACE = timedelta(seconds=120)


def trial_value(objective: Objective, metrics: ReportedMetrics | None) -> float | None:
    """A trial's result for `objective` from what it reported; None if it never did."""
    if metrics is None:
        return None
    strategy = objective.strategy
    if strategy == ObjectiveStrategy.BEST:
        minimize = objective.direction == Direction.MINIMIZE
        strategy = ObjectiveStrategy.MIN if minimize else ObjectiveStrategy.MAX
    source = {
        ObjectiveStrategy.LATEST: metrics.latest,
        ObjectiveStrategy.MIN: metrics.min,
        ObjectiveStrategy.MAX: metrics.max,
    }[strategy]
    return source.get(objective.metric)


def is_final(record: TrialRecord) -> bool:
    return record.state in FINAL_STATES


def _with_progress(spec: AutoMLSweepSpec, record: TrialRecord, trial: ObservedTrial) -> TrialRecord:
    """A running trial's record with its newest first-objective value, if it has a new step."""
    metrics, metric = trial.status.metrics, spec.objectives[0].metric
    if metrics is None or metrics.step is None or metric not in metrics.latest:
        return record
    points = record.intermediate_values
    if points and points[-1].step >= metrics.step:
        return record
    point = StepValue(step=metrics.step, value=metrics.latest[metric])
    kept = (*points, point)[-MAX_INTERMEDIATE_VALUES:]
    return record.model_copy(update={"intermediate_values": kept})


def _ended(record: TrialRecord, state: TrialState, now: datetime, **changes: object) -> TrialRecord:
    return record.model_copy(
        update={"state": state, "completion_time": record.completion_time or now, **changes}
    )


def _succeeded(
    spec: AutoMLSweepSpec, record: TrialRecord, trial: ObservedTrial, now: datetime
) -> TrialRecord:
    values = {o.metric: trial_value(o, trial.status.metrics) for o in spec.objectives}
    missing = [metric for metric, value in values.items() if value is None]
    when = trial.status.completion_time or now
    if missing:
        reason = f"NoMetric: the trial succeeded without reporting {', '.join(missing)}"
        return _ended(record, TrialState.FAILED, when, reason=reason)
    found = {metric: float(value) for metric, value in values.items() if value is not None}
    return _ended(record, TrialState.SUCCEEDED, when, values=found)


def from_trial(
    spec: AutoMLSweepSpec, record: TrialRecord, trial: ObservedTrial, now: datetime
) -> TrialRecord:
    """`record` brought up to date with its TrainingJob's status."""
    record = record.model_copy(
        update={"gpu_hours": trial.gpu_hours, "start_time": record.start_time or trial.start_time}
    )
    if is_final(record):
        return record
    if trial.phase == TrainingJobPhase.SUCCEEDED:
        return _succeeded(spec, _with_progress(spec, record, trial), trial, now)
    if trial.phase == TrainingJobPhase.FAILED:
        return _ended(
            record, TrialState.FAILED, trial.status.completion_time or now, reason=trial.failure
        )
    running = trial.phase in (TrainingJobPhase.RUNNING, TrainingJobPhase.RESTARTING)
    state = TrialState.RUNNING if running else TrialState.PENDING
    return _with_progress(spec, record.model_copy(update={"state": state}), trial)


def recovered(trial: ObservedTrial, checkpoint_uri: str | None) -> TrialRecord:
    """The record of a trial found as a TrainingJob but missing from status (the operator
    stopped between creating the trial and recording it)."""
    return TrialRecord(
        name=trial.name,
        number=trial.number,
        state=TrialState.PENDING,
        parameters=dict(trial.parameters),
        sampler_state=dict(trial.sampler_state),
        checkpoint_uri=checkpoint_uri,
    )


def missing(record: TrialRecord, now: datetime) -> TrialRecord:
    """A recorded trial whose TrainingJob is not seen: lost once the grace period is over
    (a trial just created may not be in the operator's view yet)."""
    if is_final(record):
        return record
    created = record.start_time or now
    if now - created < MISSING_GRACE:
        return record
    return _ended(record, TrialState.FAILED, now, reason="TrialDeleted: its TrainingJob is gone")
