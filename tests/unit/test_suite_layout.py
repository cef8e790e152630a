"""The test suite's own rule: no module under tests/ imports a test module.

Shared factories, data and helpers live in support modules (tests/support/,
tests/plinth_testing.py, tests/torch/trainer_harness.py). A test module imported by another
is collected twice, couples two tiers' fixtures, and hides what is shared; this check finds
every `import tests.x.test_y`, `from tests.x.test_y import ...`, `from tests.x import test_y`
and relative form, with the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent


def _package_of(path: Path) -> list[str]:
    return list(path.relative_to(REPO_ROOT).with_suffix("").parts[:-1])


def imported_names(source: str, package: list[str]) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `source` imports, relative imports resolved
    against `package`; `from a import b` yields both `a` and `a.b`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            if node.module:
                base = [*base, *node.module.split(".")]
            yield node.lineno, ".".join(base)
            for alias in node.names:
                yield node.lineno, ".".join([*base, alias.name])


def imports_a_test_module(name: str) -> bool:
    return any(part.startswith("test_") for part in name.split("."))


def offending_imports(path: Path) -> list[str]:
    """One entry per import statement of `path` that imports a test module."""
    by_line: dict[int, str] = {}
    for line, name in imported_names(path.read_text(), _package_of(path)):
        if imports_a_test_module(name) and len(name) < len(by_line.get(line, name + ".")):
            by_line[line] = name
    where = path.relative_to(REPO_ROOT)
    return [f"{where}:{line} imports {name}" for line, name in sorted(by_line.items())]


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = [
        entry for path in sorted(TESTS_DIR.rglob("*.py")) for entry in offending_imports(path)
    ]
    assert not offenders, "move what is shared into tests/support/:\n" + "\n".join(offenders)


def test_the_check_sees_every_form_of_import() -> None:
    package = ["tests", "e2e"]
    sources = [
        "import tests.e2e.test_lifecycle",
        "from tests.e2e.test_lifecycle import create_job",
        "from tests.e2e import test_lifecycle",
        "from .test_lifecycle import create_job",
        "from . import test_lifecycle",
        "from ..unit.test_api_parse import INVALID_SPECS",
    ]
    for source in sources:
        names = [name for _line, name in imported_names(source, package)]
        assert any(imports_a_test_module(name) for name in names), source
    allowed = "from tests.support.factories import a_trainingjob\nimport pytest"
    assert not any(imports_a_test_module(n) for _l, n in imported_names(allowed, package))
