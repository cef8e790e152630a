"""The chart's Grafana dashboard names only metrics that really exist: every metric name in
every panel's PromQL (and in the dashboard's variable queries) appears in a scrape of a
real running operator (CRDs installed, one TrainingJob reconciled) or of a real
tritonserver that answered one inference (its metrics port, 8002).

Metric names are read out of PromQL by removing, in order, what can look like an
identifier without being a metric: string literals (label values, Grafana's `$namespace`),
label matchers `{...}`, range and subquery selectors `[5m]`, grouping and matching label
lists (`by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left (...)`,
`group_right (...)`), Grafana variables, durations (`offset 5m`) and number literals
(`1e-9`, `0.99`); what is then followed by `(` is a function or aggregation (and must be a
known one); what remains is a keyword or operator word (`bool`, `offset`, `and`, `or`,
`unless`, `inf`, `nan`) or a metric name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    EXAMPLES_DIR,
    REPO_ROOT,
    condition,
    http_get,
    kubectl,
    kubectl_json,
    start_operator,
)
from tests.support.serving import a_modeldeployment
from tests.support.triton import local_triton

pytestmark = pytest.mark.timeout(300)

DASHBOARD = REPO_ROOT / "charts" / "plinth" / "dashboards" / "plinth.json"

#: PromQL's functions and aggregation operators (Prometheus 2.x/3.x), and Grafana's
#: template-variable functions: an identifier followed by `(` must be one of these.
FUNCTIONS = frozenset(
    re.findall(
        r"\S+",
        """
        abs absent absent_over_time acos acosh asin asinh atan atanh avg avg_over_time bottomk
        ceil changes clamp clamp_max clamp_min cos cosh count count_over_time count_values
        day_of_month day_of_week day_of_year days_in_month deg delta deriv exp floor group
        histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev
        histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta
        increase irate label_join label_replace last_over_time limitk limit_ratio ln log10
        log2 mad_over_time max max_over_time min min_over_time minute month predict_linear
        present_over_time quantile quantile_over_time rad rate resets round scalar sgn sin
        sinh sort sort_desc sort_by_label sort_by_label_desc sqrt stddev stddev_over_time
        stdvar stdvar_over_time sum sum_over_time tan tanh time timestamp topk vector year
        label_values metrics query_result
        """,
    )
)
#: Words of PromQL that are neither functions nor metrics.
KEYWORDS = frozenset(["bool", "offset", "and", "or", "unless", "inf", "nan", "atan2"])
#: Clauses whose parenthesised list names labels, not metrics.
LABEL_LIST_CLAUSES = ("by", "without", "on", "ignoring", "group_left", "group_right")

IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGE = re.compile(r"\[[^\[\]]*\]")
LABEL_LIST = re.compile(r"\b(?:" + "|".join(LABEL_LIST_CLAUSES) + r")\s*\([^()]*\)")
DURATION = re.compile(r"(?<![A-Za-z0-9_:])(?:\d+(?:ms|[smhdwy]))+(?![A-Za-z0-9_:])")
NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)")
VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
#: Grafana's label_values(metric, label): only the first argument is a metric.
LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*([^,()]*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)")


def metric_names(expr: str) -> set[str]:
    """Metric names in one PromQL expression; raises on an unknown function."""
    text = LABEL_VALUES.sub(r"\1", expr)
    for pattern in (STRING, MATCHERS, RANGE, LABEL_LIST, VARIABLE, DURATION, NUMBER):
        text = pattern.sub(" ", text)
    names: set[str] = set()
    for match in IDENTIFIER.finditer(text):
        word = match.group()
        if re.match(r"\s*\(", text[match.end() :]):
            assert word in FUNCTIONS, f"unknown PromQL function {word!r} in {expr!r}"
        elif word not in KEYWORDS:
            names.add(word)
    return names


def test_metric_names_are_read_out_of_promql_exactly() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, kind) (rate(x_bucket{namespace="$namespace",'
        ' kind=~"a|b"}[5m]))) / 1e-9 + on (pod) group_left (node) y offset 5m'
        " > bool 2 or vector(0) unless z[1h:30s] and label_values(w, namespace)"
    )
    assert metric_names(expr) == {"x_bucket", "y", "z", "w"}
    with pytest.raises(AssertionError, match="unknown PromQL function 'rates'"):
        metric_names("rates(x[5m])")


def dashboard_expressions(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Every PromQL expression of the dashboard, by where it is (panel title or variable)."""
    found: dict[str, list[str]] = {}

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    for panel in panels(dashboard["panels"]):
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        if exprs:
            found[f"panel {panel['title']!r}"] = exprs
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            text = query.get("query") if isinstance(query, dict) else query
            found[f"variable ${variable['name']}"] = [str(text)]
    return found


def exported_names(page: str) -> set[str]:
    """Sample names of a Prometheus text page (histogram samples carry their suffixes)."""
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in page.splitlines()
        if line and not line.startswith("#")
    }


@pytest.fixture
def operator_page(installed_crds: ClusterInfo, namespace: str, tmp_path: Path) -> Iterator[str]:
    """/metrics of a running operator that has reconciled one TrainingJob."""
    operator = start_operator(installed_crds.kubeconfig, tmp_path / "operator.log")
    try:
        example = EXAMPLES_DIR / "trainingjob-single-node.yaml"
        kubectl(installed_crds, "-n", namespace, "apply", "-f", str(example))
        (job,) = kubectl_json(installed_crds, "-n", namespace, "get", "trainingjobs")["items"]

        def accepted() -> bool:
            found = kubectl_json(
                installed_crds, "-n", namespace, "get", "trainingjob", job["metadata"]["name"]
            )
            return (condition(found, "Accepted") or {}).get("status") == "True"

        wait_for(accepted, what="the TrainingJob accepted", timeout=60)

        pages: list[str] = []

        def counted() -> bool:
            status, page = http_get(operator.url("/metrics"))
            assert status == 200
            pages.append(page)
            ok = 'plinth_reconciles_total{kind="TrainingJob",result="ok"} '
            return any(
                float(line[len(ok) :]) >= 1 for line in page.splitlines() if line.startswith(ok)
            )

        wait_for(counted, what="the reconcile counted", timeout=30)
        yield pages[-1]
    finally:
        operator.stop()


@pytest.fixture
def triton_page(tmp_path: Path) -> Iterator[str]:
    """Metrics of a real tritonserver that has answered one inference."""
    spec = a_modeldeployment().with_runtime(maxBatchSize=8).spec()
    with local_triton(spec, tmp_path) as server:
        client = httpclient.InferenceServerClient(server.http, network_timeout=30)
        wait_for(lambda: client.is_model_ready("scale"), what="model scale ready", timeout=60)
        data = httpclient.InferInput("INPUT", [1, 4], "FP32")
        data.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
        client.infer("scale", [data])
        deadline = time.monotonic() + 10
        status, page = http_get(server.metrics_url)
        while "nv_inference_count{" not in page and time.monotonic() < deadline:
            time.sleep(0.5)
            status, page = http_get(server.metrics_url)
        assert status == 200
        yield page


def test_every_metric_in_the_dashboard_is_exported(operator_page: str, triton_page: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 15, "the dashboard lost its panels"
    exported = exported_names(operator_page) | exported_names(triton_page)
    unknown = {
        f"{name} ({where})"
        for where, exprs in expressions.items()
        for expr in exprs
        for name in metric_names(expr)
        if name not in exported
    }
    assert not unknown, f"the dashboard names metrics no scrape exports: {sorted(unknown)}"
    named = {
        name for exprs in expressions.values() for expr in exprs for name in metric_names(expr)
    }
    # The panels the chart promises: health, reconciles and errors, phases, GPUs, sweeps,
    # Triton queue time and replicas.
    for promised in (
        "plinth_operator_active",
        "plinth_reconciles_total",
        "plinth_reconcile_errors_total",
        "plinth_trainingjobs",
        "plinth_trainingjob_gpus_held",
        "plinth_automlsweep_trials",
        "plinth_modeldeployment_replicas",
        "nv_inference_queue_duration_us",
    ):
        assert promised in named, f"no panel shows {promised}"


def test_reconcile_errors_exist_for_every_kind_from_the_start(operator_page: str) -> None:
    """A dashboard's error panel has a series per kind before any error happened (the
    session cluster is shared: other tests' objects may have erred; only existence counts)."""
    errors = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in operator_page.splitlines()
        if line.startswith("plinth_reconcile_errors_total{")
    }
    assert set(errors) == {
        f'plinth_reconcile_errors_total{{kind="{kind}"}}'
        for kind in ("TrainingJob", "AutoMLSweep", "ModelDeployment")
    }
    assert all(value >= 0 for value in errors.values())
