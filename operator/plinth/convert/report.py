"""What a conversion says about the source fields: mapped differently, left out, or kept.

Every source field is either mapped, or named in a `Finding` with its path in the source
document (`spec.runPolicy.cleanPodPolicy`) and why. A `ConversionError` is a document that
cannot be converted at all; its message names the path too.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

Key = str | int
#: Where a value sits in a source document: mapping keys and list indexes.
Path = tuple[Key, ...]


class Severity(enum.StrEnum):
    """How a source field fared."""

    #: Mapped, but Plinth's equivalent behaves differently (the reason says how).
    CHANGED = "changed"
    #: No equivalent: left out of the output. `--strict` makes these errors.
    DROPPED = "dropped"
    #: The whole object is kept as it is, unconverted (the reason says why).
    KEPT = "kept"


def format_path(path: Path) -> str:
    """`spec.containers[0].resources.limits['nvidia.com/gpu']`: the path as a user reads it."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif key.replace("_", "a").isalnum():
            text += f".{key}" if text else key
        else:
            text += f"[{key!r}]"
    return text or "<document>"


@dataclass(frozen=True)
class Finding:
    """One source field that was not mapped as it is, and why."""

    path: str
    severity: Severity
    reason: str

    def line(self) -> str:
        return f"{self.severity}: {self.path}: {self.reason}"


class ConversionError(ValueError):
    """A document that cannot be converted; the message names the path and the problem."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


def dropped(findings: Sequence[Finding]) -> list[Finding]:
    """The findings `--strict` refuses."""
    return [finding for finding in findings if finding.severity == Severity.DROPPED]


@dataclass(frozen=True)
class Outcome:
    """One source document: what it became and the findings about its fields."""

    file: str
    source: str
    #: `Kind/name` of the Plinth object it became; None when it is kept as it is.
    target: str | None
    manifest: dict[str, object]
    findings: tuple[Finding, ...] = ()

    def summary(self) -> str:
        if self.target is None:
            return f"{self.source} ({self.file}): kept as it is"
        return f"{self.source} ({self.file}) -> {self.target}"


HEADER = (
    "Converted by `plinth convert`. Review the source fields listed here:",
    "  changed: mapped to a Plinth field that behaves differently (the reason says how)",
    "  dropped: no Plinth equivalent, left out (`plinth convert --strict` refuses these)",
    "  kept:    the object is not converted and stays as it was",
)


def header_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """The comment at the top of the output: every finding, by document."""
    noted = [outcome for outcome in outcomes if outcome.findings]
    if not noted:
        return ["Converted by `plinth convert`: every source field was mapped as it is."]
    lines = list(HEADER)
    for outcome in noted:
        lines += ["", outcome.summary()]
        lines += [f"  {finding.line()}" for finding in outcome.findings]
    return lines
