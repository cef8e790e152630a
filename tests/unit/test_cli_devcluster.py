"""The operator's CLI loads the emulated cluster only for `up`, `down`, `status` and `build`.

Each case runs in a fresh interpreter: this test session has imported the emulated cluster
already (its fixtures use it).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

LOADED = (
    "import sys\n"
    "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
    "('plinth_devcluster', 'cryptography'))\n"
    "print(loaded)\n"
)


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_operator_commands_do_not_load_the_emulated_cluster() -> None:
    code = (
        "from plinth.cli import build_parser\n"
        "build_parser().parse_args(['render', '-f', 'x.yaml'])\n"
        "build_parser().parse_args(['run'])\n" + LOADED
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_lists_the_dev_commands_without_loading_them() -> None:
    code = "from plinth.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    result = python(code + LOADED)
    assert result.returncode == 0, result.stderr
    usage, loaded = result.stdout.strip().rsplit("\n", 1)
    assert "{run,crds,render,convert,sweep,up,down,status,spawn,build}" in usage
    assert loaded == "[]"


@pytest.mark.parametrize("command", ["up", "down", "status", "build"])
def test_dev_commands_load_the_emulated_cluster(command: str) -> None:
    code = (
        "from plinth.cli import build_parser\n"
        f"args = build_parser(devcluster=True).parse_args([{command!r}])\n"
        "assert args.func.__module__ == 'plinth_devcluster.cli', args.func.__module__\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr


def test_a_dev_command_without_the_package_says_how_to_install_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['plinth_devcluster'] = None  # as in the operator image\n"
        "from plinth.cli import main\n"
        "sys.exit(main(['up']))\n"
    )
    result = python(code)
    assert result.returncode == 2
    assert "plinth up: the emulated cluster is a dev tool that is not installed" in result.stderr
    assert ".[devcluster]" in result.stderr
