"""The body training code POSTs to the operator's metrics intake (see plinth_client.reporting).

POST /v1/namespaces/<namespace>/trainingjobs/<name>/metrics
Authorization: Bearer <the job's token, from Secret <name>-metrics-token>
{"step": 120, "metrics": {"loss": 0.0123}, "checkpoint": "s3://bucket/run/step-120.pt"}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_METRICS = 32
MetricName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_./-]*$")
]


class MetricsReport(BaseModel):
    """One report: the step, finite metric values, and optionally a checkpoint written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(ge=0, description="The training step the metrics belong to.")
    metrics: Mapping[MetricName, float] = Field(
        default_factory=dict,
        max_length=MAX_METRICS,
        description="Metric name to value; at most 32 names.",
    )
    checkpoint: str | None = Field(
        None, max_length=1024, description="URI of a checkpoint written at this step."
    )
