"""The operator's one door to the API server: server-side apply, deletes, status patches, reads.

Every write goes through server-side apply under the single field manager `plinth`, so the
API server merges, and drift is corrected by the next reconcile. An apply whose manifest
has not changed since the last successful one is skipped for a while (it would be a no-op
on the server), which keeps a steady cluster quiet.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config

# Imported with the module: the client's models load lazily otherwise, and the first
# Events of a burst would queue every reconcile thread on Python's import lock.
from kubernetes.client import CoreV1Api, CoreV1Event  # noqa: F401
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError

from plinth.api.wellknown import FIELD_MANAGER, Manifest, ObjectRef

#: A skipped apply is sent anyway after this long, so drift made by others is undone.
REAPPLY_AFTER_SECONDS = 600.0


#: The cause the API server gives for refusing to create objects in a namespace being
#: deleted.
NAMESPACE_TERMINATING = "NamespaceTerminating"


class NamespaceTerminatingError(RuntimeError):
    """A write refused because its namespace is being deleted (its objects go with it)."""


def load_api_client(kubeconfig: Path | None = None) -> client.ApiClient:
    """An API client from the in-cluster service account, or a kubeconfig file."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            client_configuration=configuration,
        )
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def _fingerprint(manifest: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _object_key(manifest: Mapping[str, Any]) -> tuple[str, str, str, str]:
    metadata = manifest["metadata"]
    return (
        str(manifest["apiVersion"]),
        str(manifest["kind"]),
        str(metadata.get("namespace", "")),
        str(metadata["name"]),
    )


@dataclass
class Kube:
    """Thread-safe helpers over one API client; the only place Plinth writes to the cluster."""

    api: client.ApiClient
    _dynamic: DynamicClient | None = field(default=None, repr=False)
    _applied: dict[tuple[str, str, str, str], tuple[str, float]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Called with the verb of every request sent (for the operator's own metrics).
    on_request: Callable[[str], None] | None = field(default=None, repr=False)

    def _count(self, verb: str) -> None:
        if self.on_request is not None:
            self.on_request(verb)

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api)
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves `kind` in `api_version` (API discovery)."""
        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True

    def _recently_sent(self, key: tuple[str, str, str, str], fingerprint: str) -> bool:
        with self._lock:
            previous = self._applied.get(key)
        return (
            previous is not None
            and previous[0] == fingerprint
            and time.monotonic() - previous[1] < REAPPLY_AFTER_SECONDS
        )

    def _send_unless_recent(
        self, manifest: Manifest, verb: str, send: Callable[[Any], object]
    ) -> bool:
        """Send `manifest` with `send(resource)` unless the same one was sent recently."""
        key, fingerprint = _object_key(manifest), _fingerprint(manifest)
        if self._recently_sent(key, fingerprint):
            return False
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        self._count(verb)
        try:
            send(resource)
        except ForbiddenError as error:
            if NAMESPACE_TERMINATING in str(error.body):
                namespace = str(manifest["metadata"].get("namespace"))
                raise NamespaceTerminatingError(namespace) from error
            raise
        with self._lock:
            self._applied[key] = (fingerprint, time.monotonic())
        return True

    def apply(self, manifest: Manifest) -> bool:
        """Server-side apply `manifest`; False when skipped as unchanged."""
        return self._send_unless_recent(
            manifest,
            "apply",
            lambda resource: self.dynamic.server_side_apply(
                resource, body=manifest, field_manager=FIELD_MANAGER, force_conflicts=True
            ),
        )

    def merge_patch(self, manifest: Manifest) -> bool:
        """Merge-patch the fields in `manifest` (for objects whose other fields are immutable).

        Skipped, like `apply`, when the same patch was sent recently.
        """
        return self._send_unless_recent(
            manifest,
            "patch",
            lambda resource: self.dynamic.patch(
                resource,
                body=manifest,
                content_type="application/merge-patch+json",
                field_manager=FIELD_MANAGER,
            ),
        )

    def forget(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Drop the apply cache of an object (after it was deleted)."""
        with self._lock:
            self._applied.pop((api_version, kind, namespace, name), None)

    def delete(self, ref: ObjectRef) -> bool:
        """Delete an object with background propagation; False when it was already gone."""
        self.forget(ref.api_version, ref.kind, ref.namespace, ref.name)
        resource = self._resource(ref.api_version, ref.kind)
        self._count("delete")
        try:
            self.dynamic.delete(
                resource,
                name=ref.name,
                namespace=ref.namespace,
                body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            return False
        return True

    def patch_status(self, ref: ObjectRef, status: Manifest) -> None:
        """Merge-patch the status subresource."""
        resource = self._resource(ref.api_version, ref.kind).subresources["status"]
        self._count("patch")
        self.dynamic.patch(
            resource,
            body={"status": status},
            name=ref.name,
            namespace=ref.namespace,
            content_type="application/merge-patch+json",
        )

    def post_event(self, involved: ObjectRef, event_type: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on `involved`."""
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{involved.name}.", namespace=involved.namespace
            ),
            involved_object=client.V1ObjectReference(
                api_version=involved.api_version,
                kind=involved.kind,
                name=involved.name,
                namespace=involved.namespace,
                uid=involved.uid or None,
            ),
            type=event_type,
            reason=reason,
            message=message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=FIELD_MANAGER),
            reporting_component=f"{FIELD_MANAGER}.dev/operator",
            reporting_instance=FIELD_MANAGER,
        )
        self._count("create")
        client.CoreV1Api(self.api).create_namespaced_event(involved.namespace, event)

    def get_object(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        """One object as the API server writes it, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        self._count("get")
        try:
            found = self.dynamic.get(resource, name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(found.to_dict())

    def list_objects(
        self, api_version: str, kind: str, *, namespace: str | None = None, **selectors: str
    ) -> list[Manifest]:
        """Objects as the API server writes them (camelCase), filtered by selectors."""
        resource = self._resource(api_version, kind)
        self._count("list")
        found = self.dynamic.get(resource, namespace=namespace, **selectors)
        return list(found.to_dict()["items"])
