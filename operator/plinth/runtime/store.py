"""The operator's view of the cluster: Kopf's in-memory indexes of every resource of every
kind and of the children each one owns, copied out as a `Snapshot` for one reconcile.

Kopf keeps the indexes current from its watches; the runtime reads them without API calls.
Index names are derived from the adapters' declarations (`index_name`), so the wiring that
fills them and the store that reads them cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from plinth.runtime.adapter import ChildSource

#: (namespace, name) of the owning resource: the key of every index.
OwnerKey = tuple[str, str]


def owners_index(kind: str) -> str:
    """Name of the index of every resource of `kind`."""
    return f"{kind.lower()}__owners"


def index_name(kind: str, source: ChildSource, label: str) -> str:
    """Name of the index of `kind`'s children from `source`, found by owner `label`."""
    suffix = "" if label == source.owner_label else f"__legacy{source.legacy_labels.index(label)}"
    return f"{kind.lower()}__{source.name}{suffix}"


@dataclass(frozen=True)
class Snapshot:
    """One resource and its children (by source name), copied out of the indexes."""

    owner: Mapping[str, Any]
    children: Mapping[str, tuple[Mapping[str, Any], ...]]


@dataclass
class ObjectStore:
    """Kopf's indexes, once the operator has started (empty before)."""

    indices: Mapping[str, Any] = field(default_factory=dict)

    def owner(self, kind: str, key: OwnerKey) -> Mapping[str, Any] | None:
        """The resource of `kind` at `key`, if the watch has seen it."""
        index = self.indices.get(owners_index(kind))
        found = list(index.get(key, ())) if index is not None else []
        return found[0] if found else None

    def objects(self, kind: str) -> list[Mapping[str, Any]]:
        """Every resource of `kind` the watch has seen (for the resource gauges)."""
        index = self.indices.get(owners_index(kind))
        if index is None:
            return []
        return [obj for key in list(index) for obj in index.get(key, ())]

    def _children(
        self, kind: str, source: ChildSource, key: OwnerKey
    ) -> tuple[Mapping[str, Any], ...]:
        found: list[Mapping[str, Any]] = []
        for label in (source.owner_label, *source.legacy_labels):
            index = self.indices.get(index_name(kind, source, label))
            if index is not None:
                found.extend(index.get(key, ()))
        return tuple(found)

    def snapshot(self, kind: str, sources: Sequence[ChildSource], key: OwnerKey) -> Snapshot | None:
        """The resource and its children, or None when the resource is not (or no longer)
        known."""
        owner = self.owner(kind, key)
        if owner is None:
            return None
        children = {source.name: self._children(kind, source, key) for source in sources}
        return Snapshot(owner=owner, children=children)
