"""The sweep engine: search space, trial templates, and a study rebuilt from status that
suggests exactly what a study kept alive would have."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from plinth.api.v1alpha1 import InvalidSpecError, StepValue, TrialRecord, TrialState, parse_spec
from plinth.tuning.optimizer import make_sampler, trial_seed
from plinth.tuning.space import distributions, grid
from plinth.tuning.study import SweepHistory, judge, pareto_front, suggest
from plinth.tuning.template import trial_spec
from tests.support.factories import a_sweep

SPACE = [
    {"name": "lr", "type": "float", "min": 0.0001, "max": 0.1, "log": True},
    {"name": "layers", "type": "int", "min": 1, "max": 8, "step": 1},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
    {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
]


def sweep_over(space: list[dict[str, Any]], algorithm: str = "tpe") -> Any:
    """A sweep spec over `space` whose template refers to no parameter."""
    template = {"image": "i", "nodes": 1}
    return (
        a_sweep()
        .with_fields(parameters=space, algorithm={"name": algorithm}, trialTemplate=template)
        .spec()
    )


def objective(parameters: dict[str, Any]) -> float:
    """A fixed function with a known optimum (lr 1e-2, 4 layers, dropout 0.1, adam)."""
    return (
        (math.log10(parameters.get("lr", 0.01)) + 2) ** 2
        + (parameters["layers"] - 4) ** 2 / 10
        + (parameters["dropout"] - 0.1) ** 2
        + (0.0 if parameters.get("optimizer", "adam") == "adam" else 0.5)
    )


def test_the_search_space_becomes_optuna_distributions() -> None:
    spec = sweep_over(SPACE)
    assert distributions(spec.parameters) == {
        "lr": FloatDistribution(0.0001, 0.1, log=True),
        "layers": IntDistribution(1, 8, step=1),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "optimizer": CategoricalDistribution(("adam", "sgd")),
    }


def test_a_grid_enumerates_every_step_and_refuses_huge_spaces() -> None:
    spec = sweep_over(SPACE[1:3], "grid")
    assert grid(spec.parameters) == {
        "layers": [1, 2, 3, 4, 5, 6, 7, 8],
        "dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    }
    huge = [{"name": f"p{i}", "type": "int", "min": 0, "max": 99} for i in range(3)]
    with pytest.raises(ValueError, match="1000000 points"):
        grid(sweep_over(huge).parameters)


def test_the_template_gets_the_trials_values_everywhere() -> None:
    template = parse_spec(
        "TrainingJob",
        {
            "image": "i",
            "nodes": 1,
            "args": ["--lr=${params.lr}", "--opt", "${params.optimizer}", "--n=${trial.number}"],
            "env": [{"name": "RUN", "value": "${trial.name}"}],
            "checkpoint": {"uri": "s3://b/${trial.name}/ckpt"},
        },
    )
    filled = trial_spec(template, {"lr": 0.001, "optimizer": "adam"}, "sweep-3", 3)
    assert filled["args"] == ["--lr=0.001", "--opt", "adam", "--n=3"]
    assert filled["env"] == [{"name": "RUN", "value": "sweep-3"}]
    assert filled["checkpoint"] == {"uri": "s3://b/sweep-3/ckpt"}


def test_a_filled_in_template_that_is_no_valid_trainingjob_is_refused() -> None:
    template = parse_spec("TrainingJob", {"image": "${params.image}", "nodes": 1})
    with pytest.raises(InvalidSpecError, match=r"spec\.image"):
        trial_spec(template, {"image": "not an image!"}, "sweep-0", 0)


def _live_suggestions(spec: Any, seed: int, count: int) -> list[dict[str, Any]]:
    """What one long-lived study (a process that never restarts) suggests, told each result."""
    study = optuna.create_study(study_name="ml/sweep")
    space = distributions(spec.parameters)
    suggested = []
    for number in range(count):
        study.sampler = make_sampler(spec, seed, number)
        trial = study.ask(space)
        study.tell(trial, objective(trial.params))
        suggested.append(trial.params)
    return suggested


def _rebuilt_suggestions(spec: Any, seed: int, count: int) -> list[dict[str, Any]]:
    """What the operator suggests, rebuilding the study from status before every trial."""
    records: list[TrialRecord] = []
    for number in range(count):
        history = SweepHistory(spec=spec, seed=seed, study_name="ml/sweep", records=records)
        suggestion = suggest(history)
        assert suggestion is not None
        value = objective(suggestion.parameters)
        records.append(
            TrialRecord(
                name=f"sweep-{number}",
                number=number,
                state=TrialState.SUCCEEDED,
                parameters=suggestion.parameters,
                values={"loss": value},
                sampler_state=suggestion.sampler_state,
            )
        )
    return [dict(r.parameters) for r in records]


@pytest.mark.parametrize("algorithm", ["tpe", "random", "grid", "qmc", "cmaes"])
def test_a_study_rebuilt_from_status_suggests_what_a_live_one_would(algorithm: str) -> None:
    space = {"grid": SPACE[1:], "qmc": SPACE[:3], "cmaes": SPACE[:3]}.get(algorithm, SPACE)
    spec = sweep_over(space, algorithm)
    count = 14  # past TPE's 10 random start-up trials
    assert _rebuilt_suggestions(spec, 7, count) == _live_suggestions(spec, 7, count)


def test_seeds_differ_per_trial_and_per_sweep() -> None:
    assert trial_seed(7, 0) != trial_seed(7, 1)
    assert trial_seed(7, 0) != trial_seed(8, 0)


def _record(
    number: int, state: TrialState, lr: float, points: list[float], **extra: Any
) -> TrialRecord:
    return TrialRecord(
        name=f"sweep-{number}",
        number=number,
        state=state,
        parameters={"lr": lr},
        intermediate_values=[StepValue(step=10 * (i + 1), value=v) for i, v in enumerate(points)],
        **extra,
    )


def test_asha_stops_a_trial_far_behind_the_others_at_the_same_rung() -> None:
    spec = a_sweep().with_fields(earlyStopping={"name": "asha", "minSteps": 10}).spec()
    records: list[TrialRecord] = []
    # Each better than the ones before: ASHA (reduction factor 3) promotes only the top third.
    for number, value in enumerate([0.10, 0.09, 0.08]):
        records.append(_record(number, TrialState.RUNNING, 0.01, [value]))
        history = SweepHistory(spec=spec, seed=7, study_name="ml/sweep", records=records)
        pruned, state = judge(history, number)
        assert not pruned
        records[-1] = records[-1].model_copy(update={"sampler_state": state})
    records.append(_record(3, TrialState.RUNNING, 0.0001, [5.0]))
    history = SweepHistory(spec=spec, seed=7, study_name="ml/sweep", records=records)
    pruned, state = judge(history, 3)
    assert pruned
    assert "completed_rung_0" in state


def test_the_pareto_front_keeps_the_trials_no_other_beats_on_every_objective() -> None:
    spec = (
        a_sweep()
        .with_fields(
            objectives=[
                {"metric": "loss", "direction": "minimize"},
                {"metric": "latency", "direction": "minimize"},
            ]
        )
        .spec()
    )
    values = [(1.0, 9.0), (2.0, 2.0), (3.0, 3.0), (9.0, 1.0), (None, None)]
    records = [
        TrialRecord(
            name=f"sweep-{n}",
            number=n,
            state=TrialState.SUCCEEDED if loss is not None else TrialState.FAILED,
            parameters={"lr": 0.01},
            values={} if loss is None else {"loss": loss, "latency": latency},
        )
        for n, (loss, latency) in enumerate(values)
    ]
    assert pareto_front(spec, records) == [0, 1, 3]
