"""The operator's resource gauges, as a scrape shows them, from objects as the watches
hold them; the peering pause as Kopf's own toggles report it; /readyz, which a paused
standby passes too; and the role label a replica in a pod puts on its pod."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import kopf
from aiohttp import ClientSession
from kopf._cogs.aiokits.aiotoggles import ToggleSet
from kopf._cogs.structs.references import Resource
from kopf._core.engines import peering as kopf_peering
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from plinth.api.wellknown import ObjectRef
from plinth.runtime.http import ProbeState, start_probe_server, stop_probe_server
from plinth.runtime.metrics import ResourceCollector
from plinth.runtime.peering import PeeringPause
from plinth.runtime.podrole import ROLE_LABEL, own_pod, role_patch

PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", namespaced=False)


def job(phase: str | None, running: int = 0, nodes: int = 0, gpus: int = 0) -> dict[str, Any]:
    status = {"phase": phase, "workers": {"running": running}, "nodes": nodes, "gpus": gpus}
    return {"metadata": {"name": "j"}, "status": status} if phase else {"metadata": {}}


OBJECTS: Mapping[str, list[dict[str, Any]]] = {
    "TrainingJob": [
        job(None),
        job("Pending", running=0, nodes=2, gpus=16),
        job("Running", running=2, nodes=2, gpus=16),
        job("Running", running=3, nodes=4, gpus=8),  # one worker still pending
        job("Succeeded", running=0, nodes=1, gpus=1),
    ],
    "AutoMLSweep": [
        {"status": {"trialCounts": {"total": 5, "running": 2, "succeeded": 2, "pruned": 1}}},
        {"status": {"trialCounts": {"total": 1, "pending": 1}}},
        {"metadata": {}},
    ],
    "ModelDeployment": [
        {"status": {"readyReplicas": 2, "desiredReplicas": 3}},
        {"status": {"readyReplicas": 1}},
    ],
}


def scrape(active: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(ResourceCollector(lambda kind: OBJECTS.get(kind, []), lambda: active))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_an_active_replica_reports_what_its_watches_hold() -> None:
    samples = scrape(active=True)
    assert samples[("plinth_trainingjobs", (("phase", "Pending"),))] == 2
    assert samples[("plinth_trainingjobs", (("phase", "Running"),))] == 2
    assert samples[("plinth_trainingjobs", (("phase", "Failed"),))] == 0
    assert samples[("plinth_trainingjob_gpus_held", ())] == 2 * 8 + 3 * 2
    trials = {labels[0][1]: v for (n, labels), v in samples.items() if n.endswith("_trials")}
    assert trials == {"Pending": 1, "Running": 2, "Succeeded": 2, "Pruned": 1, "Failed": 0}
    assert samples[("plinth_modeldeployment_replicas", (("state", "ready"),))] == 3
    assert samples[("plinth_modeldeployment_replicas", (("state", "desired"),))] == 3
    assert samples[("plinth_operator_active", ())] == 1


def test_a_standby_reports_no_resource_counts() -> None:
    assert scrape(active=False) == {("plinth_operator_active", ()): 0}


def test_paused_follows_the_toggle_kopf_hands_its_peering_processor() -> None:
    """Through the installed hook, as Kopf's peering watcher calls it (an event for
    another peering object returns before touching the toggle)."""

    async def scenario() -> list[bool]:
        pause = PeeringPause(enabled=True)
        assert pause.install(), "this Kopf no longer passes its peering pause toggle"
        try:
            seen = [pause.paused()]  # before Kopf looked at the peers: paused, as Kopf is
            toggle = await ToggleSet(any).make_toggle(True, name="plinth@None")
            await kopf_peering.process_peering_event(
                raw_event={"type": "MODIFIED", "object": {"metadata": {"name": "other"}}},
                namespace=None,
                resource=PEERINGS,
                identity=kopf_peering.Identity("me"),
                settings=kopf.OperatorSettings(),
                conflicts_found=toggle,
            )
            seen.append(pause.paused())
            await toggle.turn_to(False)  # Kopf resumes: no live peer of higher priority
            seen.append(pause.paused())
            return seen
        finally:
            PeeringPause.uninstall()

    assert asyncio.run(scenario()) == [True, True, False]
    assert not PeeringPause(enabled=False).paused()


def test_readyz_is_ready_when_watching_whether_active_or_standby() -> None:
    """A paused standby is Ready (a rollout with maxSurge 0 and the disruption budget wait
    for it); the answer tells its role. Only a replica not yet watching is unready."""

    async def answers() -> list[tuple[int, str]]:
        paused = [False]
        state = ProbeState(paused=lambda: paused[0])
        await start_probe_server(state, "127.0.0.1", 0)
        seen = []
        try:
            async with ClientSession() as session:
                for ready, standby in ((False, False), (True, True), (True, False)):
                    state.ready, paused[0] = ready, standby
                    async with session.get(f"http://127.0.0.1:{state.port}/readyz") as answer:
                        seen.append((answer.status, await answer.text()))
        finally:
            await stop_probe_server(state)
        return seen

    assert asyncio.run(answers()) == [
        (503, "starting\n"),
        (200, "ready: standby (paused by peering)\n"),
        (200, "ready: active\n"),
    ]


def test_the_role_label_goes_on_the_pod_the_downward_api_names() -> None:
    pod = own_pod({"POD_NAME": "plinth-7d9-abc", "POD_NAMESPACE": "plinth-system"})
    assert pod == ObjectRef("v1", "Pod", "plinth-system", "plinth-7d9-abc")
    assert role_patch(pod, "active") == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "plinth-7d9-abc",
            "namespace": "plinth-system",
            "labels": {ROLE_LABEL: "active"},
        },
    }
    # `plinth run` outside a cluster: no pod, nothing labelled.
    assert own_pod({}) is None
    assert own_pod({"POD_NAME": "plinth-7d9-abc"}) is None
