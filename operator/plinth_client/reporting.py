"""Report training metrics to the Plinth operator, which folds them into the job's status.

Wire format (the operator implements the endpoint):

    POST $PLINTH_METRICS_URL
    Authorization: Bearer $PLINTH_METRICS_TOKEN
    Content-Type: application/json

    {"step": 120, "metrics": {"loss": 0.0123, "accuracy": 0.98}, "checkpoint": "file:///c/step-120.pt"}

- `step`: a non-negative integer, the training step the metrics belong to.
- `metrics`: metric name -> finite number (JSON has no NaN or infinity; non-finite or
  non-numeric values are left out, with a warning).
- `checkpoint`: optional; the URI of a checkpoint written at this step. Left out when none.

The endpoint answers 2xx when the report is accepted and 401 when the token is wrong.

`MetricsReporter.report()` never raises into training code: it uses a short timeout and a
bounded number of attempts (connection errors, timeouts, 408, 429 and 5xx are retried;
other answers are not), then logs a warning and drops the report. After a dropped report it
stays quiet for a cool-down, dropping reports without touching the network, so a dead
endpoint costs a training loop at most one round of attempts per cool-down (a report naming
a checkpoint is tried even then: it is a resume point, and a job's last report). The token is
never logged; redirects are not followed (they would carry the token to another host) and
proxy variables are ignored (the endpoint is inside the cluster). By default only rank 0
reports, since every rank of a data-parallel job sees the same step.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import SupportsFloat

from plinth_client.environment import PlinthEnvironment

log = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({408, 429})
SERVER_ERROR = 500


@dataclass(frozen=True)
class ReportPolicy:
    """How hard a reporter tries before it drops a report, and how long it then waits."""

    #: A report naming a checkpoint is answered once the operator has written it to the
    #: job's status: give that a few seconds.
    timeout_s: float = 5.0
    #: Five attempts, 0.25 s apart doubling (3.75 s in all), outlast an operator restart.
    attempts: int = 5
    backoff_s: float = 0.25
    cooldown_s: float = 5.0


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an error instead of resending the token elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class MetricsReporter:
    """Posts step metrics to the operator; does nothing when reporting is not configured."""

    def __init__(
        self,
        url: str | None,
        token: str | None,
        *,
        rank: int = 0,
        all_ranks: bool = False,
        policy: ReportPolicy | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._policy = policy or ReportPolicy()
        self._sends = (all_ranks or rank == 0) and url is not None and token is not None
        self._quiet_until = 0.0
        self._warned_metrics: set[str] = set()
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _RefuseRedirects()
        )
        self.sent = 0
        self.dropped = 0

    @classmethod
    def from_environment(
        cls,
        environment: PlinthEnvironment | None = None,
        *,
        all_ranks: bool = False,
        policy: ReportPolicy | None = None,
    ) -> MetricsReporter:
        """A reporter for `$PLINTH_METRICS_URL`, sending from rank 0 only by default."""
        env = environment or PlinthEnvironment.from_environ()
        return cls(
            env.metrics_url,
            env.metrics_token,
            rank=env.global_rank,
            all_ranks=all_ranks,
            policy=policy,
        )

    @property
    def enabled(self) -> bool:
        """Whether this process sends reports at all (configured, and the right rank)."""
        return self._sends

    def __repr__(self) -> str:
        return f"MetricsReporter(url={self._url!r}, enabled={self._sends})"

    def report(
        self,
        step: int,
        metrics: Mapping[str, SupportsFloat],
        checkpoint: str | None = None,
    ) -> bool:
        """Send one report; True when the operator accepted it. Never raises."""
        if not self._sends:
            return False
        try:
            body, left_out = encode_report(step, metrics, checkpoint)
            self._warn_left_out(left_out)
            return self._deliver(body, resume_point=checkpoint is not None)
        except Exception as error:  # the promise: reporting never breaks training
            log.warning("metrics report dropped: %s: %s", type(error).__name__, error)
            self.dropped += 1
            return False

    def _warn_left_out(self, names: list[str]) -> None:
        for name in names:
            if name not in self._warned_metrics:
                self._warned_metrics.add(name)
                log.warning("metric %r left out of reports: not a finite number", name)

    def _deliver(self, body: bytes, resume_point: bool) -> bool:
        """A report naming a checkpoint (a resume point, and always a job's last report) is
        tried even during a cool-down: it is rare and the one that matters most."""
        if time.monotonic() < self._quiet_until and not resume_point:
            self.dropped += 1
            return False
        error = self._attempt_all(body)
        if error is None:
            self.sent += 1
            return True
        self.dropped += 1
        self._quiet_until = time.monotonic() + self._policy.cooldown_s
        log.warning(
            "metrics report to %s dropped (%s); reporting pauses for %.0f s",
            self._url,
            error,
            self._policy.cooldown_s,
        )
        return False

    def _attempt_all(self, body: bytes) -> str | None:
        """Try up to `attempts` times; None on success, else why the last attempt failed."""
        error = "no attempt made"
        for attempt in range(self._policy.attempts):
            if attempt:
                time.sleep(self._policy.backoff_s * 2 ** (attempt - 1))
            error, retry = self._attempt(body)
            if not error or not retry:
                return error or None
        return error

    def _attempt(self, body: bytes) -> tuple[str, bool]:
        """One POST: ('', _) on success, else (why, whether another attempt may help)."""
        request = urllib.request.Request(
            str(self._url),
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self._token}",
            },
        )
        try:
            with self._opener.open(request, timeout=self._policy.timeout_s) as response:
                response.read()
            return "", False
        except urllib.error.HTTPError as error:
            return _describe_status(error.code), _is_retried_status(error.code)
        except (OSError, http.client.HTTPException) as error:  # URLError is an OSError
            return _describe_error(error), True
        except ValueError as error:  # a malformed URL
            return f"{type(error).__name__}: {error}", False


def encode_report(
    step: int, metrics: Mapping[str, SupportsFloat], checkpoint: str | None = None
) -> tuple[bytes, list[str]]:
    """The request body for one report, and the names of the metrics left out of it.

    Raises ValueError when `step` is not a non-negative integer.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    kept: dict[str, float] = {}
    left_out: list[str] = []
    for name, value in metrics.items():
        number = _as_finite_float(value)
        if number is None:
            left_out.append(str(name))
        else:
            kept[str(name)] = number
    payload: dict[str, object] = {"step": step, "metrics": kept}
    if checkpoint is not None:
        payload["checkpoint"] = str(checkpoint)
    return json.dumps(payload, allow_nan=False).encode(), left_out


def _as_finite_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_retried_status(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= SERVER_ERROR


def _describe_status(status: int) -> str:
    if status == 401:
        return "HTTP 401: the operator rejected the metrics token"
    return f"HTTP {status}"


def _describe_error(error: Exception) -> str:
    cause = error.reason if isinstance(error, urllib.error.URLError) else error
    return f"{type(cause).__name__}: {cause}"
