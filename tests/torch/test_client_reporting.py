"""`plinth_client.reporting`: the wire format and the promise never to hurt training.

Delivery to a live operator endpoint is tested with the operator; here the reporter meets
only a port where nothing listens, which is what it sees while the operator restarts.
"""

from __future__ import annotations

import json
import logging
import math
import time

import pytest

from plinth_client import MetricsReporter, PlinthEnvironment
from plinth_client.reporting import ReportPolicy, encode_report
from tests.torch.trainer_harness import free_port

TOKEN = "tok-9f8e7d6c5b4a"
FAST = ReportPolicy(timeout_s=0.5, attempts=3, backoff_s=0.01, cooldown_s=60)


def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1/metrics/default/job"


def test_the_body_carries_step_metrics_and_checkpoint() -> None:
    body, left_out = encode_report(120, {"loss": 0.5, "accuracy": 1}, "file:///c/step-120.pt")

    assert json.loads(body) == {
        "step": 120,
        "metrics": {"loss": 0.5, "accuracy": 1.0},
        "checkpoint": "file:///c/step-120.pt",
    }
    assert left_out == []


def test_the_checkpoint_is_left_out_when_there_is_none() -> None:
    body, _ = encode_report(0, {"loss": 1.5})
    assert json.loads(body) == {"step": 0, "metrics": {"loss": 1.5}}


def test_non_finite_and_non_numeric_metrics_are_left_out() -> None:
    metrics = {"loss": math.nan, "grad": math.inf, "name": "x", "flag": True, "lr": 0.1}
    body, left_out = encode_report(3, metrics)  # type: ignore[arg-type]

    assert json.loads(body) == {"step": 3, "metrics": {"lr": 0.1}}
    assert left_out == ["loss", "grad", "name", "flag"]


@pytest.mark.parametrize("step", [-1, 1.5, True, "3"])
def test_a_step_that_is_not_a_non_negative_integer_is_refused(step: object) -> None:
    with pytest.raises(ValueError, match="step"):
        encode_report(step, {"loss": 1.0})  # type: ignore[arg-type]


def test_a_malformed_report_is_dropped_not_raised() -> None:
    reporter = MetricsReporter(unreachable_url(), TOKEN, policy=FAST)
    assert reporter.report(-1, {"loss": 1.0}) is False
    assert reporter.report(1, ["not", "a", "mapping"]) is False  # type: ignore[arg-type]
    assert reporter.dropped == 2


def test_a_malformed_url_is_dropped_not_raised() -> None:
    reporter = MetricsReporter("not a url", TOKEN, policy=FAST)
    assert reporter.report(1, {"loss": 1.0}) is False
    assert reporter.dropped == 1


def test_reporting_is_off_without_url_and_token() -> None:
    reporter = MetricsReporter.from_environment(PlinthEnvironment())
    assert not reporter.enabled
    assert reporter.report(1, {"loss": 1.0}) is False
    assert (reporter.sent, reporter.dropped) == (0, 0)


def test_only_rank_zero_reports_by_default() -> None:
    env = PlinthEnvironment(
        metrics_url=unreachable_url(), metrics_token=TOKEN, world_size=2, rank=1
    )
    assert not MetricsReporter.from_environment(env).enabled
    assert MetricsReporter.from_environment(env, all_ranks=True).enabled
    assert MetricsReporter.from_environment(
        PlinthEnvironment(metrics_url=unreachable_url(), metrics_token=TOKEN, world_size=2, rank=0)
    ).enabled


def test_an_unreachable_endpoint_drops_the_report_without_raising_or_leaking_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reporter = MetricsReporter(unreachable_url(), TOKEN, policy=FAST)

    with caplog.at_level(logging.DEBUG):
        accepted = reporter.report(1, {"loss": 0.25})

    assert accepted is False
    assert reporter.dropped == 1
    assert "dropped" in caplog.text
    assert "ConnectionRefusedError" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(reporter)


def test_after_a_drop_reports_are_dropped_at_once_for_the_cool_down() -> None:
    reporter = MetricsReporter(unreachable_url(), TOKEN, policy=FAST)
    reporter.report(1, {"loss": 0.25})

    started = time.monotonic()
    for step in range(2, 200):
        assert reporter.report(step, {"loss": 0.25}) is False
    assert time.monotonic() - started < 0.5
    assert reporter.dropped == 199


def test_a_bad_metric_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    reporter = MetricsReporter(unreachable_url(), TOKEN, policy=FAST)
    with caplog.at_level(logging.WARNING):
        for step in range(3):
            reporter.report(step, {"loss": math.nan})
    assert caplog.text.count("'loss' left out") == 1
