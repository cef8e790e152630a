"""The runner's view of the cluster: pods listed, then watched, each event handed on."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

HTTP_GONE = 410

PodHandler = Callable[[str, Mapping[str, Any]], None]


class PodWatch:
    """Lists and watches the pods of one namespace (or all) until `stopping` is set.

    Each pod event goes to `handle` (event type, raw pod JSON); `housekeeping` runs after
    every listing and between watches of `watch_seconds`. A failed watch lists again.
    """

    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str | None,
        watch_seconds: int,
        stopping: threading.Event,
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._watch_seconds = watch_seconds
        self._stopping = stopping

    def run(self, handle: PodHandler, housekeeping: Callable[[], None]) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            try:
                version = version or self._list_and_handle(handle)
                housekeeping()
                version = self._watch_from(version, handle)
            except ApiException as error:
                if error.status != HTTP_GONE:
                    log.warning("pod runner: watch failed, listing again: %s", error)
                version = None
            except Exception:
                log.exception("pod runner: watch failed, listing again")
                version = None
                self._stopping.wait(0.5)

    def _list_call(self) -> tuple[Any, tuple[str, ...]]:
        """The client's list function for the pods watched, and its positional arguments."""
        if self._namespace is None:
            return self._core.list_pod_for_all_namespaces, ()
        return self._core.list_namespaced_pod, (self._namespace,)

    def _list_and_handle(self, handle: PodHandler) -> str:
        function, args = self._list_call()
        response = function(*args, _preload_content=False)
        listing = json.loads(response.data)
        for pod in listing["items"]:
            handle("ADDED", pod)
        return str(listing["metadata"]["resourceVersion"])

    def _watch_from(self, version: str, handle: PodHandler) -> str:
        """Handle events for `watch_seconds`; return the resource version reached."""
        function, args = self._list_call()
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]  # untyped client
            function,
            *args,
            resource_version=version,
            timeout_seconds=self._watch_seconds,
            allow_watch_bookmarks=True,
            deserialize=False,
        )
        for event in stream:
            pod = event["object"]
            version = str(pod["metadata"]["resourceVersion"])
            if event["type"] != "BOOKMARK":
                handle(event["type"], pod)
            if self._stopping.is_set():
                break
        return version
