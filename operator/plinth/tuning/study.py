"""An Optuna study rebuilt from a sweep's recorded trials: ask, judge (prune) and rank.

Every call rebuilds an in-memory study from the records alone (warm-start results first,
then trials 0..N-1 in order, each with its parameters, values, intermediate values, state
and Optuna's own per-trial bookkeeping), so nothing lives outside the sweep's status and an
operator killed at any line loses nothing. Samplers are seeded per trial (see `optimizer`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from plinth.api.v1alpha1 import (
    AutoMLSweepSpec,
    Direction,
    KnownTrial,
    TrialRecord,
)
from plinth.api.v1alpha1 import TrialState as RecordState
from plinth.tuning.optimizer import make_pruner, make_sampler
from plinth.tuning.space import distributions, internal_parameters

OPTUNA_STATES = {
    RecordState.SUCCEEDED: TrialState.COMPLETE,
    RecordState.PRUNED: TrialState.PRUNED,
    RecordState.FAILED: TrialState.FAIL,
    RecordState.PENDING: TrialState.RUNNING,
    RecordState.RUNNING: TrialState.RUNNING,
}


@dataclass(frozen=True)
class SweepHistory:
    """What a study is rebuilt from: the spec, its seed and name, and the trials so far."""

    spec: AutoMLSweepSpec
    seed: int
    #: Names the study (Hyperband assigns brackets by study name and trial number).
    study_name: str
    #: Trials 0..N-1, in number order.
    records: Sequence[TrialRecord]
    #: Results of earlier sweeps (warmStart.fromSweeps), learned from before the first trial.
    earlier: Sequence[KnownTrial] = ()

    @property
    def known_results(self) -> tuple[KnownTrial, ...]:
        warm = self.spec.warm_start
        given = tuple(t for t in (warm.trials if warm else ()) if t.values is not None)
        return (*given, *self.earlier)

    @property
    def configurations_first(self) -> tuple[KnownTrial, ...]:
        """Warm-start configurations without results: the first trials run them."""
        warm = self.spec.warm_start
        return tuple(t for t in (warm.trials if warm else ()) if t.values is None)


@dataclass(frozen=True)
class Suggestion:
    """A new trial's parameters and the sampler's bookkeeping of it."""

    parameters: dict[str, Any]
    sampler_state: dict[str, str]


def encode_state(system_attrs: Mapping[str, Any]) -> dict[str, str]:
    """Optuna's per-trial bookkeeping as status stores it (JSON text per key)."""
    return {key: json.dumps(value, sort_keys=True) for key, value in system_attrs.items()}


def decode_state(state: Mapping[str, str]) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in state.items()}


def _directions(spec: AutoMLSweepSpec) -> list[StudyDirection]:
    return [
        StudyDirection.MINIMIZE if o.direction == Direction.MINIMIZE else StudyDirection.MAXIMIZE
        for o in spec.objectives
    ]


def _values(spec: AutoMLSweepSpec, values: Mapping[str, float]) -> list[float] | None:
    found = [values.get(o.metric) for o in spec.objectives]
    return None if any(v is None for v in found) else [float(v) for v in found if v is not None]


def _frozen(spec: AutoMLSweepSpec, record: TrialRecord) -> FrozenTrial:
    space = distributions(spec.parameters)
    state = OPTUNA_STATES[record.state]
    values = _values(spec, record.values) if state == TrialState.COMPLETE else None
    if state == TrialState.COMPLETE and values is None:
        state = TrialState.FAIL
    return create_trial(
        state=state,
        values=values,
        params=internal_parameters(record.parameters, space),
        distributions={name: space[name] for name in record.parameters if name in space},
        intermediate_values={point.step: point.value for point in record.intermediate_values},
        system_attrs=decode_state(record.sampler_state),
    )


def rebuild(history: SweepHistory) -> optuna.Study:
    """The study as it stood after the recorded trials (its sampler is set per ask)."""
    spec = history.spec
    study = optuna.create_study(
        storage=InMemoryStorage(),
        study_name=history.study_name,
        directions=_directions(spec),
        pruner=make_pruner(spec),
    )
    space = distributions(spec.parameters)
    for known in history.known_results:
        study.add_trial(
            create_trial(
                values=_values(spec, known.values or {}),
                params=internal_parameters(known.parameters, space),
                distributions={name: space[name] for name in known.parameters},
            )
        )
    for record in history.records:
        study.add_trial(_frozen(spec, record))
    return study


def suggest(history: SweepHistory) -> Suggestion | None:
    """The parameters of the next trial (number len(records)); None when a grid is used up.

    Raises plinth.tuning.optimizer.AlgorithmUnavailableError."""
    number = len(history.records)
    study = rebuild(history)
    study.sampler = make_sampler(history.spec, history.seed, number)
    firsts = history.configurations_first
    if number < len(firsts):
        study.enqueue_trial(dict(firsts[number].parameters))
    elif isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(
        study
    ):
        return None
    trial = study.ask(distributions(history.spec.parameters))
    asked = study.get_trials(deepcopy=False)[trial.number]
    return Suggestion(parameters=dict(trial.params), sampler_state=encode_state(asked.system_attrs))


def judge(history: SweepHistory, number: int) -> tuple[bool, dict[str, str]]:
    """Whether the pruner stops trial `number` (recorded with its latest intermediate
    values), and the trial's bookkeeping after the verdict."""
    study = rebuild(history)
    index = len(history.known_results) + number
    trial = study.get_trials(deepcopy=False)[index]
    pruned = study.pruner.prune(study, trial)
    after = study.get_trials(deepcopy=False)[index]
    return pruned, encode_state(after.system_attrs)


def pareto_front(spec: AutoMLSweepSpec, records: Sequence[TrialRecord]) -> list[int]:
    """Numbers of the succeeded trials no other succeeded trial beats on every objective."""
    finished = [r for r in records if r.state == RecordState.SUCCEEDED]
    study = optuna.create_study(storage=InMemoryStorage(), directions=_directions(spec))
    numbers: list[int] = []
    for record in finished:
        values = _values(spec, record.values)
        if values is not None:
            study.add_trial(create_trial(values=values))
            numbers.append(record.number)
    if not numbers:
        return []
    return sorted(numbers[t.number] for t in study.best_trials)
