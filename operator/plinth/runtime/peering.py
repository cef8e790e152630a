"""Whether Kopf's peering holds this replica paused (a standby): for the active gauge, the
/readyz answer and the role label of the replica's pod (`runtime.podrole`).

With peering, Kopf keeps one toggle per peering object (`conflicts_found`): on while a live
peer of higher priority exists, and on from the start until the first look at the peers.
Kopf pauses every watch while any is on, but exposes the toggles to no handler: Kopf hands
each one to `process_peering_event`, which it looks up in its peering module when it starts
watching a peering object. `PeeringPause.install` wraps that function to keep a reference
to each toggle it is given, and `paused()` reads them; the toggles' states are Kopf's own,
not a second opinion. Install before `kopf.run`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from kopf._core.engines import peering as kopf_peering

LOGGER = logging.getLogger("plinth")
#: The keyword under which Kopf passes a peering's pause toggle.
TOGGLE_KEYWORD = "conflicts_found"


@dataclass
class PeeringPause:
    """The pause toggles of this replica's peerings, as Kopf turns them."""

    #: False when the operator runs standalone (never paused by peering).
    enabled: bool = False
    _toggles: dict[str, Any] = field(default_factory=dict, repr=False)

    def paused(self) -> bool:
        """True while any peering holds this replica paused, or before Kopf has looked at
        the peers at all (Kopf starts a peering paused until then)."""
        if not self.enabled:
            return False
        return not self._toggles or any(toggle.is_on() for toggle in self._toggles.values())

    def install(self) -> bool:
        """Wrap Kopf's peering event processor to see its toggles; False (and never
        paused) when this Kopf passes none."""
        processor = getattr(kopf_peering.process_peering_event, "__wrapped__", None)
        original: Callable[..., Awaitable[Any]] = processor or kopf_peering.process_peering_event
        if TOGGLE_KEYWORD not in inspect.signature(original).parameters:
            LOGGER.error("This Kopf hides the peering pause: every replica reports itself active")
            self.enabled = False
            return False

        async def observed(**kwargs: Any) -> Any:
            toggle = kwargs.get(TOGGLE_KEYWORD)
            if toggle is not None:
                self._toggles[f"{kwargs.get('resource')}@{kwargs.get('namespace')}"] = toggle
            return await original(**kwargs)

        observed.__wrapped__ = original  # type: ignore[attr-defined]
        kopf_peering.process_peering_event = observed
        return True

    @staticmethod
    def uninstall() -> None:
        """Give Kopf back its own peering event processor."""
        original = getattr(kopf_peering.process_peering_event, "__wrapped__", None)
        if original is not None:
            kopf_peering.process_peering_event = original
