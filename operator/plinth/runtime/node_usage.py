"""What holds the nodes' GPUs, kept current by the operator's watches: every active pod in
the cluster and every TrainingJob attempt Job, each trimmed to what counting free GPUs
reads (`status.capacity.pod_usage`, `gang_job_usage`).

A new gang is judged against this instead of two list calls of every pod and Job (profiled:
at 200 TrainingJobs created at once on 100 nodes those lists, made one admission at a time,
were most of the time a job waited for its first child). Kopf already watches every pod
(Plinth's own are among them), so the cache costs one more index entry per pod.

A watch lags the API server by a few milliseconds to seconds, so Jobs this operator has
just admitted are counted unsuspended from the moment of the decision until the watch
shows them so (`kube.carry_out.AdmissionBook`): two gangs admitted one after the other
never count the same free GPUs.

Used only when the operator watches the whole cluster; an operator limited to some
namespaces lists instead (`kube.carry_out.ListedUsage`), since other namespaces' pods hold
GPUs too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from plinth.api.wellknown import LABEL_TRAININGJOB
from plinth.kube.carry_out import AdmissionBook
from plinth.status.capacity import FINISHED_POD_PHASES, gang_job_usage, pod_usage

#: The indexes this module fills and reads.
PODS_INDEX = "capacity__active_pods"
JOBS_INDEX = "capacity__gang_jobs"
#: Every entry of an index is kept under this one key.
ALL = "all"

ObjectKey = tuple[str, str]


def register_usage_indexes(registry: kopf.OperatorRegistry) -> tuple[str, ...]:
    """Index every active pod and every TrainingJob attempt Job; returns the index names."""

    def active(body: kopf.Body, **_: Any) -> bool:
        return (body.get("status") or {}).get("phase") not in FINISHED_POD_PHASES

    async def index_pod(body: kopf.Body, **_: Any) -> Any:  # a coroutine: see wiring
        return {ALL: pod_usage(body)}

    async def index_job(body: kopf.Body, **_: Any) -> Any:
        return {ALL: gang_job_usage(body)}

    kopf.index("", "v1", "pods", id=PODS_INDEX, when=active, registry=registry)(index_pod)
    labels = {LABEL_TRAININGJOB: kopf.PRESENT}
    kopf.index("batch", "v1", "jobs", id=JOBS_INDEX, labels=labels, registry=registry)(index_job)
    return (PODS_INDEX, JOBS_INDEX)


@dataclass
class WatchedUsage:
    """`kube.carry_out.UsageSource` over Kopf's indexes (filled by `register_usage_indexes`)."""

    indices: Mapping[str, Any]
    book: AdmissionBook = field(default_factory=AdmissionBook)

    def _all(self, name: str) -> tuple[Mapping[str, Any], ...]:
        index = self.indices.get(name)
        if index is None or ALL not in index:
            return ()
        # tuple() drains the store's dict iterator in C, holding the GIL: Kopf's event loop
        # thread cannot change the store halfway through.
        return tuple(index[ALL])

    def active_pods(self) -> tuple[Mapping[str, Any], ...]:
        return self._all(PODS_INDEX)

    def gang_jobs(self) -> tuple[Mapping[str, Any], ...]:
        return self.book.over(self._all(JOBS_INDEX))

    def admitted(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        self.book.book(jobs)
