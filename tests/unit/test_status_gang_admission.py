"""Gang admission and placement causes: what a user reads when a gang is not created or not
placed, judged from the cluster as the API server lists it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from plinth.api.wellknown import GPU_RESOURCE, JOB_NAME_LABEL, LABEL_TRAININGJOB, format_time
from plinth.kube.carry_out import AdmissionBook
from plinth.kube.quota import pod_quota_demand, quota_room
from plinth.status.capacity import ClusterCapacity, free_gpus_by_node, gang_job_usage, pod_usage
from plinth.status.gang_admission import Admission, GangDemand, Verdict, admit_gang
from plinth.status.placement import container_problem, unschedulable_cause
from tests.support.factories import T0, a_gpu_node, a_pod, a_trainingjob

FOUR_NODES = tuple(a_gpu_node(f"n{i}") for i in range(4))


def demand(workers: int, gpus: int = 8, **changes: Any) -> GangDemand:
    resources = a_trainingjob().with_gpus(gpus).spec().resources
    return GangDemand(workers=workers, gpus=gpus, per_worker=pod_quota_demand(resources), **changes)


def not_own(obj: Any) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return bool(labels.get(LABEL_TRAININGJOB) == "llm")


def admit(capacity: ClusterCapacity, gang: GangDemand) -> Admission:
    return admit_gang(capacity, gang, own=not_own)


def busy(node: str) -> Any:
    """Someone else's 8-GPU pod on `node`."""
    return a_pod(0).on_node(node).in_namespace("team-b").not_owned().build()


def admitted_gang_job(
    name: str, workers: int, *, suspend: bool = False, gpus: int = 8
) -> dict[str, Any]:
    """Another TrainingJob's attempt Job, unsuspended, whose workers are not on nodes yet."""
    container = {"name": "worker", "resources": {"requests": {GPU_RESOURCE: str(gpus)}}}
    return {
        "metadata": {"name": name, "namespace": "team-c", "labels": {LABEL_TRAININGJOB: name}},
        "spec": {
            "parallelism": workers,
            "suspend": suspend,
            "template": {"spec": {"containers": [container]}},
        },
        "status": {},
    }


def a_quota(name: str, hard: dict[str, str], used: dict[str, str]) -> Any:
    return quota_room({"metadata": {"name": name}, "status": {"hard": hard, "used": used}})


def test_a_gang_larger_than_the_cluster_is_never_admitted_and_says_what_exists() -> None:
    verdict = admit(ClusterCapacity(nodes=FOUR_NODES, active_pods=()), demand(5))
    assert (verdict.verdict, verdict.reason) == (Verdict.NEVER, "InsufficientCapacity")
    assert "needs 5 nodes x 8 nvidia.com/gpu" in verdict.message
    assert "the cluster has room for 4 workers (4 schedulable nodes with 8 nvidia.com/gpu" in (
        verdict.message
    )


def test_a_gang_that_fits_later_waits_without_creating_a_pod() -> None:
    capacity = ClusterCapacity(nodes=FOUR_NODES, active_pods=(busy("n0"), busy("n1")))
    waiting = admit(capacity, demand(3))
    assert (waiting.verdict, waiting.reason) == (Verdict.WAIT, "WaitingForCapacity")
    assert "the nodes have room for 2 workers now" in waiting.message
    assert admit(capacity, demand(2)).admitted


def test_workers_smaller_than_a_node_share_nodes() -> None:
    """Seven of the 8 GPUs of three nodes are taken: 4 single-GPU workers fit on what is
    left (one per node and 5 on n3), 40 never fit the 32 GPUs of four nodes."""
    others = tuple(
        a_pod(0).on_node(node).with_gpus(7).in_namespace("team-b").not_owned().build()
        for node in ("n0", "n1", "n2")
    )
    capacity = ClusterCapacity(nodes=FOUR_NODES, active_pods=others)
    assert admit(capacity, demand(4, gpus=1)).admitted
    assert admit(capacity, demand(11, gpus=1)).admitted
    waiting = admit(capacity, demand(12, gpus=1))
    assert (waiting.verdict, waiting.reason) == (Verdict.WAIT, "WaitingForCapacity")
    assert "room for 11 workers now" in waiting.message
    never = admit(capacity, demand(40, gpus=1))
    assert (never.verdict, never.reason) == (Verdict.NEVER, "InsufficientCapacity")
    assert "the cluster has room for 32 workers" in never.message


def test_the_gangs_own_pods_do_not_count_against_it() -> None:
    own = tuple(a_pod(i).on_node(f"n{i}").build() for i in range(4))
    assert admit(ClusterCapacity(nodes=FOUR_NODES, active_pods=own), demand(4)).admitted


def test_gangs_admitted_before_but_not_yet_placed_hold_their_nodes() -> None:
    earlier = admitted_gang_job("earlier", 2)
    capacity = ClusterCapacity(nodes=FOUR_NODES, active_pods=(), gang_jobs=(earlier,))
    assert admit(capacity, demand(3)).verdict == Verdict.WAIT
    assert admit(capacity, demand(2)).admitted
    held = admitted_gang_job("held", 4, suspend=True)
    assert admit(ClusterCapacity(FOUR_NODES, (), gang_jobs=(held,)), demand(4)).admitted


def test_a_quota_below_the_gang_is_named_and_one_in_use_is_waited_for() -> None:
    hard = {"requests.nvidia.com/gpu": "8"}
    never = ClusterCapacity(FOUR_NODES, (), quotas=(a_quota("gpus", hard, {}),))
    verdict = admit(never, demand(2))
    assert (verdict.verdict, verdict.reason) == (Verdict.NEVER, "QuotaExceeded")
    assert verdict.message.startswith("ResourceQuota gpus allows requests.nvidia.com/gpu 8")
    used = {"requests.nvidia.com/gpu": "8"}
    later = ClusterCapacity(
        FOUR_NODES, (), quotas=(a_quota("gpus", {"requests.nvidia.com/gpu": "16"}, used),)
    )
    verdict = admit(later, demand(2))
    assert (verdict.verdict, verdict.reason) == (Verdict.WAIT, "WaitingForQuota")
    assert "has 8 of requests.nvidia.com/gpu left" in verdict.message


def test_memory_quota_is_compared_in_bytes() -> None:
    resources = a_trainingjob().with_gpus(8).on_cpu(4, "16Gi").spec().resources
    gang = GangDemand(workers=2, gpus=8, per_worker=pod_quota_demand(resources))
    assert gang.per_worker["requests.memory"] == Decimal(16 * 2**30)
    quota = a_quota("mem", {"requests.memory": "20Gi"}, {})
    assert admit(ClusterCapacity(FOUR_NODES, (), quotas=(quota,)), gang).reason == "QuotaExceeded"


def test_a_node_selector_no_node_matches_is_named() -> None:
    gang = demand(2, node_selector={"pool": "reserved"})
    verdict = admit(ClusterCapacity(nodes=FOUR_NODES, active_pods=()), gang)
    assert (verdict.verdict, verdict.reason) == (Verdict.NEVER, "NoMatchingNodes")
    assert "{'pool': 'reserved'}" in verdict.message


def test_a_missing_volume_is_not_reported_as_a_gpu_shortage() -> None:
    message = (
        '0/4 nodes are available: persistentvolumeclaim "team-checkpoints" not found. '
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    )
    problem = unschedulable_cause(message)
    assert problem is not None and problem.reason == "PersistentVolumeClaimNotFound"
    gpus = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: ..."
    assert unschedulable_cause(gpus) is None
    selector = "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
    assert unschedulable_cause(selector).reason == "NoMatchingNodes"  # type: ignore[union-attr]


def test_a_container_that_cannot_start_is_named_by_the_kubelets_reason() -> None:
    problem = container_problem("ImagePullBackOff", 'Back-off pulling image "trainer:typo"')
    assert problem is not None and problem.reason == "ImagePullBackOff"
    assert container_problem("ContainerCreating", None) is None


def test_a_reservation_lapses_once_the_scheduler_judged_its_pods_or_time_passed() -> None:
    earlier = admitted_gang_job("earlier", 2)
    earlier["status"] = {"startTime": format_time(T0)}
    judged = (
        a_pod(0)
        .in_namespace("team-c")
        .not_owned()
        .on_node(None)
        .with_condition("PodScheduled", status="False", reason="Unschedulable")
        .build()
    )
    judged["metadata"]["labels"][JOB_NAME_LABEL] = "earlier"
    fresh = ClusterCapacity(FOUR_NODES, (judged,), gang_jobs=(earlier,), read_at=T0)
    assert admit(fresh, demand(4)).verdict == Verdict.WAIT  # one worker still on its way
    assert admit(fresh, demand(3)).admitted
    lapsed = replace(fresh, active_pods=(), read_at=T0 + timedelta(seconds=31))
    assert admit(lapsed, demand(4)).admitted


def test_a_claim_the_workers_mount_that_does_not_exist_is_named_before_any_pod() -> None:
    gang = demand(2, claims=("team-checkpoints",))
    missing = ClusterCapacity(FOUR_NODES, (), claims=frozenset({"other"}))
    verdict = admit(missing, gang)
    assert (verdict.verdict, verdict.reason) == (Verdict.NEVER, "PersistentVolumeClaimNotFound")
    assert verdict.message.startswith('persistentvolumeclaim "team-checkpoints" not found')
    present = replace(missing, claims=frozenset({"team-checkpoints"}))
    assert admit(present, gang).admitted


def test_counting_trimmed_pods_and_jobs_gives_what_counting_whole_ones_does() -> None:
    """The operator's watched cache keeps only what counting reads (pod_usage,
    gang_job_usage): the free GPUs it counts are the same as from whole objects."""
    pods = (
        busy("n0"),
        a_pod(0).on_node("n1").with_gpus(3).in_namespace("team-b").not_owned().build(),
        a_pod(1).on_node(None).build(),
        a_pod(2).on_node(None).with_condition("PodScheduled", status="False").build(),
    )
    jobs = (admitted_gang_job("earlier", 2), admitted_gang_job("held", 1, suspend=True))
    whole = ClusterCapacity(FOUR_NODES, pods, gang_jobs=jobs)
    trimmed = ClusterCapacity(
        FOUR_NODES,
        tuple(pod_usage(p) for p in pods),
        gang_jobs=tuple(gang_job_usage(j) for j in jobs),
    )
    for ignore in (not_own, lambda _: False):
        assert free_gpus_by_node(trimmed, ignore=ignore) == free_gpus_by_node(whole, ignore=ignore)
    assert free_gpus_by_node(whole, ignore=not_own) == {"n0": 0, "n1": 5, "n2": 0, "n3": 0}


def test_a_gang_booked_as_admitted_holds_its_gpus_until_read_unsuspended() -> None:
    """Admissions are booked before their writes go out: the next gang counts a booked Job
    not yet read, or read still suspended, as admitted."""
    book = AdmissionBook()
    first = admitted_gang_job("first", 2)
    book.book([first])
    capacity = ClusterCapacity(FOUR_NODES, (), gang_jobs=book.over(()))
    assert admit(capacity, demand(3)).verdict == Verdict.WAIT
    suspended = admitted_gang_job("first", 2, suspend=True)
    assert admit(
        ClusterCapacity(FOUR_NODES, (), gang_jobs=book.over([suspended])), demand(3)
    ).verdict == (Verdict.WAIT)
    assert admit(ClusterCapacity(FOUR_NODES, (), gang_jobs=(suspended,)), demand(3)).admitted


def test_workers_on_their_way_are_counted_on_the_fullest_node_that_holds_them() -> None:
    """Best fit, largest worker first, the first node on a tie: as a packing scheduler
    would place them."""
    taken = {"n1": 4, "n2": 6, "n3": 4}  # n0 8 free, n1 4, n2 2, n3 4
    pods = tuple(
        a_pod(i).on_node(node).with_gpus(gpus).in_namespace("team-b").not_owned().build()
        for i, (node, gpus) in enumerate(taken.items())
    )
    jobs = (admitted_gang_job("big", 2, gpus=4), admitted_gang_job("small", 3, gpus=2))
    capacity = ClusterCapacity(FOUR_NODES, pods, gang_jobs=jobs)
    free = free_gpus_by_node(capacity, ignore=not_own)
    # 4 -> n1 (tie with n3, n1 first); 4 -> n3; 2 -> n2; 2 -> n0; 2 -> n0
    assert free == {"n0": 4, "n1": 0, "n2": 0, "n3": 0}


def test_a_worker_no_node_can_hold_takes_nothing() -> None:
    pods = (busy("n0"), busy("n1"), busy("n2"))
    jobs = (admitted_gang_job("wide", 2, gpus=8),)
    free = free_gpus_by_node(ClusterCapacity(FOUR_NODES, pods, gang_jobs=jobs), ignore=not_own)
    assert free == {"n0": 0, "n1": 0, "n2": 0, "n3": 0}  # the second worker fits nowhere
