"""The README's migration section tells the truth: each "before" converts to its "after".

The section "Migrating from Kubeflow, Katib and KServe" holds YAML blocks in pairs: a
source object, then the Plinth object `plinth convert` makes of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.convert import converted

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Migrating from Kubeflow, Katib and KServe"


def yaml_blocks() -> list[Any]:
    text = README.read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


PAIRS = list(zip(yaml_blocks()[::2], yaml_blocks()[1::2], strict=True))


def test_the_section_has_a_pair_for_each_source_kind() -> None:
    kinds = [before["kind"] for before, _after in PAIRS]
    assert kinds == ["PyTorchJob", "TrainJob", "Experiment", "InferenceService"]


@pytest.mark.parametrize(("before", "after"), PAIRS, ids=lambda d: d["kind"])
def test_each_before_converts_to_its_after(before: Any, after: Any) -> None:
    assert converted(before).manifest == after
