"""The search space as Optuna distributions, and a trial's parameters in and out of them.

float -> FloatDistribution(min, max, log, step); int -> IntDistribution (step default 1);
categorical -> CategoricalDistribution(values). Grid search takes every value of every
parameter: a float or int range is enumerated with its step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from plinth.api.v1alpha1 import Parameter, ParameterType

#: Grid search refuses spaces larger than this many points (it would never finish anyway).
MAX_GRID_POINTS = 100_000


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter (a spec that parsed has min/max/values)."""
    if parameter.type == ParameterType.CATEGORICAL:
        return CategoricalDistribution(tuple(parameter.values or ()))
    low, high = float(parameter.min or 0.0), float(parameter.max or 0.0)
    if parameter.type == ParameterType.INT:
        step = int(parameter.step or 1)
        return IntDistribution(int(low), int(high), log=parameter.log, step=step)
    return FloatDistribution(low, high, log=parameter.log, step=parameter.step)


def distributions(parameters: Sequence[Parameter]) -> dict[str, BaseDistribution]:
    """Every parameter's distribution, by name."""
    return {parameter.name: distribution(parameter) for parameter in parameters}


def _grid_values(parameter: Parameter) -> list[Any]:
    if parameter.type == ParameterType.CATEGORICAL:
        return list(parameter.values or ())
    low, high = float(parameter.min or 0.0), float(parameter.max or 0.0)
    step = float(parameter.step or 1.0)
    count = int((high - low) / step + 1e-9) + 1
    values = [low + i * step for i in range(count)]
    if parameter.type == ParameterType.INT:
        return [round(value) for value in values]
    return [round(value, 12) for value in values]


def grid(parameters: Sequence[Parameter]) -> dict[str, list[Any]]:
    """Every value of every parameter, as Optuna's GridSampler takes them.

    Raises ValueError when the grid has more than MAX_GRID_POINTS points."""
    space = {parameter.name: _grid_values(parameter) for parameter in parameters}
    points = 1
    for values in space.values():
        points *= len(values)
    if points > MAX_GRID_POINTS:
        raise ValueError(f"the grid has {points} points; at most {MAX_GRID_POINTS} are searched")
    return space


def internal_parameters(
    values: Mapping[str, Any], space: Mapping[str, BaseDistribution]
) -> dict[str, Any]:
    """Recorded values (as status holds them) in the types the distributions expect:
    floats for float parameters, ints for int parameters."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        kind = space.get(name)
        if isinstance(kind, FloatDistribution):
            typed[name] = float(value)
        elif isinstance(kind, IntDistribution):
            typed[name] = int(value)
        else:
            typed[name] = value
    return typed
