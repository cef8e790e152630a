"""The reconcile tier's rig: the operator's `Reconciler` run against a real API server,
without Kopf and without an operator process.

A `Snapshot` is read from the API server the way the runtime's Kopf indexes hold it: the
owner, and for each of the adapter's child sources the objects carrying its owner label,
plus those carrying only a legacy owner label (children made by an earlier Plinth), copied
out by the runtime's own `ObjectStore`. Each reconcile gets a fresh `Kube`, as after an
operator restart: the client's memory of what it sent is empty, so "nothing changed" is the
API server's verdict, not a cache's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from plinth.api.wellknown import Manifest, ObjectRef
from plinth.handlers.registry import ADAPTERS
from plinth.intake.auth import TokenIssuer
from plinth.intake.book import ReportBook
from plinth.kube.client import Kube
from plinth.runtime.adapter import ChildSource, OperatorSettings
from plinth.runtime.reconciler import AnyAdapter, DeferredRest, HeldStatuses, Reconciler
from plinth.runtime.store import ObjectStore, Snapshot, index_name, owners_index

#: Nothing listens there: the workers' metrics URL only has to be rendered.
METRICS_BASE_URL = "http://127.0.0.1:1"
SETTINGS = OperatorSettings(
    metrics_base_url=METRICS_BASE_URL, issue_token=TokenIssuer(b"k" * 32).token_for
)


def _api_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _selectors(source: ChildSource, owner: str) -> dict[str, str]:
    """The label selector of each of `source`'s owner labels, as the runtime's Kopf index
    filters them: a legacy label counts only on children without the current one."""
    selectors = {source.owner_label: f"{source.owner_label}={owner}"}
    for legacy in source.legacy_labels:
        selectors[legacy] = f"{legacy}={owner},!{source.owner_label}"
    return selectors


def list_children(
    kube: Kube, source: ChildSource, namespace: str, label_selector: str
) -> list[Manifest]:
    """The objects of `source`'s resource in `namespace` matching `label_selector`."""
    resource = kube.dynamic.resources.get(
        api_version=_api_version(source.group, source.version), name=source.plural
    )
    listed = kube.dynamic.get(  # type: ignore[no-untyped-call]
        resource, namespace=namespace, label_selector=label_selector
    )
    items: list[Manifest] = listed.to_dict()["items"]
    return items


def read_snapshot(kube: Kube, adapter: AnyAdapter, namespace: str, name: str) -> Snapshot:
    """The resource and its children as the API server holds them now, put into indexes
    shaped like the runtime's and copied out by the runtime's own `ObjectStore`."""
    info, key = adapter.info, (namespace, name)
    owner = kube.get_object(info.api_version, info.kind, namespace, name)
    assert owner is not None, f"{info.kind} {namespace}/{name} does not exist"
    indices: dict[str, dict[tuple[str, str], list[Manifest]]] = {
        owners_index(info.kind): {key: [owner]}
    }
    for source in adapter.child_sources:
        for label, selector in _selectors(source, name).items():
            found = list_children(kube, source, namespace, selector)
            indices[index_name(info.kind, source, label)] = {key: found}
    snapshot = ObjectStore(indices=indices).snapshot(info.kind, adapter.child_sources, key)
    assert snapshot is not None
    return snapshot


class OperatorKilledError(Exception):
    """The operator process died here."""


@dataclass
class RecordingKube(Kube):
    """A client that records every write it is asked for, as (what, object name or Event
    reason); with `die_after` set, the process dies before the write after that many."""

    die_after: int | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)

    def _write(self, what: str, about: str) -> None:
        if self.die_after is not None and len(self.writes) >= self.die_after:
            raise OperatorKilledError
        self.writes.append((what, about))

    def apply(self, manifest: Manifest) -> bool:
        self._write("apply", f"{manifest['kind']}/{manifest['metadata']['name']}")
        return super().apply(manifest)

    def merge_patch(self, manifest: Manifest) -> bool:
        self._write("patch", f"{manifest['kind']}/{manifest['metadata']['name']}")
        return super().merge_patch(manifest)

    def delete(self, ref: ObjectRef) -> bool:
        self._write("delete", f"{ref.kind}/{ref.name}")
        return super().delete(ref)

    def patch_status(self, ref: ObjectRef, status: Manifest) -> bool:
        self._write("status", f"{ref.kind}/{ref.name}")
        return super().patch_status(ref, status)

    def post_event(self, involved: ObjectRef, event_type: str, reason: str, message: str) -> None:
        self._write("event", reason)
        super().post_event(involved, event_type, reason, message)


@dataclass(frozen=True)
class SeenEvent:
    """A Kubernetes Event as `kubectl describe` shows it."""

    type: str
    reason: str
    message: str
    count: int


@dataclass
class ReconcileRig:
    """One namespace of the real API server, and the operator's reconcile pointed at it."""

    api: client.ApiClient
    namespace: str
    book: ReportBook = field(default_factory=ReportBook)
    #: The writes of the latest reconcile.
    writes: list[tuple[str, str]] = field(default_factory=list)
    #: Status updates held back, kept across reconciles as one operator keeps them.
    held: HeldStatuses = field(default_factory=HeldStatuses)
    #: Resources whose writes after their leading children were deferred, likewise.
    deferred: DeferredRest = field(default_factory=DeferredRest)

    def kube(self) -> Kube:
        """A fresh client, as a freshly started operator has."""
        return Kube(api=self.api)

    def adapter(self, kind: str) -> AnyAdapter:
        return ADAPTERS[kind]

    # ---- writing as a user ------------------------------------------------------------

    def create(self, document: Mapping[str, Any]) -> Manifest:
        """Create `document` in the rig's namespace (as `kubectl create` does); returns the
        object as stored."""
        body = {**document, "metadata": {**document["metadata"], "namespace": self.namespace}}
        dynamic = self.kube().dynamic
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        created: Manifest = dynamic.create(  # type: ignore[no-untyped-call]
            resource, body=body, namespace=self.namespace
        ).to_dict()
        return created

    # ---- the reconcile ------------------------------------------------------------------

    def snapshot(self, kind: str, name: str) -> Snapshot:
        return read_snapshot(self.kube(), self.adapter(kind), self.namespace, name)

    def reconcile(
        self,
        kind: str,
        name: str,
        *,
        snapshot: Snapshot | None = None,
        die_after: int | None = None,
        superseded: bool = False,
        others_waiting: bool = False,
    ) -> float | None:
        """One reconcile of `kind` `name` from a fresh snapshot (or `snapshot`), through a
        fresh client; with `die_after`, the operator dies before its next write after
        that many (OperatorKilledError); `superseded`: as when newer events of the
        resource are queued meanwhile; `others_waiting`: as when other new resources wait
        for their first writes. Its writes are left in `writes`."""
        kube = RecordingKube(api=self.api, die_after=die_after)
        self.writes = kube.writes
        adapter = self.adapter(kind)
        if snapshot is None:
            snapshot = read_snapshot(kube, adapter, self.namespace, name)
        reconciler = Reconciler(
            kube=kube, settings=SETTINGS, book=self.book, held=self.held, deferred=self.deferred
        )
        return reconciler.reconcile(adapter, snapshot, lambda: superseded, lambda: others_waiting)

    def writes_of(self, *what: str) -> list[str]:
        """What the latest reconcile wrote of the kinds of write `what` (apply, patch,
        delete, status, event)."""
        return [about for kind, about in self.writes if kind in what]

    # ---- reading what came out ----------------------------------------------------------

    def get(self, api_version: str, kind: str, name: str) -> Manifest:
        found = self.kube().get_object(api_version, kind, self.namespace, name)
        assert found is not None, f"{kind} {self.namespace}/{name} does not exist"
        return found

    def find(self, api_version: str, kind: str, name: str) -> Manifest | None:
        return self.kube().get_object(api_version, kind, self.namespace, name)

    def owner(self, kind: str, name: str) -> Manifest:
        info = self.adapter(kind).info
        return self.get(info.api_version, info.kind, name)

    def objects(
        self, api_version: str, kind: str, label_selector: str | None = None
    ) -> list[Manifest]:
        """Every object of `kind` in the namespace (matching `label_selector`)."""
        selectors = {"label_selector": label_selector} if label_selector else {}
        return self.kube().list_objects(api_version, kind, namespace=self.namespace, **selectors)

    def events(self, name: str) -> list[SeenEvent]:
        """The Events recorded on the object called `name`, oldest first."""
        listed = client.CoreV1Api(self.api).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        # Controllers writing events.k8s.io Events set eventTime, not firstTimestamp.
        ordered = sorted(
            listed.items,
            key=lambda e: (
                e.first_timestamp or e.event_time or e.metadata.creation_timestamp,
                e.reason,
            ),
        )
        return [
            SeenEvent(
                type=str(e.type), reason=str(e.reason), message=str(e.message), count=e.count or 1
            )
            for e in ordered
        ]


def condition(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The condition of type `kind` in `obj`'s status (fails the test if it is missing)."""
    for entry in (obj.get("status") or {}).get("conditions") or ():
        if entry.get("type") == kind:
            return dict(entry)
    raise AssertionError(f"no {kind} condition in {obj.get('status')}")
