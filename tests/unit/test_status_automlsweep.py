"""The AutoMLSweep planner: trials started and stopped, results by strategy, budget, goal,
failures, crash recovery; what `kubectl get sweep` and the status show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from plinth.api.v1alpha1 import AutoMLSweepStatus
from plinth.status.automlsweep import SweepPlan, plan_sweep
from plinth.status.automlsweep_observed import observe_sweep
from tests.support.factories import T0, SweepFactory, TrialJobObject, a_sweep, a_trial_job

NOW = T0 + timedelta(minutes=5)


def plan(
    sweep: SweepFactory,
    previous: AutoMLSweepStatus | None = None,
    *trials: TrialJobObject,
    at: Any = NOW,
) -> SweepPlan:
    observed = observe_sweep([trial.build() for trial in trials])
    return plan_sweep(sweep.spec(), sweep.owner(), previous or AutoMLSweepStatus(), observed, at)


def condition(status: AutoMLSweepStatus, kind: str) -> tuple[str, str, str]:
    found = next(c for c in status.conditions if c.type == kind)
    return found.status.value, found.reason, found.message


def started(result: SweepPlan) -> list[str]:
    return [t.name for t in result.trials if not t.suspend]


def stopped(result: SweepPlan) -> list[str]:
    return [t.name for t in result.trials if t.suspend]


def test_a_new_sweep_starts_parallel_trials_numbered_from_zero() -> None:
    result = plan(a_sweep())
    assert started(result) == ["sweep-0", "sweep-1"]
    first = result.trials[0]
    assert first.spec["args"] == [f"--lr={first.parameters['lr']}"]
    assert first.spec["checkpoint"] == {"uri": "s3://ckpt/sweep-0"}
    status = result.status
    assert status.phase == "Running"
    assert status.trial_counts.total == status.trial_counts.pending == 2
    assert [r.checkpoint_uri for r in status.trials] == ["s3://ckpt/sweep-0", "s3://ckpt/sweep-1"]
    assert [e.reason for e in result.events] == ["TrialCreated", "TrialCreated"]
    assert status.seed == 7


def test_the_same_status_always_gives_the_same_trials() -> None:
    first, again = plan(a_sweep()), plan(a_sweep())
    assert first.trials == again.trials


def test_a_trial_created_but_not_recorded_is_recovered_not_made_twice() -> None:
    """The operator stopped between creating sweep-0 and writing status."""
    created = plan(a_sweep())
    lost = created.trials[0]
    trial = TrialJobObject("sweep", 0, parameters=dict(lost.parameters)).with_status("Pending")
    result = plan(a_sweep(), None, trial)
    assert [r.number for r in result.status.trials] == [0, 1]
    assert result.status.trials[0].parameters == lost.parameters
    assert started(result) == ["sweep-1"]
    assert result.trials[0].parameters == created.trials[1].parameters


@pytest.mark.parametrize(
    ("strategy", "expected"), [("latest", 0.5), ("min", 0.2), ("max", 0.9), ("best", 0.2)]
)
def test_a_trials_result_follows_the_objectives_strategy(strategy: str, expected: float) -> None:
    sweep = a_sweep().with_fields(
        objectives=[{"metric": "loss", "direction": "minimize", "strategy": strategy}]
    )
    previous = plan(sweep).status
    done = a_trial_job(number=0, lr=previous.trials[0].parameters["lr"]).succeeded(
        latest={"loss": 0.5}, min={"loss": 0.2}, max={"loss": 0.9}
    )
    result = plan(sweep, previous, done)
    assert result.status.trials[0].values == {"loss": expected}
    assert result.status.best_trial is not None and result.status.best_trial.value == expected


def test_a_trial_that_succeeds_without_the_metric_fails_with_no_metric() -> None:
    previous = plan(a_sweep()).status
    silent = a_trial_job(number=0).succeeded(latest={"accuracy": 0.9})
    result = plan(a_sweep(), previous, silent)
    record = result.status.trials[0]
    assert record.state == "Failed"
    assert record.reason == "NoMetric: the trial succeeded without reporting loss"
    assert [e.reason for e in result.events if e.warning] == ["TrialFailed"]


def test_too_many_failed_trials_fail_the_sweep_naming_the_last_failure() -> None:
    sweep = a_sweep().with_budget(maxFailedTrials=1)
    previous = plan(sweep).status
    crashed = [
        a_trial_job(number=n).failed("BackoffLimitExceeded", f"worker 0 exited with code {n + 1}")
        for n in range(2)
    ]
    result = plan(sweep, previous, *crashed)
    status = result.status
    assert status.phase == "Failed"
    kind, reason, message = condition(status, "Failed")
    assert (kind, reason) == ("True", "TooManyFailedTrials")
    assert "2 trials failed (maxFailedTrials 1)" in message
    assert "sweep-1, failed: BackoffLimitExceeded: worker 0 exited with code 2" in message
    assert started(result) == []


def test_max_trials_ends_the_sweep_and_raising_it_adds_trials() -> None:
    sweep = a_sweep().with_budget(maxTrials=2, parallelTrials=2)
    previous = plan(sweep).status
    done = [a_trial_job(number=n).succeeded(latest={"loss": 0.1 * (n + 1)}) for n in range(2)]
    ended = plan(sweep, previous, *done)
    assert ended.status.phase == "Succeeded"
    assert condition(ended.status, "Succeeded")[1] == "BudgetExhausted"
    assert ended.status.completion_time == NOW
    assert ended.status.best_trial is not None and ended.status.best_trial.name == "sweep-0"

    resumed = plan(sweep.with_budget(maxTrials=3, parallelTrials=2), ended.status, *done)
    assert started(resumed) == ["sweep-2"]
    assert resumed.status.phase == "Running"
    assert resumed.status.completion_time is None


def test_gpu_hours_are_summed_from_the_trials_and_bound_new_trials() -> None:
    sweep = a_sweep().with_budget(maxTrials=10, parallelTrials=2, maxGpuHours=3)
    previous = plan(sweep).status
    trials = [a_trial_job(number=n).succeeded(latest={"loss": 0.5}) for n in range(2)]
    result = plan(sweep, previous, *trials)
    assert result.status.gpu_hours == 4.0  # 2 trials x 7,200 GPU-seconds
    assert started(result) == []
    assert condition(result.status, "Succeeded")[2].endswith("maxGpuHours 3 spent.")


def test_a_goal_reached_ends_the_sweep_and_stops_running_trials() -> None:
    sweep = a_sweep().with_fields(
        objectives=[{"metric": "loss", "direction": "minimize", "goal": 0.05}]
    )
    previous = plan(sweep).status
    winner = a_trial_job(number=0).succeeded(latest={"loss": 0.04})
    running = a_trial_job(number=1).reporting(10, loss=0.3)
    result = plan(sweep, previous, winner, running)
    assert result.status.phase == "Succeeded"
    assert condition(result.status, "Succeeded")[1:] == (
        "GoalReached",
        "Trial sweep-0 reached the goal: 0.04.",
    )
    assert stopped(result) == ["sweep-1"]
    assert result.status.trials[1].state == "Pruned"


def test_running_trials_record_their_new_intermediate_values_once() -> None:
    previous = plan(a_sweep()).status
    first = plan(a_sweep(), previous, a_trial_job(number=0).reporting(10, loss=0.3))
    assert [(p.step, p.value) for p in first.status.trials[0].intermediate_values] == [(10, 0.3)]
    again = plan(a_sweep(), first.status, a_trial_job(number=0).reporting(10, loss=0.3))
    assert again.status == first.status


def test_asha_stops_a_hopeless_trial_and_suspends_its_trainingjob() -> None:
    sweep = a_sweep().with_fields(earlyStopping={"name": "asha", "minSteps": 10})
    sweep = sweep.with_budget(maxTrials=4, parallelTrials=2)
    previous = plan(sweep).status
    good = a_trial_job(number=0).reporting(10, loss=0.1)
    status = plan(sweep, previous, good).status
    bad = a_trial_job(number=1).reporting(10, loss=9.0)
    result = plan(sweep, status, good, bad)
    record = result.status.trials[1]
    assert record.state == "Pruned"
    assert record.reason == "stopped by asha at step 10 (loss 9)"
    assert record.values == {"loss": 9.0}
    assert stopped(result) == ["sweep-1"]
    assert "TrialPruned" in [e.reason for e in result.events]


def test_results_of_an_earlier_sweep_teach_the_optimiser_before_the_first_trial() -> None:
    from plinth.api.v1alpha1 import TrialRecord  # noqa: PLC0415
    from plinth.tuning.warm_start import earlier_results  # noqa: PLC0415

    # More finished trials than TPE's ten random start-up trials, best near lr 1e-2.
    lrs = [0.0001 * 1.6**n for n in range(14)] + [5.0]  # the last is outside this space
    records = [
        TrialRecord(
            name=f"earlier-{n}",
            number=n,
            state="Succeeded",
            parameters={"lr": lr},
            values={"loss": abs(lr - 0.01)},
        )
        for n, lr in enumerate(lrs)
    ]
    body = {"status": AutoMLSweepStatus(trials=tuple(records)).to_dict()}
    known = earlier_results(a_sweep().spec(), [body, None])
    assert len(known) == 14  # lr 5.0 is outside this sweep's range

    sweep = a_sweep().with_fields(warmStart={"fromSweeps": ["earlier"]})
    cold = plan(sweep)
    warm = plan_sweep(
        sweep.spec(), sweep.owner(), AutoMLSweepStatus(), observe_sweep([]), NOW, earlier=known
    )
    assert [t.number for t in warm.trials] == [0, 1]  # numbering is this sweep's own
    assert warm.trials[0].parameters != cold.trials[0].parameters
    assert abs(warm.trials[0].parameters["lr"] - 0.01) < abs(cold.trials[0].parameters["lr"] - 0.01)
