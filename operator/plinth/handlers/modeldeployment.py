"""Kopf wiring for ModelDeployment: one level-based reconcile bound to create, update and resume."""

from __future__ import annotations

from plinth.handlers.reconcile import register_acceptance

KIND = "ModelDeployment"

register_acceptance(KIND)
