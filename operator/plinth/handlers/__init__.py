"""Kopf wiring: parse each body once into a typed spec and call the layers below."""
