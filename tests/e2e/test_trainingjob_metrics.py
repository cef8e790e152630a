"""Training code reports metrics to the operator; they show in the TrainingJob's status.

The reporter is the real `plinth_client.MetricsReporter`, configured from the environment
the builder rendered into the job's pods (URL and the token from the job's Secret).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from plinth_client.environment import PlinthEnvironment
from plinth_client.reporting import MetricsReporter
from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import OperatorProcess, kubectl, kubectl_json
from tests.support.cluster import create_job, trainingjob


def pod_environment(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, str]:
    """The env a worker pod would get, with the token resolved from the job's Secret."""
    job = kubectl_json(cluster, "-n", namespace, "get", "job", f"{name}-r0")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    secret = kubectl_json(cluster, "-n", namespace, "get", "secret", f"{name}-metrics-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    env["PLINTH_METRICS_TOKEN"] = token
    env["RANK"] = "0"
    return env


def post(url: str, token: str, body: Any) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture
def reporting_job(
    operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> dict[str, str]:
    create_job(cluster, namespace, "reporter", suspend=True, nodes=1)
    wait_for(
        lambda: (
            kubectl(cluster, "-n", namespace, "get", "job", "reporter-r0", check=False).returncode
            == 0
        ),
        what="attempt 0",
        timeout=30,
    )
    return pod_environment(cluster, namespace, "reporter")


def test_reported_metrics_and_checkpoint_land_in_status(
    reporting_job: dict[str, str], cluster: ClusterInfo, namespace: str
) -> None:
    reporter = MetricsReporter.from_environment(PlinthEnvironment.from_environ(reporting_job))
    assert reporter.report(10, {"loss": 0.9, "accuracy": 0.5})
    assert reporter.report(20, {"loss": 0.4, "accuracy": 0.7}, checkpoint="s3://b/run/step-20.pt")
    assert reporter.report(30, {"loss": 0.6, "accuracy": 0.6})

    def reported() -> bool:
        metrics = trainingjob(cluster, namespace, "reporter").get("status", {}).get("metrics", {})
        return metrics.get("step") == 30

    wait_for(reported, what="metrics in status", timeout=30)
    status = trainingjob(cluster, namespace, "reporter")["status"]
    assert status["metrics"]["latest"] == {"accuracy": 0.6, "loss": 0.6}
    assert status["metrics"]["min"]["loss"] == 0.4
    assert status["metrics"]["max"]["accuracy"] == 0.7
    assert status["lastCheckpoint"] == {
        "uri": "s3://b/run/step-20.pt",
        "step": 20,
        "time": status["lastCheckpoint"]["time"],
    }


def test_a_wrong_token_is_refused_and_no_token_is_ever_shown(
    reporting_job: dict[str, str], operator: OperatorProcess, cluster: ClusterInfo, namespace: str
) -> None:
    url, token = reporting_job["PLINTH_METRICS_URL"], reporting_job["PLINTH_METRICS_TOKEN"]
    assert post(url, "not-the-token", {"step": 1, "metrics": {"loss": 1.0}}) == 401
    assert post(url, token, {"step": -1}) == 400
    assert post(url, token, {"step": 1, "metrics": {"loss": 1.0}}) == 204
    shown = [
        json.dumps(trainingjob(cluster, namespace, "reporter")),
        kubectl(cluster, "-n", namespace, "get", "events", "-o", "json").stdout,
        operator.log_text(),
    ]
    assert not any(token in text for text in shown)


def test_a_token_of_another_job_is_refused(
    reporting_job: dict[str, str], cluster: ClusterInfo, namespace: str
) -> None:
    create_job(cluster, namespace, "neighbour", suspend=True, nodes=1)
    wait_for(
        lambda: (
            kubectl(
                cluster, "-n", namespace, "get", "secret", "neighbour-metrics-token", check=False
            ).returncode
            == 0
        ),
        what="the neighbour's token Secret",
        timeout=30,
    )
    neighbour = pod_environment(cluster, namespace, "neighbour")
    assert neighbour["PLINTH_METRICS_TOKEN"] != reporting_job["PLINTH_METRICS_TOKEN"]
    body = {"step": 1, "metrics": {"loss": 1.0}}
    assert post(reporting_job["PLINTH_METRICS_URL"], neighbour["PLINTH_METRICS_TOKEN"], body) == 401
    assert post(neighbour["PLINTH_METRICS_URL"], reporting_job["PLINTH_METRICS_TOKEN"], body) == 401
    assert post(neighbour["PLINTH_METRICS_URL"], neighbour["PLINTH_METRICS_TOKEN"], body) == 204
