"""A trial's TrainingJob spec: the sweep's trialTemplate with its placeholders filled in.

In every string of the template, ${params.<name>} becomes the trial's value of that
parameter, ${trial.name} the trial's TrainingJob name and ${trial.number} its number.
Numbers are written as Python writes them (0.001, 64), booleans as true/false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plinth.api.v1alpha1 import (
    PARAMETER_PLACEHOLDER,
    TRIAL_NAME_PLACEHOLDER,
    TRIAL_NUMBER_PLACEHOLDER,
    TrainingJobSpec,
    parse_spec,
)


def format_value(value: Any) -> str:
    """A parameter value as it appears in a substituted string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _replacements(parameters: Mapping[str, Any], name: str, number: int) -> dict[str, str]:
    replacements = {
        PARAMETER_PLACEHOLDER.format(name=key): format_value(value)
        for key, value in parameters.items()
    }
    replacements[TRIAL_NAME_PLACEHOLDER] = name
    replacements[TRIAL_NUMBER_PLACEHOLDER] = str(number)
    return replacements


def _substitute(node: Any, replacements: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        for placeholder, value in replacements.items():
            node = node.replace(placeholder, value)
        return node
    if isinstance(node, list):
        return [_substitute(item, replacements) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(value, replacements) for key, value in node.items()}
    return node


def trial_spec(
    template: TrainingJobSpec, parameters: Mapping[str, Any], name: str, number: int
) -> dict[str, Any]:
    """The trial's TrainingJob spec as YAML writes it (camelCase, unset fields left out).

    Raises plinth.api.v1alpha1.InvalidSpecError when the filled-in spec is not a valid
    TrainingJob (e.g. a value that breaks a field's pattern)."""
    filled = _substitute(template.to_dict(), _replacements(parameters, name, number))
    parse_spec("TrainingJob", filled)
    return dict(filled)
