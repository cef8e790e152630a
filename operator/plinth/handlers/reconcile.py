"""The reconcile shared by every kind until it has children: accept the spec or say why not."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from plinth.api.v1alpha1 import API_GROUP, API_VERSION, KINDS, InvalidSpecError, parse_spec
from plinth.api.v1alpha1.common import Condition, ConditionStatus
from plinth.handlers.metrics import observe_reconcile
from plinth.status.acceptance import ACCEPTED, with_acceptance
from plinth.status.conditions import find_condition


def observed_conditions(status: Mapping[str, Any]) -> tuple[Condition, ...]:
    """The conditions already in status; entries that do not parse are dropped."""
    conditions: list[Condition] = []
    for entry in status.get("conditions") or ():
        try:
            conditions.append(Condition.model_validate(entry))
        except ValidationError:
            continue
    return tuple(conditions)


def spec_error_of(kind: str, spec: Mapping[str, Any]) -> str | None:
    """None when the spec parses, else the message that names the offending field."""
    try:
        parse_spec(kind, spec)
    except InvalidSpecError as error:
        return str(error)
    return None


def _post_transition_event(
    body: kopf.Body, before: Condition | None, after: Condition | None
) -> None:
    if after is None or (before is not None and before.status == after.status):
        return
    if after.status == ConditionStatus.TRUE:
        kopf.info(body, reason=after.reason, message=after.message)
    else:
        kopf.warn(body, reason=after.reason, message=after.message)


def reconcile_acceptance(kind: str, body: kopf.Body, patch: kopf.Patch) -> None:
    """Mark the object Accepted, or not Accepted with reason InvalidSpec; patch only changes."""
    with observe_reconcile(kind) as outcome:
        spec_error = spec_error_of(kind, body.spec)
        if spec_error is not None:
            outcome.result = "invalid"
            logging.getLogger("plinth").info(
                "%s %s/%s: invalid spec: %s", kind, body.meta.namespace, body.meta.name, spec_error
            )
        generation = body.meta.get("generation")
        current = observed_conditions(body.status)
        updated = with_acceptance(current, spec_error, generation, datetime.now(UTC))
        if updated == current and body.status.get("observedGeneration") == generation:
            return
        patch.status["conditions"] = [condition.to_dict() for condition in updated]
        patch.status["observedGeneration"] = generation
        patch.status["phase"] = "Pending" if spec_error is None else "Failed"
        _post_transition_event(
            body, find_condition(current, ACCEPTED), find_condition(updated, ACCEPTED)
        )


def register_acceptance(kind: str) -> None:
    """Bind the acceptance reconcile of `kind` to create, update and resume."""
    plural = KINDS[kind].plural

    @kopf.on.resume(API_GROUP, API_VERSION, plural, id=f"{plural}-reconcile")
    @kopf.on.create(API_GROUP, API_VERSION, plural, id=f"{plural}-reconcile")
    @kopf.on.update(API_GROUP, API_VERSION, plural, id=f"{plural}-reconcile")
    def reconcile(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        reconcile_acceptance(kind, body, patch)
