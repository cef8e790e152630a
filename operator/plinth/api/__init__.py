"""Typed specs of the Plinth custom resources; the single source of the CRD schemas."""
