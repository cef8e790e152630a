"""Kopf handlers generated from the adapters' declarations.

For each kind: an index of every resource, an index per child source (and per legacy owner
label) keyed by the owner's (namespace, name), and event handlers that only enqueue the
owner's key. A resource's own event enqueues it ahead of its children's (`urgent`) when
something besides its status changed (generation, labels, annotations, deletion); a
status-only change (the operator's own write) waits its turn like a child's event.

Every handler is a coroutine: Kopf runs a plain function on a thread of its executor, and
at a burst's thousands of pod events the hand-offs cost more than the handlers. Kopf runs
resource handlers only after every index is fully populated, so no reconcile acts on a
half-listed cluster. Everything is registered into one registry the operator passes to
`kopf.run`, never into Kopf's global one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from plinth.runtime.adapter import ChildSource
from plinth.runtime.reconciler import AnyAdapter
from plinth.runtime.store import OwnerKey, index_name, owners_index

#: Called with (kind, namespace, name) to enqueue, or to forget a deleted resource.
KeyCallback = Callable[[str, str, str], None]


def _intent(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a resource its plan reads, besides its status."""
    metadata = body.get("metadata") or {}
    return (
        metadata.get("generation"),
        metadata.get("labels"),
        metadata.get("annotations"),
        metadata.get("deletionTimestamp"),
        metadata.get("finalizers"),
    )


@dataclass
class IntentFilter:
    """The last intent seen of each resource: a status-only change is not urgent."""

    _seen: dict[OwnerKey, tuple[Any, ...]] = field(default_factory=dict)

    def changed(self, key: OwnerKey, body: Mapping[str, Any]) -> bool:
        intent = _intent(body)
        if self._seen.get(key) == intent:
            return False
        self._seen[key] = intent
        return True

    def forget(self, key: OwnerKey) -> None:
        self._seen.pop(key, None)


def indexed(body: Mapping[str, Any], spec_fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """An object as its index keeps it: without metadata.managedFields, which no plan reads
    and which is a large share of every object the API server sends (the field managers of
    a pod's every status writer), and with only `spec_fields` of its spec (None: all); at
    a thousand jobs of eight workers the indexes hold thousands of pods."""
    kept = dict(body)
    metadata = kept.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        kept["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    spec = kept.get("spec")
    if spec_fields is not None and isinstance(spec, Mapping):
        kept["spec"] = {k: v for k, v in spec.items() if k in spec_fields}
    return kept


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _register_owner(
    registry: kopf.OperatorRegistry,
    adapter: AnyAdapter,
    enqueue: KeyCallback,
    enqueue_urgent: KeyCallback,
    forget: KeyCallback,
) -> None:
    kind = adapter.info.kind
    group, version = _group_version(adapter.info.api_version)
    plural = adapter.info.plural

    async def index_owner(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        return {(namespace or "", name): indexed(body)}

    seen = IntentFilter()

    async def owner_changed(
        namespace: str | None, name: str, type: str, body: kopf.Body, **_: Any
    ) -> None:
        key = (namespace or "", name)
        if type == "DELETED":
            seen.forget(key)
            forget(kind, *key)
        elif seen.changed(key, body):
            enqueue_urgent(kind, *key)
        else:  # its status changed (a plan may take its next step from what it wrote)
            enqueue(kind, *key)

    kopf.index(group, version, plural, id=owners_index(kind), registry=registry)(index_owner)
    kopf.on.event(group, version, plural, id=f"{kind.lower()}__changed", registry=registry)(
        owner_changed
    )


def _label_filters(source: ChildSource) -> Mapping[str, Mapping[str, Any]]:
    """Label filter per owner label: a legacy label counts only without the current one,
    so no child is indexed twice."""
    filters: dict[str, Mapping[str, Any]] = {source.owner_label: {source.owner_label: kopf.PRESENT}}
    for legacy in source.legacy_labels:
        filters[legacy] = {legacy: kopf.PRESENT, source.owner_label: kopf.ABSENT}
    return filters


def _register_label(
    registry: kopf.OperatorRegistry,
    kind: str,
    source: ChildSource,
    label: str,
    enqueue: KeyCallback,
) -> None:
    """The index and event handler of `source`'s children found by owner `label`."""
    name = index_name(kind, source, label)

    def owner_key(namespace: str | None, labels: Mapping[str, str]) -> OwnerKey:
        return (namespace or "", labels[label])

    async def index_child(
        namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
    ) -> Any:
        return {owner_key(namespace, labels): indexed(body, source.spec_fields)}

    async def child_changed(namespace: str | None, labels: kopf.Labels, **_: Any) -> None:
        enqueue(kind, *owner_key(namespace, labels))

    where = (source.group, source.version, source.plural)
    filters = _label_filters(source)[label]
    kopf.index(*where, labels=filters, id=name, registry=registry)(index_child)
    kopf.on.event(*where, labels=filters, id=f"{name}__changed", registry=registry)(child_changed)


def register_kinds(
    registry: kopf.OperatorRegistry,
    adapters: Mapping[str, AnyAdapter],
    enqueue: KeyCallback,
    forget: KeyCallback,
    enqueue_urgent: KeyCallback | None = None,
) -> tuple[str, ...]:
    """Register every kind's indexes and handlers; returns the names of all indexes.
    Resources' own changes go to `enqueue_urgent` (default `enqueue`), their children's to
    `enqueue`."""
    names: list[str] = []
    for kind, adapter in adapters.items():
        _register_owner(registry, adapter, enqueue, enqueue_urgent or enqueue, forget)
        names.append(owners_index(kind))
        for source in adapter.child_sources:
            for label in (source.owner_label, *source.legacy_labels):
                _register_label(registry, kind, source, label, enqueue)
                names.append(index_name(kind, source, label))
    return tuple(names)
