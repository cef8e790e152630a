"""`plinth convert`: Kubeflow, Katib and KServe YAML into Plinth resources.

| source (apiVersion)                                   | becomes         |
| ----------------------------------------------------- | --------------- |
| PyTorchJob (kubeflow.org/v1)                          | TrainingJob     |
| TrainJob (trainer.kubeflow.org/v1alpha1)              | TrainingJob     |
| Experiment (kubeflow.org/v1beta1, Katib)              | AutoMLSweep     |
| InferenceService (serving.kserve.io/v1beta1, Triton)  | ModelDeployment |

Objects of other kinds pass through unchanged, so a whole folder converts. Every source
field is mapped or named in a finding (changed, dropped, kept) with its path and why; the
output is validated against Plinth's typed specs. Pure: text in, text out; reading and
writing files is the command's business (`plinth.cli`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plinth.api.wellknown import Manifest
from plinth.convert import katib, kserve, pytorchjob, trainjob
from plinth.convert.document import Inputs, Loaded, load, object_metadata, plinth_object, render
from plinth.convert.pods import hint
from plinth.convert.report import ConversionError, Finding, Outcome, Severity, dropped
from plinth.convert.source import Source

Convert = Callable[[Source, Inputs], Manifest | None]


@dataclass(frozen=True)
class SourceKind:
    """A kind `plinth convert` reads, and the Plinth kind it becomes."""

    kind: str
    api_version: str
    target: str
    convert: Convert


SOURCE_KINDS = (
    SourceKind(pytorchjob.KIND, pytorchjob.API_VERSION, "TrainingJob", pytorchjob.convert),
    SourceKind(trainjob.KIND, trainjob.API_VERSION, "TrainingJob", trainjob.convert),
    SourceKind(katib.KIND, katib.API_VERSION_KATIB, "AutoMLSweep", katib.convert),
    SourceKind(kserve.KIND, kserve.API_VERSION, "ModelDeployment", kserve.convert),
)
#: API groups in which the kinds above exist in other versions too (KFServing's included).
KNOWN_GROUPS = {
    pytorchjob.KIND: ("kubeflow.org",),
    trainjob.KIND: ("trainer.kubeflow.org",),
    katib.KIND: ("kubeflow.org",),
    kserve.KIND: ("serving.kserve.io", "serving.kubeflow.org"),
}


@dataclass(frozen=True)
class InputFile:
    """One input: its name (as the output names it) and its YAML text."""

    name: str
    text: str


@dataclass(frozen=True)
class Conversion:
    """Every document's outcome, and the errors that stop the conversion."""

    outcomes: tuple[Outcome, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

    def text(self) -> str:
        """All converted documents, under one comment listing every finding."""
        return render(self.outcomes)

    def files(self) -> dict[str, str]:
        """The converted documents of each input file, under that file's findings."""
        names = dict.fromkeys(outcome.file for outcome in self.outcomes)
        return {name: render([o for o in self.outcomes if o.file == name]) for name in names}

    def messages(self) -> list[str]:
        """One line per finding, naming the file and the document."""
        return [
            f"{outcome.file}: {outcome.source}: {finding.line()}"
            for outcome in self.outcomes
            for finding in outcome.findings
        ]


def convert_files(files: Sequence[InputFile], *, strict: bool = False) -> Conversion:
    """Convert every document of `files`; with `strict`, a dropped field is an error."""
    loaded: list[Loaded] = []
    errors: list[str] = []
    for file in files:
        try:
            loaded += load(file.name, file.text)
        except ConversionError as error:
            errors.append(str(error))
    inputs = Inputs(loaded)
    outcomes: list[Outcome] = []
    for document in loaded:
        try:
            outcomes.append(convert_document(document, inputs))
        except ConversionError as error:
            errors.append(f"{document.file}: {document.label}: {error}")
    if strict:
        errors += [_strict_error(o, f) for o in outcomes for f in dropped(o.findings)]
    return Conversion(tuple(outcomes), tuple(errors))


def _strict_error(outcome: Outcome, finding: Finding) -> str:
    return f"{outcome.file}: {outcome.source}: {finding.path}: {finding.reason} (--strict)"


def convert_document(document: Loaded, inputs: Inputs) -> Outcome:
    """One document's outcome: its Plinth equivalent, or itself when Plinth has none."""
    data = document.data
    if not isinstance(data, Mapping):
        raise ConversionError("", "not a Kubernetes object (a mapping with apiVersion and kind)")
    for key in ("apiVersion", "kind"):
        if not data.get(key):
            raise ConversionError(key, "is required")
    source_kind = find_source_kind(data)
    if source_kind is None:
        return Outcome(document.file, document.label, None, dict(data))
    source = Source.document(copy.deepcopy(data))
    source.take("apiVersion", "kind")
    spec = source_kind.convert(source, inputs)
    findings = source.tracker.findings
    if spec is None:
        return Outcome(document.file, document.label, None, dict(data), tuple(findings))
    metadata = object_metadata(source)
    for path in source.tracker.leftovers():
        source.note(Severity.DROPPED, hint(path[-1], source_kind.target), *path)
    manifest = plinth_object(source_kind.target, metadata, spec)
    target = f"{source_kind.target}/{metadata.get('name') or metadata.get('generateName')}"
    ordered = tuple(sorted(findings, key=lambda finding: finding.path))
    return Outcome(document.file, document.label, target, manifest, ordered)


def find_source_kind(data: Mapping[str, Any]) -> SourceKind | None:
    """The converter of a document; None for kinds Plinth leaves alone. A known kind in a
    version plinth convert does not read is an error."""
    kind, api_version = data.get("kind"), str(data.get("apiVersion"))
    for source_kind in SOURCE_KINDS:
        if (source_kind.kind, source_kind.api_version) == (kind, api_version):
            return source_kind
    if api_version.split("/", maxsplit=1)[0] in KNOWN_GROUPS.get(str(kind), ()):
        readable = [k.api_version for k in SOURCE_KINDS if k.kind == kind]
        raise ConversionError(
            "apiVersion",
            f"{kind} {api_version} is not a version plinth convert reads (it reads "
            f"{', '.join(readable)}); convert the object to that version first",
        )
    return None


__all__ = [
    "SOURCE_KINDS",
    "Conversion",
    "ConversionError",
    "InputFile",
    "Outcome",
    "Severity",
    "SourceKind",
    "convert_document",
    "convert_files",
]
