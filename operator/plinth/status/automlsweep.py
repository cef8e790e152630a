"""The AutoMLSweep planner: spec, previous status and observed trials in; the trials to
start or stop, the new status and the Events out.

Pure and level-based: trial records (status) are merged with the trial TrainingJobs seen,
the pruner judges running trials on their newest values, the budget and goal decide whether
the sweep goes on, and new trials are suggested by a study rebuilt from the records. Trial
numbers are contiguous: a trial is created before it is recorded, and one found but not
recorded is recovered from its TrainingJob, so a reconcile killed anywhere neither loses a
trial nor makes one twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from plinth.api.v1alpha1 import (
    AutoMLSweepPhase,
    AutoMLSweepSpec,
    AutoMLSweepStatus,
    BestTrial,
    ConditionStatus,
    Direction,
    EarlyStoppingName,
    InvalidSpecError,
    KnownTrial,
    TrialCounts,
    TrialRecord,
    TrialState,
)
from plinth.api.wellknown import OwnerMeta, trial_name
from plinth.status.acceptance import accepted_update
from plinth.status.automlsweep_observed import ObservedSweep
from plinth.status.automlsweep_trials import from_trial, is_final, missing, recovered
from plinth.status.conditions import ConditionUpdate, set_condition
from plinth.status.plan import EventToPost
from plinth.tuning.optimizer import AlgorithmUnavailableError, default_seed
from plinth.tuning.study import SweepHistory, judge, pareto_front, suggest
from plinth.tuning.template import format_value, trial_spec

TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE
#: How soon to look again while a created trial is not yet in the operator's view.
RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class TrialToApply:
    """A trial TrainingJob to apply: a new one, or an existing one being stopped."""

    number: int
    name: str
    parameters: Mapping[str, Any]
    sampler_state: Mapping[str, str]
    spec: Mapping[str, Any]
    #: Why the sweep stops the trial (None: it runs); a stopped trial's TrainingJob is suspended.
    stopped: str | None = None

    @property
    def suspend(self) -> bool:
        return self.stopped is not None


@dataclass(frozen=True)
class SweepPlan:
    """What the reconcile of a sweep should do."""

    status: AutoMLSweepStatus
    trials: tuple[TrialToApply, ...] = ()
    events: tuple[EventToPost, ...] = ()
    check_again_after: float | None = None


@dataclass(frozen=True)
class _Verdict:
    """Whether the sweep goes on, and the conditions that say so."""

    phase: AutoMLSweepPhase
    updates: tuple[ConditionUpdate, ...]
    start_new: bool = False


@dataclass
class _Round:
    """The records being brought up to date in one reconcile, and what it decided."""

    spec: AutoMLSweepSpec
    owner: OwnerMeta
    seed: int
    records: dict[int, TrialRecord]
    now: datetime
    to_apply: list[TrialToApply]
    events: list[EventToPost]
    earlier: Sequence[KnownTrial] = ()

    def history(self) -> SweepHistory:
        ordered = [self.records[n] for n in sorted(self.records)]
        study = f"{self.owner.namespace}/{self.owner.name}"
        return SweepHistory(
            spec=self.spec,
            seed=self.seed,
            study_name=study,
            records=ordered,
            earlier=self.earlier,
        )

    def spec_of(self, record: TrialRecord) -> dict[str, Any]:
        return trial_spec(self.spec.trial_template, record.parameters, record.name, record.number)

    def stop(self, record: TrialRecord, reason: str) -> None:
        """Record a running trial as Pruned and suspend its TrainingJob (GPUs freed)."""
        self.records[record.number] = record.model_copy(
            update={"state": TrialState.PRUNED, "reason": reason, "completion_time": self.now}
        )
        self.to_apply.append(_applied(record, self.spec_of(record), stopped=reason))


def _applied(
    record: TrialRecord, spec: Mapping[str, Any], stopped: str | None = None
) -> TrialToApply:
    return TrialToApply(
        number=record.number,
        name=record.name,
        parameters=dict(record.parameters),
        sampler_state=dict(record.sampler_state),
        spec=spec,
        stopped=stopped,
    )


def _update(kind: str, status: ConditionStatus, reason: str, message: str) -> ConditionUpdate:
    return ConditionUpdate(type=kind, status=status, reason=reason, message=message)


def _describe(parameters: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={format_value(value)}" for name, value in parameters.items())


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------


def _merge_records(
    spec: AutoMLSweepSpec,
    previous: AutoMLSweepStatus,
    observed: ObservedSweep,
    now: datetime,
) -> dict[int, TrialRecord]:
    records = {record.number: record for record in previous.trials}
    for number, trial in observed.trials.items():
        record = records.get(number)
        if record is None:
            uri = spec.trial_template.checkpoint.uri if spec.trial_template.checkpoint else None
            record = recovered(trial, uri).model_copy(update={"start_time": now})
        records[number] = from_trial(spec, record, trial, now)
    for number, record in records.items():
        if number not in observed.trials:
            records[number] = missing(record, now)
    return records


def _trial_events(
    before: Mapping[int, TrialRecord], after: Mapping[int, TrialRecord]
) -> list[EventToPost]:
    events = []
    for number, record in sorted(after.items()):
        old = before.get(number)
        if not is_final(record) or (old is not None and is_final(old)):
            continue
        if record.state == TrialState.SUCCEEDED:
            values = ", ".join(f"{k}={v:g}" for k, v in record.values.items())
            events.append(EventToPost("TrialSucceeded", f"Trial {record.name}: {values}."))
        elif record.state == TrialState.PRUNED:
            events.append(EventToPost("TrialPruned", f"Trial {record.name}: {record.reason}."))
        else:
            events.append(
                EventToPost("TrialFailed", f"Trial {record.name}: {record.reason}.", warning=True)
            )
    return events


# --------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------


def _judge_running(round_: _Round, before: Mapping[int, TrialRecord]) -> None:
    """Ask the pruner about every running trial that reported a new value."""
    if round_.spec.early_stopping.name == EarlyStoppingName.NONE:
        return
    for number in sorted(round_.records):
        record = round_.records[number]
        old = before.get(number)
        old_points = old.intermediate_values if old else ()
        if record.state != TrialState.RUNNING or record.intermediate_values == old_points:
            continue
        pruned, state = judge(round_.history(), number)
        record = record.model_copy(update={"sampler_state": state})
        round_.records[number] = record
        if pruned:
            point = record.intermediate_values[-1]
            metric = round_.spec.objectives[0].metric
            name = round_.spec.early_stopping.name.value
            round_.stop(
                record.model_copy(update={"values": {metric: point.value}}),
                f"stopped by {name} at step {point.step} ({metric} {point.value:g})",
            )


# --------------------------------------------------------------------------------------
# Results and budget
# --------------------------------------------------------------------------------------


def _better(direction: Direction, a: float, b: float) -> bool:
    return a < b if direction == Direction.MINIMIZE else a > b


def _best(spec: AutoMLSweepSpec, records: Sequence[TrialRecord]) -> TrialRecord | None:
    first = spec.objectives[0]
    candidates = [
        r for r in records if r.state == TrialState.SUCCEEDED and first.metric in r.values
    ]
    if len(spec.objectives) > 1:
        front = set(pareto_front(spec, records))
        candidates = [r for r in candidates if r.number in front]
    best: TrialRecord | None = None
    for record in candidates:
        if best is None or _better(
            first.direction, record.values[first.metric], best.values[first.metric]
        ):
            best = record
    return best


def _goal_reached(spec: AutoMLSweepSpec, best: TrialRecord | None) -> bool:
    objective = spec.objectives[0]
    if objective.goal is None or best is None:
        return False
    value = best.values[objective.metric]
    return value == objective.goal or _better(objective.direction, value, objective.goal)


def _gpu_hours(records: Mapping[int, TrialRecord]) -> float:
    return round(sum(record.gpu_hours for record in records.values()), 6)


def _budget_left(spec: AutoMLSweepSpec, records: Mapping[int, TrialRecord]) -> str | None:
    """None while new trials may start; else why not."""
    budget = spec.budget
    if len(records) >= budget.max_trials:
        return f"maxTrials {budget.max_trials} reached"
    if budget.max_gpu_hours is not None and _gpu_hours(records) >= budget.max_gpu_hours:
        return f"maxGpuHours {budget.max_gpu_hours:g} spent"
    return None


def _last_failure(records: Mapping[int, TrialRecord]) -> str:
    failed = [r for r in records.values() if r.state == TrialState.FAILED]
    last = max(failed, key=lambda r: r.number)
    return f"the last, {last.name}, failed: {last.reason}"


def _verdict(round_: _Round, best: TrialRecord | None) -> _Verdict:
    spec, records = round_.spec, round_.records
    failed = sum(r.state == TrialState.FAILED for r in records.values())
    limit = spec.budget.max_failed_trials
    if failed > limit:
        message = f"{failed} trials failed (maxFailedTrials {limit}); {_last_failure(records)}"
        return _ended_verdict(AutoMLSweepPhase.FAILED, "TooManyFailedTrials", message)
    if _goal_reached(spec, best):
        assert best is not None
        value = best.values[spec.objectives[0].metric]
        message = f"Trial {best.name} reached the goal: {value:g}."
        return _ended_verdict(AutoMLSweepPhase.SUCCEEDED, "GoalReached", message)
    return _Verdict(phase=AutoMLSweepPhase.RUNNING, updates=(), start_new=True)


def _ended_verdict(phase: AutoMLSweepPhase, reason: str, message: str) -> _Verdict:
    succeeded = phase == AutoMLSweepPhase.SUCCEEDED
    return _Verdict(
        phase=phase,
        updates=(
            _update("Succeeded", TRUE if succeeded else FALSE, reason, message),
            _update("Failed", FALSE if succeeded else TRUE, reason, message),
            _update("Running", FALSE, reason, "The sweep has ended."),
        ),
    )


# --------------------------------------------------------------------------------------
# New trials
# --------------------------------------------------------------------------------------


def _unfinished(records: Mapping[int, TrialRecord]) -> int:
    return sum(not is_final(record) for record in records.values())


def _start_trials(round_: _Round) -> str | None:
    """Start trials up to parallelTrials while the budget allows; returns why no more can
    start (None: some may start later)."""
    spec = round_.spec
    while (why := _budget_left(spec, round_.records)) is None:
        if _unfinished(round_.records) >= spec.budget.parallel_trials:
            return None
        suggestion = suggest(round_.history())
        if suggestion is None:
            return "every point of the grid was tried"
        number = len(round_.records)
        record = TrialRecord(
            name=trial_name(round_.owner.name, number),
            number=number,
            state=TrialState.PENDING,
            parameters=suggestion.parameters,
            sampler_state=suggestion.sampler_state,
            start_time=round_.now,
        )
        trial = round_.spec_of(record)
        checkpoint = (trial.get("checkpoint") or {}).get("uri")
        record = record.model_copy(update={"checkpoint_uri": checkpoint})
        round_.records[number] = record
        round_.to_apply.append(_applied(record, trial))
        round_.events.append(
            EventToPost("TrialCreated", f"Trial {record.name}: {_describe(record.parameters)}.")
        )
    return why


def _running_verdict(round_: _Round, exhausted: str | None) -> _Verdict:
    records = round_.records
    unfinished = _unfinished(records)
    done = len(records) - unfinished
    if exhausted is not None and unfinished == 0:
        return _ended_verdict(
            AutoMLSweepPhase.SUCCEEDED, "BudgetExhausted", f"All {done} trials ended; {exhausted}."
        )
    message = f"{unfinished} trial(s) running, {done} of {round_.spec.budget.max_trials} ended."
    return _Verdict(
        phase=AutoMLSweepPhase.RUNNING,
        updates=(
            _update("Running", TRUE, "TrialsRunning", message),
            _update("Succeeded", FALSE, "TrialsRunning", message),
            _update("Failed", FALSE, "TrialsRunning", message),
        ),
    )


def _cannot_start(reason: str, message: str) -> _Verdict:
    return _ended_verdict(AutoMLSweepPhase.FAILED, reason, message)


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


def _counts(records: Mapping[int, TrialRecord]) -> TrialCounts:
    states = [record.state for record in records.values()]
    return TrialCounts(
        total=len(states),
        pending=states.count(TrialState.PENDING),
        running=states.count(TrialState.RUNNING),
        succeeded=states.count(TrialState.SUCCEEDED),
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAILED),
    )


def _best_trial(spec: AutoMLSweepSpec, best: TrialRecord | None) -> BestTrial | None:
    if best is None:
        return None
    return BestTrial(
        name=best.name,
        number=best.number,
        parameters=best.parameters,
        value=best.values[spec.objectives[0].metric],
        values=best.values,
        checkpoint_uri=best.checkpoint_uri,
    )


def _status(round_: _Round, previous: AutoMLSweepStatus, verdict: _Verdict) -> AutoMLSweepStatus:
    spec, owner, now, records = round_.spec, round_.owner, round_.now, round_.records
    ordered = tuple(records[n] for n in sorted(records))
    conditions = set_condition(previous.conditions, accepted_update(None), owner.generation, now)
    for update in verdict.updates:
        conditions = set_condition(conditions, update, owner.generation, now)
    ended = verdict.phase in (AutoMLSweepPhase.SUCCEEDED, AutoMLSweepPhase.FAILED)
    front = pareto_front(spec, ordered) if len(spec.objectives) > 1 else []
    starts = [r.start_time for r in ordered if r.start_time is not None]
    return previous.model_copy(
        update={
            "phase": verdict.phase,
            "conditions": conditions,
            "observed_generation": owner.generation,
            "seed": round_.seed,
            "trial_counts": _counts(records),
            "trials": ordered,
            "best_trial": _best_trial(spec, _best(spec, ordered)),
            "pareto_front": tuple(records[n].name for n in front),
            "gpu_hours": _gpu_hours(records),
            "start_time": previous.start_time or (min(starts) if starts else None),
            "completion_time": (previous.completion_time or now) if ended else None,
        }
    )


def _pending_unseen(round_: _Round, observed: ObservedSweep) -> list[TrialToApply]:
    """Recorded, unfinished trials not in view: applied again (a no-op when they exist)."""
    return [
        _applied(record, round_.spec_of(record))
        for number, record in sorted(round_.records.items())
        if number not in observed.trials and not is_final(record)
    ]


def plan_sweep(
    spec: AutoMLSweepSpec,
    owner: OwnerMeta,
    previous: AutoMLSweepStatus,
    observed: ObservedSweep,
    now: datetime,
    *,
    earlier: Sequence[KnownTrial] = (),
) -> SweepPlan:
    """Decide which trials to start or stop, and what the sweep's status says. `earlier`
    are results of earlier sweeps (warmStart.fromSweeps) the optimiser learns from."""
    seed = spec.algorithm.seed if spec.algorithm.seed is not None else default_seed(owner.ref.uid)
    before = {record.number: record for record in previous.trials}
    records = _merge_records(spec, previous, observed, now)
    round_ = _Round(spec, owner, seed, records, now, to_apply=[], events=[], earlier=earlier)
    round_.to_apply.extend(_pending_unseen(round_, observed))
    _judge_running(round_, before)
    verdict = _verdict(round_, _best(spec, list(round_.records.values())))
    if verdict.start_new:
        try:
            verdict = _running_verdict(round_, _start_trials(round_))
        except AlgorithmUnavailableError as error:
            verdict = _cannot_start("AlgorithmUnavailable", str(error))
        except InvalidSpecError as error:
            verdict = _cannot_start("InvalidTrialTemplate", f"a trial's TrainingJob: {error}")
    if verdict.phase != AutoMLSweepPhase.RUNNING:
        for record in [r for r in round_.records.values() if not is_final(r)]:
            round_.stop(record, f"stopped: the sweep {verdict.updates[0].reason}")
    status = _status(round_, previous, verdict)
    events = [*round_.events, *_trial_events(before, round_.records)]
    unseen = any(n not in observed.trials and not is_final(r) for n, r in round_.records.items())
    return SweepPlan(
        status=status,
        trials=tuple(round_.to_apply),
        events=tuple(events),
        check_again_after=RECHECK_SECONDS if unseen else None,
    )
