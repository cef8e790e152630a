"""Kopf wiring for TrainingJob: one level-based reconcile bound to create, update and resume."""

from __future__ import annotations

from plinth.handlers.reconcile import register_acceptance

KIND = "TrainingJob"

register_acceptance(KIND)
