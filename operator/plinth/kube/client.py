"""The operator's one door to the API server: server-side apply, deletes, status patches, reads.

Every write goes through server-side apply under the single field manager `plinth`, so the
API server merges, and drift is corrected by the next reconcile. An apply whose manifest
has not changed since the last successful one is skipped for a while (it would be a no-op
on the server), which keeps a steady cluster quiet.

Requests go through the kubernetes client's DynamicClient (discovery, auth, connection
pool), with its response objects turned off (`serialize=False`): a write's answer is not
read, and a read's JSON is parsed once with `json.loads`. Profiled under a burst of 200
TrainingJobs, building the client's response objects cost more CPU than the rest of a
reconcile.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError, ResourceNotFoundError

from plinth.api.wellknown import FIELD_MANAGER, Manifest, ObjectRef

#: A skipped apply is sent anyway after this long, so drift made by others is undone. A
#: Running job is looked at every 5 minutes (its resync); re-applying its children at every
#: other one cost 4 writes per job per 10 minutes (measured: 810 requests a minute with
#: 1,000 steady jobs), so drift is undone within the hour, as a resync of controllers does.
REAPPLY_AFTER_SECONDS = 3600.0


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


def _body(send: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """The body of the answer to `send(*args, **kwargs)` (a DynamicClient call), read
    whole and its connection handed back to the pool (an answer left unread would hold
    its connection, and every request would open a new TLS connection)."""
    answer = send(*args, serialize=False, **kwargs)
    try:
        return bytes(answer.data)
    finally:
        answer.release_conn()


#: (apiVersion, kind, namespace, name) of an object.
ObjectKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class _Sent:
    """What this client last wrote to one object."""

    #: Of the last applied manifest.
    fingerprint: str
    #: When it was applied (monotonic seconds).
    at: float
    #: The last applied manifest with the merge patches sent since merged in.
    state: Mapping[str, Any]


def _restates(patch: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """Whether merge-patching `state` with `patch` leaves it as it is (RFC 7386)."""
    for key, value in patch.items():
        if value is None:
            if key in state:
                return False
        elif isinstance(value, Mapping):
            inner = state.get(key)
            if not isinstance(inner, Mapping) or not _restates(value, inner):
                return False
        elif state.get(key) != value:
            return False
    return True


def _merged(state: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`state` merge-patched with `patch` (RFC 7386)."""
    merged = dict(state)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            inner = state.get(key)
            merged[key] = _merged(inner if isinstance(inner, Mapping) else {}, value)
        else:
            merged[key] = value
    return merged


def _patchable(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an applied manifest to judge later merge patches against (`_restates`),
    without its pod template: a Job's is immutable and a Deployment's is applied whole, never
    merge-patched, and it is most of the manifest (the client keeps one per applied object).
    A patch that names a field not kept is sent."""
    kept = copy.deepcopy({k: v for k, v in manifest.items() if k != "spec"})
    spec = manifest.get("spec")
    if isinstance(spec, Mapping):
        kept["spec"] = copy.deepcopy({k: v for k, v in spec.items() if k != "template"})
    return kept


def _object_key(manifest: Mapping[str, Any]) -> ObjectKey:
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
    _sent: dict[ObjectKey, _Sent] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _resources: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _discovering: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Called with the verb and object kind of every request sent (the operator's metrics).
    on_request: Callable[[str, str], None] | None = field(default=None, repr=False)

    def _count(self, verb: str, kind: str) -> None:
        if self.on_request is not None:
            self.on_request(verb, kind)

    @property
    def dynamic(self) -> DynamicClient:
        with self._lock:
            if self._dynamic is None:
                self._dynamic = DynamicClient(self.api)
                # Its discovery cache is a file named after the server's address, shared by
                # every client on this machine: a cluster started on a port an earlier one used
                # was served that one's APIs (seen: a PodGroup API no longer there, every apply
                # of a PodGroup then refused). Discovered afresh once per client.
                self._dynamic.resources.invalidate_cache()
            return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        """The discovered API resource of `kind` (kept: discovery searches every group)."""
        key = (api_version, kind)
        found = self._resources.get(key)
        if found is None:
            # One discovery at a time: each searches the API groups and rewrites the
            # client's cache file, and threads that all miss at once would each do it
            # (profiled: seconds of a burst's first reconciles).
            with self._discovering:
                found = self._resources.get(key)
                if found is None:
                    found = self.dynamic.resources.get(api_version=api_version, kind=kind)
                    self._resources[key] = found
        return found

    def discover(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Discover each (apiVersion, kind) now, before the first reconcile needs it; a kind
        the API server does not serve is skipped."""
        for api_version, kind in kinds:
            self.serves(api_version, kind)

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves `kind` in `api_version` (API discovery)."""
        try:
            self._resource(api_version, kind)
        except ResourceNotFoundError:
            return False
        return True

    def _recent(self, key: ObjectKey) -> _Sent | None:
        with self._lock:
            sent = self._sent.get(key)
        if sent is None or time.monotonic() - sent.at >= REAPPLY_AFTER_SECONDS:
            return None
        return sent

    def _send(self, manifest: Manifest, verb: str, send: Callable[[Any], object]) -> None:
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        self._count(verb, manifest["kind"])
        try:
            send(resource)
        except ForbiddenError as error:
            if NAMESPACE_TERMINATING in str(error.body):
                namespace = str(manifest["metadata"].get("namespace"))
                raise NamespaceTerminatingError(namespace) from error
            raise

    def apply(self, manifest: Manifest) -> bool:
        """Server-side apply `manifest`; False when skipped: the same manifest was applied
        recently."""
        key, fingerprint = _object_key(manifest), _fingerprint(manifest)
        recent = self._recent(key)
        if recent is not None and recent.fingerprint == fingerprint:
            return False
        self._send(
            manifest,
            "apply",
            lambda resource: _body(
                self.dynamic.server_side_apply,
                resource,
                body=manifest,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            ),
        )
        with self._lock:
            self._sent[key] = _Sent(fingerprint, time.monotonic(), _patchable(manifest))
        return True

    def merge_patch(self, manifest: Manifest) -> bool:
        """Merge-patch the fields in `manifest` (for objects whose other fields are immutable).

        Skipped when it restates what this client recently wrote to the object (its last
        apply, with the patches sent since merged in): a Job applied a moment ago and
        patched with the same `suspend` and annotations would change nothing.
        """
        key = _object_key(manifest)
        recent = self._recent(key)
        if recent is not None and _restates(manifest, recent.state):
            return False
        self._send(
            manifest,
            "patch",
            lambda resource: _body(
                self.dynamic.patch,
                resource,
                body=manifest,
                content_type="application/merge-patch+json",
                field_manager=FIELD_MANAGER,
            ),
        )
        # Never applied here (another replica, or before a restart): what is known to hold
        # of the object is this patch, so sending it again is skipped too.
        sent = recent or _Sent(fingerprint="", at=time.monotonic(), state={})
        with self._lock:
            self._sent[key] = replace(sent, state=_merged(sent.state, manifest))
        return True

    def forget(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Drop the apply cache of an object (after it was deleted)."""
        with self._lock:
            self._sent.pop((api_version, kind, namespace, name), None)

    def delete(self, ref: ObjectRef) -> bool:
        """Delete an object with background propagation; False when it was already gone."""
        self.forget(ref.api_version, ref.kind, ref.namespace, ref.name)
        resource = self._resource(ref.api_version, ref.kind)
        self._count("delete", ref.kind)
        try:
            _body(
                self.dynamic.delete,
                resource,
                name=ref.name,
                namespace=ref.namespace,
                body={"propagationPolicy": "Background"},
            )
        except NotFoundError:
            return False
        return True

    def patch_status(self, ref: ObjectRef, status: Manifest) -> bool:
        """Merge-patch the status subresource; False when the object is gone (deleted
        since it was read: there is nothing left to tell)."""
        resource = self._resource(ref.api_version, ref.kind).subresources["status"]
        self._count("patch", f"{ref.kind}/status")
        try:
            _body(
                self.dynamic.patch,
                resource,
                body={"status": status},
                name=ref.name,
                namespace=ref.namespace,
                content_type="application/merge-patch+json",
            )
        except NotFoundError:
            return False
        return True

    def post_event(self, involved: ObjectRef, event_type: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on `involved`."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved.name}.", "namespace": involved.namespace},
            "involvedObject": {
                "apiVersion": involved.api_version,
                "kind": involved.kind,
                "name": involved.name,
                "namespace": involved.namespace,
                **({"uid": involved.uid} if involved.uid else {}),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": f"{FIELD_MANAGER}.dev/operator",
            "reportingInstance": FIELD_MANAGER,
        }
        self._send(
            event,
            "create",
            lambda resource: _body(
                self.dynamic.create, resource, body=event, namespace=involved.namespace
            ),
        )

    def get_object(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        """One object as the API server writes it, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        self._count("get", kind)
        try:
            answer = _body(self.dynamic.get, resource, name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(json.loads(answer))

    def list_objects(
        self, api_version: str, kind: str, *, namespace: str | None = None, **selectors: str
    ) -> list[Manifest]:
        """Objects as the API server writes them (camelCase), filtered by selectors."""
        resource = self._resource(api_version, kind)
        self._count("list", kind)
        answer = _body(self.dynamic.get, resource, namespace=namespace, **selectors)
        return list(json.loads(answer)["items"])
