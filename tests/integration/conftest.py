"""Fixtures of the integration tier: the real API server with Plinth's CRDs installed."""

from tests.plinth_testing import installed_crds

__all__ = ["installed_crds"]
