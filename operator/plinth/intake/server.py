"""The intake's HTTP endpoint: training code POSTs step, metrics and checkpoints.

POST /v1/namespaces/<namespace>/trainingjobs/<name>/metrics with the job's bearer token
(`auth`). A report that names a checkpoint (a resume point; a job's last report always
does) is answered only once it is in the job's status, so an operator killed right after
cannot lose it; a 503 asks the reporter to send it again. The job is looked up through
`find_job` (the operator's cache, or the API server when the cache has not seen it yet, so
the intake answers from the first request after start-up); accepted reports go to the
`ReportBook` and the job is scheduled for a reconcile that folds them into status, at most
every couple of seconds per job.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from plinth.api.v1alpha1 import InvalidStatusError, parse_status
from plinth.api.v1alpha1.metrics_report import MetricsReport
from plinth.api.v1alpha1.trainingjob import ReportedMetrics
from plinth.api.wellknown import ObjectRef, metrics_path
from plinth.intake.auth import TokenIssuer
from plinth.intake.book import JobKey, ReportBook

ROUTE = metrics_path("{namespace}", "{name}")
MAX_BODY_BYTES = 64 * 1024
Handler = Callable[[web.Request], Awaitable[web.Response]]
Route = tuple[str, str, Handler]


#: Finds a TrainingJob by (namespace, name) as the API server writes it (None: there is none).
FindJob = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


@dataclass(frozen=True)
class Intake:
    """The intake's collaborators: who the jobs are, who they are, where reports go."""

    find_job: FindJob
    issuer: TokenIssuer
    book: ReportBook
    #: Called with (namespace, name) after a report is recorded.
    on_report: Callable[[str, str], None]
    #: Folds the job's reports into its status now, returning once written (or given up):
    #: a report naming a checkpoint is a resume point, answered only once it is durable.
    persist: Callable[[str, str], Awaitable[bool]]
    #: Whether this replica acts now (a standby paused by peering refuses reports with 503,
    #: which the reporter retries, so none is recorded where no reconcile would use it).
    active: Callable[[], bool] = lambda: True

    def routes(self) -> list[Route]:
        return [("POST", ROUTE, self.receive)]

    async def receive(self, request: web.Request) -> web.Response:
        """POST handler: authenticate, parse, record, schedule a status update."""
        if not self.active():
            return _problem(503, "this replica is a standby; send it again")
        key: JobKey = (request.match_info["namespace"], request.match_info["name"])
        job = await self.find_job(*key)
        if job is None:
            return _problem(404, "no such TrainingJob")
        if not self.issuer.is_valid(ObjectRef.of(job), _bearer(request)):
            return _problem(401, "missing or wrong bearer token")
        report = await _read_report(request)
        if isinstance(report, web.Response):
            return report
        self.book.record(key, report, _reported_so_far(job), datetime.now(UTC))
        if report.checkpoint and not await self.persist(*key):
            return _problem(503, "the report was not written to status in time; send it again")
        self.on_report(*key)
        return web.Response(status=204)


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""


def _reported_so_far(job: Mapping[str, Any]) -> ReportedMetrics | None:
    try:
        return parse_status("TrainingJob", job.get("status")).metrics
    except InvalidStatusError:
        return None


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )


async def _read_report(request: web.Request) -> MetricsReport | web.Response:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _problem(413, f"report larger than {MAX_BODY_BYTES} bytes")
    try:
        payload: Any = json.loads(await request.read())
        return MetricsReport.model_validate(payload)
    except json.JSONDecodeError:
        return _problem(400, "body: not JSON")
    except ValidationError as error:
        return _problem(400, _validation_message(error))
