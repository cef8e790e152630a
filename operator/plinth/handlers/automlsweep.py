"""Kopf wiring for AutoMLSweep: one level-based reconcile bound to create, update and resume."""

from __future__ import annotations

from plinth.handlers.reconcile import register_acceptance

KIND = "AutoMLSweep"

register_acceptance(KIND)
