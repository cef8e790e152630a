"""What defines one kind of an API version: names, spec and status models, CRD extras.

A `KindInfo` is all the CRD generator needs to write the kind's CustomResourceDefinition,
and all the operator needs to parse its objects and find them on the API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plinth.api.schema.model import ApiModel, StatusModel
from plinth.api.schema.rules import Rule


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`."""

    name: str
    json_path: str
    type: str  # integer | number | string | boolean | date
    description: str
    priority: int = 0  # 1: only with -o wide

    def to_crd(self) -> dict[str, Any]:
        """The column as an entry of a CRD version's `additionalPrinterColumns`."""
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn(
    "Age", ".metadata.creationTimestamp", "date", "Time since the object was created."
)


@dataclass(frozen=True)
class KindInfo:
    """Everything that defines one kind of an API version: names, models, CRD extras."""

    group: str
    version: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[ApiModel]
    status_model: type[StatusModel]
    printer_columns: tuple[PrinterColumn, ...]
    #: Rules on `spec` that compare with the stored object (`oldSelf`).
    spec_transition_rules: tuple[Rule[Any], ...] = ()
    #: Rules on the whole object (only metadata.name/generateName are visible there).
    object_rules: tuple[Rule[Any], ...] = ()

    @property
    def singular(self) -> str:
        """The lowercase kind, as in `kubectl get trainingjob`."""
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        """The objects' apiVersion, e.g. plinth.dev/v1alpha1."""
        return f"{self.group}/{self.version}"
