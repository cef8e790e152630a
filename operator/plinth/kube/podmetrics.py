"""HTTP reads from pods at their pod IPs, as an in-cluster controller reaches them.

A planner asks for pages of its pods (`Plan.wants_from_pods`: Triton's metrics and model
repository index, for instance); they are fetched here in parallel, each with a short
timeout and a bounded body, and handed back as a `PodReading`. A pod that does not answer
reads as status 0 with the error, never as an exception: the planner says so in status.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from plinth.status.plan import PodReading, PodRequest, PodResponse

#: Seconds a pod has to answer; a pod's page is small and local to the cluster.
TIMEOUT_SECONDS = 2.0
#: Bytes read of an answer at most (a metrics page of one Triton server is a few KiB).
MAX_BODY_BYTES = 1 << 20
#: Requests in flight at once, per reading.
PARALLEL_REQUESTS = 8


def _url(request: PodRequest) -> str:
    host = f"[{request.address}]" if ":" in request.address else request.address
    return f"http://{host}:{request.port}{request.path}"


def fetch(request: PodRequest) -> PodResponse:
    """One request; errors become a response with status 0 (or the HTTP error's status)."""
    data = b"" if request.method == "POST" else None
    http_request = urllib.request.Request(_url(request), data=data, method=request.method)
    try:
        with urllib.request.urlopen(http_request, timeout=TIMEOUT_SECONDS) as answer:
            body = answer.read(MAX_BODY_BYTES).decode(errors="replace")
            return PodResponse(status=int(answer.status), body=body)
    except urllib.error.HTTPError as error:
        body = error.read(MAX_BODY_BYTES).decode(errors="replace")
        return PodResponse(status=int(error.code), body=body, error=str(error.reason))
    except (OSError, ValueError) as error:
        return PodResponse(status=0, error=str(getattr(error, "reason", error)))


def read_pods(requests: Sequence[PodRequest]) -> PodReading:
    """Every request's answer, read now."""
    now = datetime.now(UTC)
    if not requests:
        return PodReading(time=now)
    workers = min(PARALLEL_REQUESTS, len(requests))
    with ThreadPoolExecutor(workers, thread_name_prefix="pod-read") as pool:
        answers = list(pool.map(fetch, requests))
    return PodReading(time=now, responses=dict(zip(requests, answers, strict=True)))
