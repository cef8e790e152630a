"""checkov (PyPI), a well-kept IaC scanner, passes the rendered chart and the images'
Dockerfiles; every finding left is skipped with its reason in charts/plinth/.checkov.yaml.

checkov pins dependencies older than the project's (packaging<24, among others), so it
lives in its own virtual environment under the plinth cache, made on first use like the
cluster's binaries: `$PLINTH_CACHE_DIR/checkov-venv` (default ~/.cache/plinth/checkov-venv).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from plinth_devcluster.binaries import cache_root, find_binary
from tests.plinth_testing import REPO_ROOT
from tests.support.chart import CHART

CHECKOV_VERSION = "3.3.30"
CONFIG = CHART / ".checkov.yaml"
DOCKERFILES = sorted((REPO_ROOT / "images").glob("*/Dockerfile"))


@pytest.fixture(scope="module")
def checkov() -> Path:
    venv = cache_root() / "checkov-venv"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"],
            check=True,
            timeout=900,
        )
    return binary


def scan(checkov: Path, framework: str, *files: Path) -> dict[str, object]:
    args = [arg for path in files for arg in ("-f", str(path))]
    done = subprocess.run(
        [str(checkov), "--config-file", str(CONFIG), "--framework", framework, "-o", "json",
         "--quiet", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    summary: dict[str, object] = report["summary"]
    failed = [
        (check["check_id"], check["resource"]) for check in report["results"]["failed_checks"]
    ]
    assert failed == [], failed
    return summary


@pytest.mark.parametrize(
    "values", [(), ("watchNamespaces={team-a}",), ("metrics.grafanaDashboard.enabled=true",)]
)
def test_rendered_chart_passes_checkov(
    checkov: Path, tmp_path: Path, values: tuple[str, ...]
) -> None:
    sets = [arg for value in values for arg in ("--set", value)]
    rendered = subprocess.run(
        [str(find_binary("helm", build=False)), "template", "plinth", str(CHART),
         "-n", "plinth-system", *sets],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "chart.yaml").write_text(rendered)
    summary = scan(checkov, "kubernetes", tmp_path / "chart.yaml")
    assert int(str(summary["passed"])) > 50


def test_dockerfiles_pass_checkov(checkov: Path) -> None:
    assert [path.parent.name for path in DOCKERFILES] == ["operator", "serving", "trainer"]
    summary = scan(checkov, "dockerfile", *DOCKERFILES)
    assert int(str(summary["passed"])) > 0
    for path in DOCKERFILES:
        text = path.read_text()
        # Multi-stage, pinned bases (no `latest`, no base chosen by a build argument),
        # a numeric non-root user.
        froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
        assert len(froms) >= 2, path
        assert all(":" in image and not image.endswith(":latest") for image in froms), froms
        assert not any(image.startswith("$") for image in froms), froms
        users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
        assert users and users[-1].split(":")[0].isdigit() and users[-1] != "0", path
