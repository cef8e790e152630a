"""`plinth convert -f FILE_OR_DIR [-o DIR] [--strict]`: a whole folder, the warning comment,
strict mode, and bad input. Runs the command in-process on the corpus and on small files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth import cli
from plinth.api.v1alpha1 import API_GROUP, parse_spec
from tests.support.convert import DATA_DIR, convert_one, corpus_document, error_of

CLEAN_JOB = """\
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: clean, namespace: ml}
spec:
  nprocPerNode: "1"
  pytorchReplicaSpecs:
    Worker:
      replicas: 2
      template:
        spec:
          containers:
            - name: pytorch
              image: ghcr.io/acme/train:1.0
              resources: {limits: {nvidia.com/gpu: 1}}
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["convert", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A copy of the corpus folder, with one file in a subfolder."""
    target = tmp_path / "manifests"
    shutil.copytree(DATA_DIR, target)
    (target / "serving").mkdir()
    (target / "inferenceservice-triton.yaml").rename(target / "serving" / "triton.yaml")
    return target


def plinth_documents(text: str) -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(text) if d]
    return [d for d in documents if str(d["apiVersion"]).startswith(f"{API_GROUP}/")]


# --------------------------------------------------------------------------------------
# A whole folder
# --------------------------------------------------------------------------------------


def test_a_folder_converts_to_stdout_with_the_findings_on_top(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, err = run(capsys, "-f", str(folder))
    assert code == 0, err
    header = out.split("\n---\n", 1)[0]
    assert header.startswith("# Converted by `plinth convert`.")
    assert "# PyTorchJob/resnet50 (pytorchjob-resnet.yaml) -> TrainingJob/resnet50" in header
    assert "#   dropped: spec.elasticPolicy.metrics: " in header
    assert "plinth convert: pytorchjob-elastic.yaml: PyTorchJob/bert-elastic: dropped: " in err
    kinds = sorted(d["kind"] for d in plinth_documents(out))
    assert kinds == ["AutoMLSweep", "AutoMLSweep", "ModelDeployment"] + ["TrainingJob"] * 3


def test_every_converted_document_is_valid_and_others_pass_through_unchanged(
    capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    _code, out, _err = run(capsys, "-f", str(folder))
    documents = [d for d in yaml.safe_load_all(out) if d]
    for document in plinth_documents(out):
        parse_spec(document["kind"], document["spec"])
    assert corpus_document("configmap-settings.yaml") in documents
    assert corpus_document("inferenceservice-sklearn.yaml") in documents


def test_output_files_mirror_the_input_files(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "plinth"
    code, out, err = run(capsys, "-f", str(folder), "-o", str(out_dir))
    assert code == 0, err
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*.yaml"))
    assert written == sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml"))
    text = (out_dir / "serving" / "triton.yaml").read_text()
    assert text.startswith("# Converted by `plinth convert`.")
    assert "InferenceService/resnet-onnx (serving/triton.yaml)" in text
    assert [d["kind"] for d in plinth_documents(text)] == ["ModelDeployment"]
    assert str(out_dir / "serving" / "triton.yaml") in out


def test_a_file_whose_fields_all_map_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "clean.yaml"
    source.write_text(CLEAN_JOB)
    code, out, err = run(capsys, "-f", str(source), "--strict")
    assert code == 0, err
    assert out.startswith("# Converted by `plinth convert`: every source field was mapped")
    assert err == ""


def test_multi_line_strings_are_written_as_blocks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = yaml.safe_load(CLEAN_JOB)
    container = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "-c", "import torch\nprint(torch.__version__)\n"]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    _code, out, _err = run(capsys, "-f", str(tmp_path / "job.yaml"))
    assert "  - |\n    import torch\n    print(torch.__version__)\n" in out


def test_a_kubectl_list_is_opened_and_server_fields_are_noted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job = yaml.safe_load(CLEAN_JOB)
    job["metadata"] |= {"uid": "1234", "resourceVersion": "99", "generation": 2}
    job["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    job["status"] = {"conditions": [{"type": "Running", "status": "True"}]}
    listing = {"apiVersion": "v1", "kind": "List", "items": [job]}
    (tmp_path / "list.yaml").write_text(yaml.safe_dump(listing))
    code, out, err = run(capsys, "-f", str(tmp_path / "list.yaml"), "--strict")
    assert code == 0, err
    (document,) = plinth_documents(out)
    assert document["metadata"] == {"name": "clean", "namespace": "ml"}
    for path in ("metadata.uid", "metadata.resourceVersion", "status"):
        assert f"changed: {path}: " in err


# --------------------------------------------------------------------------------------
# --strict and bad input: nothing written
# --------------------------------------------------------------------------------------


def test_strict_refuses_a_folder_with_dropped_fields_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "plinth"
    code, out, err = run(capsys, "-f", str(folder), "-o", str(out_dir), "--strict")
    assert code == 1
    assert out == ""
    assert not out_dir.exists()
    assert (
        "plinth convert: error: pytorchjob-elastic.yaml: PyTorchJob/bert-elastic: "
        "spec.elasticPolicy.metrics: " in err
    )
    assert err.rstrip().endswith("plinth convert: nothing written")


def test_malformed_yaml_is_an_error_naming_the_file_and_line(
    capsys: pytest.CaptureFixture[str], folder: Path, tmp_path: Path
) -> None:
    (folder / "broken.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [x\n")
    out_dir = tmp_path / "plinth"
    code, _out, err = run(capsys, "-f", str(folder), "-o", str(out_dir))
    assert code == 1
    assert "plinth convert: error: broken.yaml: line " in err and "not valid YAML" in err
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- just\n- a list\n", "input.yaml: document 1: not a Kubernetes object"),
        ("kind: PyTorchJob\nmetadata: {name: x}\n", "PyTorchJob/x: apiVersion: is required"),
        (
            CLEAN_JOB.replace(
                "metadata: {name: clean, namespace: ml}", "metadata: {namespace: ml}"
            ),
            "metadata.name: is required",
        ),
        (CLEAN_JOB.replace("name: clean", "name: " + "x" * 60), "metadata.name: 'xxxx"),
        (CLEAN_JOB.replace("replicas: 2", "replicas: [2]"), "replicas: must be an integer"),
    ],
)
def test_documents_that_cannot_be_converted_are_errors_naming_the_path(
    text: str, problem: str
) -> None:
    assert problem in error_of(convert_one(text))


def test_output_over_the_input_is_refused(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    before = (folder / "pytorchjob-resnet.yaml").read_text()
    code, _out, err = run(capsys, "-f", str(folder), "-o", str(folder))
    assert code == 1 and "would overwrite the input" in err
    assert (folder / "pytorchjob-resnet.yaml").read_text() == before


def test_a_missing_input_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(capsys, "-f", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml" in err
