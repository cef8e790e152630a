"""The ModelDeployment planner, pure: the first model is served at once, status tells the
truth (Triton's own load error, a loader's failure, replicas ready), the builtin
autoscaler acts on real-shaped metrics pages, a canary walks its steps and is promoted,
or rolled back with the reason and not tried again, and models come from a TrainingJob or
a sweep's best trial."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from plinth.api.v1alpha1 import CanaryState, ModelDeploymentStatus
from plinth.api.wellknown import ObjectRef
from plinth.serving.repository import ResolvedModel
from plinth.status.modeldeployment import (
    ModelDeploymentInputs,
    ModelDeploymentPlan,
    plan_modeldeployment,
)
from plinth.status.modeldeployment_observe import (
    index_request,
    metrics_request,
    observe_modeldeployment,
    observe_server,
)
from plinth.status.plan import PodReading, PodRequest, PodResponse
from tests.support.serving import (
    T0,
    ModelDeploymentFactory,
    a_deployment,
    a_modeldeployment,
    a_server_pod,
    metrics_page,
    repository_index,
)


def revision_of(factory: ModelDeploymentFactory) -> str:
    spec = factory.spec()
    assert spec.model.uri is not None
    return ResolvedModel("scale", spec.model.version, spec.model.format, spec.model.uri).revision


def condition(status: ModelDeploymentStatus, kind: str) -> tuple[str, str, str]:
    found = next(c for c in status.conditions if c.type == kind)
    return found.status.value, found.reason, found.message


def planned(
    factory: ModelDeploymentFactory,
    *,
    previous: ModelDeploymentStatus | None = None,
    deployments: Sequence[Mapping[str, Any]] = (),
    pods: Sequence[Mapping[str, Any]] = (),
    pages: Mapping[str, Mapping[str, str]] | None = None,
    before: Mapping[str, Mapping[str, str]] | None = None,
    objects: Mapping[ObjectRef, Any] | None = None,
    now: datetime = T0,
) -> ModelDeploymentPlan:
    """Plan as the runtime does: a first plan, then again with what it asked for."""
    inputs = ModelDeploymentInputs(
        spec=factory.spec(),
        owner=factory.owner(),
        previous=previous or ModelDeploymentStatus(),
        observed=observe_modeldeployment(deployments, pods, ()),
        now=now,
        objects=objects,
    )
    plan = plan_modeldeployment(inputs)
    if plan.wants_objects:
        inputs = ModelDeploymentInputs(**{**inputs.__dict__, "objects": objects or {}})
        plan = plan_modeldeployment(inputs)
    if plan.wants_from_pods:
        reading = answers(plan.wants_from_pods, pods, pages or {}, now)
        previous_reading = (
            answers(plan.wants_from_pods, pods, before, now - timedelta(seconds=5))
            if before is not None
            else None
        )
        inputs = ModelDeploymentInputs(
            **{**inputs.__dict__, "reading": reading, "previous_reading": previous_reading}
        )
        plan = plan_modeldeployment(inputs)
    return plan


def answers(
    requests: Sequence[PodRequest],
    pods: Sequence[Mapping[str, Any]],
    pages: Mapping[str, Mapping[str, str]],
    at: datetime,
) -> PodReading:
    """Each pod's pages by path ("metrics", "index"); a pod without pages does not answer."""
    responses = {}
    for pod in pods:
        server = observe_server(pod)
        by_kind = pages.get(server.name)
        for kind, request in (("metrics", metrics_request), ("index", index_request)):
            if server.answers and request(server) in requests:
                body = (by_kind or {}).get(kind)
                responses[request(server)] = (
                    PodResponse(200, body) if body is not None else PodResponse(0, error="refused")
                )
    return PodReading(time=at, responses=responses)


# ---- first deployment and truthful status ---------------------------------------------------


def test_a_new_deployment_applies_its_model_at_once_and_is_pending() -> None:
    factory = a_modeldeployment()
    plan = planned(factory)
    assert plan.target is not None and plan.target.revision == revision_of(factory)
    assert plan.target_replicas == 1
    status = plan.status
    assert status.phase == "Pending"
    assert status.url == "http://scale.ml.svc:8000" and status.grpc_url == "scale.ml.svc:8001"
    assert condition(status, "ModelResolved")[0] == "True"
    assert condition(status, "ModelReady")[:2] == ("False", "Loading")
    assert condition(status, "ScalingActive")[1] == "FixedReplicas"


def test_ready_replicas_make_the_model_ready() -> None:
    factory = a_modeldeployment()
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).ready().build()]
    plan = planned(factory, deployments=[a_deployment("scale", revision, 1, 1)], pods=pods)
    assert plan.status.phase == "Ready"
    assert plan.status.ready_replicas == 1
    assert condition(plan.status, "ModelReady")[:2] == ("True", "ModelLoaded")
    assert condition(plan.status, "Ready")[0] == "True"


def test_a_model_that_fails_to_load_shows_tritons_own_message() -> None:
    factory = a_modeldeployment()
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).build()]
    reason = "Internal: RuntimeError: weights file is corrupt\n\nAt:\n  model.py(3): initialize"
    plan = planned(
        factory, pods=pods, pages={"scale-a": {"index": repository_index("scale", 1, reason)}}
    )
    status, why, message = condition(plan.status, "ModelReady")
    assert (status, why) == ("False", "ModelLoadFailed")
    assert "weights file is corrupt" in message
    assert plan.status.phase == "Degraded"
    assert condition(plan.status, "Degraded")[0] == "True"
    assert plan.check_again_after == 5.0, "keeps reading the index while not ready"


def test_a_loader_failure_is_reported_with_its_message() -> None:
    factory = a_modeldeployment()
    pods = [
        a_server_pod("scale-a", revision_of(factory), ip=None).loader_failed("HTTP 404").build()
    ]
    plan = planned(factory, pods=pods)
    assert condition(plan.status, "ModelReady")[1] == "ModelFetchFailed"
    assert "HTTP 404" in condition(plan.status, "ModelReady")[2]


# ---- builtin autoscaling ------------------------------------------------------------------


def scaled(factory: ModelDeploymentFactory) -> ModelDeploymentFactory:
    return factory.scaled(1, 3, target=20, scaleDownDelaySeconds=60)


def test_builtin_scales_up_on_queue_time_read_from_the_replicas() -> None:
    factory = scaled(a_modeldeployment())
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).ready().build()]
    before = {"scale-a": {"metrics": metrics_page("scale", success=100, queue_us=100_000)}}
    now = {"scale-a": {"metrics": metrics_page("scale", success=200, queue_us=6_100_000)}}
    plan = planned(
        factory,
        deployments=[a_deployment("scale", revision, 1, 1)],
        pods=pods,
        pages=now,
        before=before,
    )
    autoscaler = plan.status.autoscaler
    assert autoscaler is not None
    assert autoscaler.current_value == 60.0, "6 s queued over 100 requests"
    assert autoscaler.desired_replicas == 3 and plan.target_replicas == 3
    assert condition(plan.status, "ScalingActive")[:2] == ("True", "ValidMetricValue")
    assert plan.check_again_after == 5.0


def test_builtin_with_no_replica_ready_yet_waits_for_one() -> None:
    factory = scaled(a_modeldeployment())
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).build()]
    plan = planned(
        factory, deployments=[a_deployment("scale", revision, 1, 0)], pods=pods, pages={}
    )
    status, reason, message = condition(plan.status, "ScalingActive")
    assert (status, reason) == ("False", "WaitingForReplicas")
    assert message.endswith("no replica is ready to be read")


def test_builtin_that_cannot_read_metrics_says_so_and_holds() -> None:
    factory = scaled(a_modeldeployment())
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).ready().build()]
    plan = planned(
        factory, deployments=[a_deployment("scale", revision, 2, 1)], pods=pods, pages={}
    )
    status, reason, message = condition(plan.status, "ScalingActive")
    assert (status, reason) == ("False", "MetricsUnavailable")
    assert "scale-a: refused" in message
    assert plan.target_replicas == 2, "holds the count it had"
    assert plan.status.phase == "Ready"


def test_a_first_reading_collects_before_deciding() -> None:
    factory = scaled(a_modeldeployment())
    revision = revision_of(factory)
    pods = [a_server_pod("scale-a", revision).ready().build()]
    page = {"scale-a": {"metrics": metrics_page("scale", success=5)}}
    plan = planned(
        factory, deployments=[a_deployment("scale", revision, 1, 1)], pods=pods, pages=page
    )
    assert condition(plan.status, "ScalingActive")[:2] == ("Unknown", "CollectingMetrics")


# ---- canary -------------------------------------------------------------------------------


def serving(factory: ModelDeploymentFactory) -> ModelDeploymentStatus:
    """The status of `factory`'s model served and ready."""
    revision = revision_of(factory)
    pods = [a_server_pod("old-a", revision, ip="127.64.0.1").ready().build()]
    return planned(factory, deployments=[a_deployment("scale", revision, 1, 1)], pods=pods).status


def test_a_canary_walks_its_steps_and_is_promoted() -> None:
    old = a_modeldeployment().with_canary(25, 50, duration=60, minRequests=10)
    new = old.from_uri("/models/scale-v2", version=2)
    old_rev, new_rev = revision_of(old), revision_of(new)
    status = serving(old)
    old_pod = a_server_pod("old-a", old_rev, ip="127.64.0.1").ready()
    new_pod = a_server_pod("new-a", new_rev, ip="127.64.0.9").ready()
    deployments = [a_deployment("scale", old_rev, 1, 1), a_deployment("scale", new_rev, 1, 1)]
    pods = [old_pod.build(), new_pod.build()]

    def pages(requests: int) -> dict[str, dict[str, str]]:
        return {
            "old-a": {
                "metrics": metrics_page("scale", success=requests, request_us=requests * 1000)
            },
            "new-a": {
                "metrics": metrics_page("scale", 2, success=requests, request_us=requests * 1200)
            },
        }

    start = planned(new, previous=status, deployments=deployments[:1], pods=pods[:1])
    assert start.status.canary is not None and start.status.canary.state == CanaryState.PROGRESSING
    assert start.target is not None and start.target.revision == new_rev
    assert start.target_replicas == 1 and start.serving_replicas == 1
    assert start.status.model is not None and start.status.model.revision == old_rev
    assert [e.reason for e in start.events] == ["CanaryStarted"]
    assert start.status.phase == "RollingOut"

    ready = planned(
        new,
        previous=start.status,
        deployments=deployments,
        pods=pods,
        pages=pages(0),
        before=pages(0),
    )
    assert ready.status.canary and ready.status.canary.step_start_time == T0
    counted = planned(
        new,
        previous=ready.status,
        deployments=deployments,
        pods=pods,
        pages=pages(50),
        before=pages(0),
        now=T0 + timedelta(seconds=61),
    )
    canary = counted.status.canary
    assert canary is not None and canary.step == 1 and canary.state == CanaryState.PROGRESSING
    assert [e.reason for e in counted.events] == ["CanaryStepPassed"]
    second = planned(
        new,
        previous=counted.status,
        deployments=deployments,
        pods=pods,
        pages=pages(50),
        before=pages(50),
        now=T0 + timedelta(seconds=62),
    )
    done = planned(
        new,
        previous=second.status,
        deployments=deployments,
        pods=pods,
        pages=pages(100),
        before=pages(50),
        now=T0 + timedelta(seconds=130),
    )
    assert done.status.canary and done.status.canary.state == CanaryState.PROMOTED
    assert done.status.model is not None and done.status.model.revision == new_rev
    assert [e.reason for e in done.events] == ["CanaryPromoted"]
    retired = planned(new, previous=done.status, deployments=deployments, pods=pods)
    assert retired.retire == (old_rev,)
    assert condition(retired.status, "RollingOut")[0] == "False"


def test_a_failing_canary_is_rolled_back_with_the_reason_and_not_retried() -> None:
    old = a_modeldeployment().with_canary(50, duration=60, minRequests=10, maxErrorRate=0.05)
    new = old.from_uri("/models/scale-v2", version=2)
    old_rev, new_rev = revision_of(old), revision_of(new)
    deployments = [a_deployment("scale", old_rev, 1, 1), a_deployment("scale", new_rev, 1, 1)]
    pods = [
        a_server_pod("old-a", old_rev, ip="127.64.0.1").ready().build(),
        a_server_pod("new-a", new_rev, ip="127.64.0.9").ready().build(),
    ]
    before = {
        "new-a": {"metrics": metrics_page("scale", 2)},
        "old-a": {"metrics": metrics_page("scale")},
    }
    after = {
        "new-a": {"metrics": metrics_page("scale", 2, success=10, failure=30)},
        "old-a": {"metrics": metrics_page("scale", success=40)},
    }
    started = planned(
        new, previous=serving(old), deployments=deployments, pods=pods, pages=before, before=before
    )
    failed = planned(
        new, previous=started.status, deployments=deployments, pods=pods, pages=after, before=before
    )
    canary = failed.status.canary
    assert canary is not None and canary.state == CanaryState.ROLLED_BACK
    assert canary.message and "error rate 0.750 > maxErrorRate 0.05" in canary.message
    assert failed.retire == (new_rev,) and failed.target is None
    assert failed.status.model is not None and failed.status.model.revision == old_rev
    assert condition(failed.status, "Degraded")[0] == "True"
    assert condition(failed.status, "RollingOut")[1] == "RolledBack"
    assert [(e.reason, e.warning) for e in failed.events] == [("CanaryRolledBack", True)]
    again = planned(new, previous=failed.status, deployments=deployments[:1], pods=pods[:1])
    assert again.target is None and again.status.canary == failed.status.canary


def test_a_canary_whose_model_does_not_load_is_rolled_back_with_tritons_message() -> None:
    old = a_modeldeployment().with_canary(50)
    new = old.from_uri("/models/broken", version=2)
    old_rev, new_rev = revision_of(old), revision_of(new)
    pods = [
        a_server_pod("old-a", old_rev, ip="127.64.0.1").ready().build(),
        a_server_pod("new-a", new_rev, ip="127.64.0.9").build(),
    ]
    index = repository_index("scale", 2, "RuntimeError: weights file is corrupt")
    plan = planned(
        new,
        previous=serving(old),
        deployments=[a_deployment("scale", old_rev, 1, 1)],
        pods=pods,
        pages={"new-a": {"index": index}},
    )
    assert plan.status.canary is not None and plan.status.canary.state == CanaryState.ROLLED_BACK
    assert "weights file is corrupt" in (plan.status.canary.message or "")


def test_without_canary_the_old_model_serves_until_the_new_is_ready() -> None:
    old = a_modeldeployment()
    new = old.from_uri("/models/scale-v2", version=2)
    old_rev, new_rev = revision_of(old), revision_of(new)
    deployments = [a_deployment("scale", old_rev, 1, 1), a_deployment("scale", new_rev, 1, 0)]
    starting = planned(new, previous=serving(old), deployments=deployments)
    assert starting.target is not None and starting.target.revision == new_rev
    assert (
        starting.retire == ()
        and starting.status.model
        and starting.status.model.revision == old_rev
    )
    deployments[1] = a_deployment("scale", new_rev, 1, 1)
    replaced = planned(new, previous=starting.status, deployments=deployments)
    assert replaced.retire == (old_rev,)
    assert replaced.status.model and replaced.status.model.revision == new_rev


# ---- model sources -------------------------------------------------------------------------

TJ = ObjectRef("plinth.dev/v1alpha1", "TrainingJob", "ml", "train")
SWEEP = ObjectRef("plinth.dev/v1alpha1", "AutoMLSweep", "ml", "search")


def training_job(phase: str) -> dict[str, Any]:
    return {
        "spec": {"image": "x:1", "nodes": 1, "checkpoint": {"uri": "/ckpt/train"}},
        "status": {"phase": phase},
    }


def test_from_training_job_waits_for_success_then_serves_its_export() -> None:
    factory = a_modeldeployment().with_model(uri=None, fromTrainingJob={"name": "train"})
    waiting = planned(factory, objects={TJ: training_job("Running")})
    assert waiting.target is None
    assert condition(waiting.status, "ModelResolved")[:2] == ("False", "WaitingForSource")
    assert "phase Running" in condition(waiting.status, "ModelResolved")[2]
    assert waiting.check_again_after == 15.0
    done = planned(factory, objects={TJ: training_job("Succeeded")})
    assert done.target is not None and done.target.uri == "/ckpt/train/model"
    missing = planned(factory, objects={TJ: None})
    assert condition(missing.status, "ModelResolved")[1] == "SourceNotFound"


def test_a_source_that_ended_without_a_model_degrades_the_deployment() -> None:
    from_job = a_modeldeployment().with_model(uri=None, fromTrainingJob={"name": "train"})
    failed = planned(from_job, objects={TJ: training_job("Failed")})
    assert failed.target is None
    assert failed.status.phase == "Degraded"
    assert condition(failed.status, "ModelResolved")[:2] == ("False", "SourceFailed")
    assert condition(failed.status, "Degraded")[:2] == ("True", "SourceFailed")
    assert "TrainingJob train Failed" in condition(failed.status, "ModelReady")[2]
    from_sweep = a_modeldeployment().with_model(uri=None, fromSweep={"name": "search"})
    ended = planned(from_sweep, objects={SWEEP: {"status": {"phase": "Failed"}}})
    assert ended.status.phase == "Degraded"
    assert (
        "AutoMLSweep search is Failed without a best trial"
        in (condition(ended.status, "Degraded")[2])
    )
    running = planned(from_sweep, objects={SWEEP: {"status": {"phase": "Running"}}})
    assert condition(running.status, "ModelResolved")[1] == "WaitingForSource"
    assert running.status.phase == "Pending"


def test_from_sweep_follows_the_best_trial() -> None:
    factory = a_modeldeployment().with_model(
        uri=None, fromSweep={"name": "search", "path": "export"}
    )

    def sweep(trial: str) -> dict[str, Any]:
        best = {"name": trial, "number": 3, "value": 0.1, "checkpointUri": f"/ckpt/{trial}"}
        return {"status": {"bestTrial": best}}

    plan = planned(factory, objects={SWEEP: sweep("search-3")})
    assert plan.target is not None and plan.target.uri == "/ckpt/search-3/export"
    assert "best trial of AutoMLSweep search" in condition(plan.status, "ModelResolved")[2]
    none_yet = planned(factory, objects={SWEEP: {"status": {}}})
    assert none_yet.target is None
