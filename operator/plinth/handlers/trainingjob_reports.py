"""The metrics intake: training code POSTs step, metrics and checkpoints; they land in status.

Authenticated per job: the bearer token must equal the one in the job's Secret
(`<name>-metrics-token`), compared in constant time. Tokens never appear in status, events
or logs. Reports are merged in memory (seeded from status, so lowest/highest values survive
an operator restart) and folded into status by the next reconcile, at most every couple of
seconds per job however often the job reports.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from plinth.api.v1alpha1 import TrainingJobStatus
from plinth.api.v1alpha1.metrics_report import MetricsReport
from plinth.api.v1alpha1.trainingjob import CheckpointRecord
from plinth.handlers.trainingjob import CONTROLLER, previous_status, snapshot_of
from plinth.handlers.workqueue import Key, WorkQueue
from plinth.kube.trainingjob import TrainingJobRef, ensure_token
from plinth.status.reported import merge_report

ROUTE = "/v1/namespaces/{namespace}/trainingjobs/{name}/metrics"
MAX_BODY_BYTES = 64 * 1024
#: Reports arriving within this many seconds are folded into one status update.
REPORT_BATCH_SECONDS = 2.0


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in error.errors()
    )


async def _expected_token(key: Key, uid: str) -> str | None:
    token = CONTROLLER.tokens.get(uid)
    if token is None and CONTROLLER.kube is not None:
        ref = TrainingJobRef(name=key[1], namespace=key[0], uid=uid)
        token = await asyncio.to_thread(ensure_token, CONTROLLER.kube, ref)
    return token


def _authorized(request: web.Request, expected: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    presented = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    return bool(expected) and bool(presented) and hmac.compare_digest(presented, expected or "")


def _record(key: Key, previous: TrainingJobStatus, report: MetricsReport) -> None:
    now = datetime.now(UTC)
    seeded = CONTROLLER.reports.get(key, previous.metrics)
    CONTROLLER.reports[key] = merge_report(seeded, report, now)
    if report.checkpoint:
        CONTROLLER.checkpoints[key] = CheckpointRecord(
            uri=report.checkpoint, step=report.step, time=now
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


async def receive_report(request: web.Request) -> web.Response:
    """POST handler of the intake."""
    key: Key = (request.match_info["namespace"], request.match_info["name"])
    snapshot = snapshot_of(key)
    if snapshot is None:
        return _problem(404, "no such TrainingJob")
    uid = str(snapshot.body["metadata"]["uid"])
    if not _authorized(request, await _expected_token(key, uid)):
        return _problem(401, "missing or wrong bearer token")
    report = await _read_report(request)
    if isinstance(report, web.Response):
        return report
    _record(key, previous_status(snapshot.body), report)
    queue: WorkQueue | None = CONTROLLER.queue
    if queue is not None:
        queue.add_after(key, REPORT_BATCH_SECONDS)
    return web.Response(status=204)


ROUTES = (("POST", ROUTE, receive_report),)
