"""The Kopf registry the operator runs: index and event handlers only, every one a
coroutine, so Kopf's per-event diff-base can stay empty (`NoDiffBase`) and no handler is
handed to a thread."""

from __future__ import annotations

import asyncio
import inspect

from plinth.handlers.registry import ADAPTERS
from plinth.runtime.operator import Operator, OperatorOptions, build_registry


def test_the_registry_has_no_change_handlers_and_no_plain_functions() -> None:
    operator = Operator(adapters=ADAPTERS, options=OperatorOptions())
    registry = build_registry(operator, asyncio.Event())
    # Kopf keeps its handlers by kind of cause; nothing public lists them.
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []
    handlers = [*registry._indexing.get_all_handlers(), *registry._watching.get_all_handlers()]
    assert len(handlers) > 10
    assert all(inspect.iscoroutinefunction(h.fn) for h in handlers), [
        h.id for h in handlers if not inspect.iscoroutinefunction(h.fn)
    ]


def test_the_indexes_keep_objects_without_their_managed_fields() -> None:
    operator = Operator(adapters=ADAPTERS, options=OperatorOptions())
    registry = build_registry(operator, asyncio.Event())
    labels = {"plinth.dev/trainingjob": "llm"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llm-r0-0",
            "namespace": "team-a",
            "labels": labels,
            "managedFields": [{"manager": "kube-scheduler", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"nodeName": "gpu-0"},
        "status": {"phase": "Running"},
    }
    (handler,) = [h for h in registry._indexing.get_all_handlers() if h.id == "trainingjob__pods"]
    kept = asyncio.run(handler.fn(namespace="team-a", name="llm-r0-0", labels=labels, body=pod))

    (indexed,) = kept.values()
    assert "managedFields" not in indexed["metadata"]
    assert indexed["metadata"]["labels"] == labels
    assert (indexed["spec"], indexed["status"]) == (pod["spec"], pod["status"])
    assert "managedFields" in pod["metadata"]  # the watched object itself is left as it is
