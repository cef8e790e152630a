"""A sweep as a picture: optimisation history with the best-so-far line, each trial's
intermediate values (pruned trials marked), and parameter importances.

Drawn from the sweep's status alone with matplotlib (the `plot` extra); the importances come
from Optuna (fANOVA) over the study rebuilt from status. Returns PNG bytes: writing them
anywhere is the caller's business.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import optuna

from plinth.api.v1alpha1 import (
    AutoMLSweepSpec,
    AutoMLSweepStatus,
    Direction,
    TrialRecord,
    TrialState,
)
from plinth.tuning.study import SweepHistory, rebuild

#: Completed trials Optuna needs before it can rank the parameters.
MIN_TRIALS_FOR_IMPORTANCE = 2


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: PLC0415  (optional: the `plot` extra)

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
    except ImportError as error:
        raise RuntimeError("plotting needs matplotlib: pip install 'plinth[plot]'") from error
    return pyplot


def _history(axes: Any, spec: AutoMLSweepSpec, trials: Sequence[TrialRecord]) -> None:
    objective = spec.objectives[0]
    done = [t for t in trials if objective.metric in t.values]
    succeeded = [t for t in done if t.state == TrialState.SUCCEEDED]
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    axes.scatter(
        [t.number for t in succeeded],
        [t.values[objective.metric] for t in succeeded],
        label="succeeded",
    )
    axes.scatter(
        [t.number for t in pruned],
        [t.values[objective.metric] for t in pruned],
        marker="x",
        color="tab:red",
        label="pruned (last value)",
    )
    best, line = None, []
    pick = min if objective.direction == Direction.MINIMIZE else max
    for trial in succeeded:
        value = trial.values[objective.metric]
        best = value if best is None else pick(best, value)
        line.append((trial.number, best))
    if line:
        axes.step(*zip(*line, strict=True), where="post", color="tab:green", label="best so far")
    axes.set(title="Optimisation history", xlabel="trial", ylabel=objective.metric)
    axes.legend()


def _intermediate(axes: Any, spec: AutoMLSweepSpec, trials: Sequence[TrialRecord]) -> None:
    for trial in trials:
        points = trial.intermediate_values
        if not points:
            continue
        pruned = trial.state == TrialState.PRUNED
        axes.plot(
            [p.step for p in points],
            [p.value for p in points],
            linestyle="--" if pruned else "-",
            marker="x" if pruned else ".",
            color="tab:red" if pruned else None,
            label=trial.name,
        )
    axes.set(
        title="Intermediate values (pruned: red, dashed)",
        xlabel="step",
        ylabel=spec.objectives[0].metric,
    )


def _importances(axes: Any, spec: AutoMLSweepSpec, status: AutoMLSweepStatus) -> None:
    history = SweepHistory(
        spec=spec, seed=status.seed or 0, study_name="plot", records=status.trials
    )
    completed = [t for t in status.trials if t.state == TrialState.SUCCEEDED]
    axes.set(title="Parameter importances (fANOVA)")
    if len(completed) < MIN_TRIALS_FOR_IMPORTANCE:
        axes.text(0.5, 0.5, "needs two succeeded trials", ha="center", va="center")
        return
    study = rebuild(history)
    target = None if len(spec.objectives) == 1 else (lambda t: t.values[0])
    importances = optuna.importance.get_param_importances(study, target=target)
    names = list(importances)
    axes.barh(names, [importances[name] for name in names])
    axes.invert_yaxis()
    axes.set(xlabel="importance")


def sweep_png(spec: AutoMLSweepSpec, status: AutoMLSweepStatus, title: str) -> bytes:
    """The sweep's three plots side by side, as PNG bytes. Raises RuntimeError without
    matplotlib."""
    pyplot = _pyplot()
    figure, (left, middle, right) = pyplot.subplots(1, 3, figsize=(18, 5))
    _history(left, spec, status.trials)
    _intermediate(middle, spec, status.trials)
    _importances(right, spec, status)
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
