"""The children of a ModelDeployment, pure: complete manifests with GPUs, gpuType affinity,
ports, probes sized for slow loads, the loader init container, ownership; replicas left to
an HPA; the autoscaler's objects; and the model loader's contract (schemes, file names)."""

from __future__ import annotations

import http.server
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth.api.v1alpha1 import MODEL_URI_SCHEMES
from plinth.builders.modeldeployment import build_deployment, modeldeployment_changes
from plinth.builders.render import render_documents
from plinth.serving.repository import DEFAULT_MODEL_FILENAMES, ResolvedModel
from plinth.status.modeldeployment import ModelDeploymentPlan, served
from plinth.status.plan import ChildChanges
from plinth_client import model_loader
from tests.support.serving import SCALE_MODEL, a_modeldeployment


def children(
    factory_fields: dict[str, object] | None = None, replicas: int | None = 2
) -> ChildChanges:
    factory = a_modeldeployment().with_resources(gpus=2, gpuType="NVIDIA-H100-80GB-HBM3")
    if factory_fields:
        factory = factory.with_fields(**factory_fields)
    spec = factory.spec()
    assert spec.model.uri is not None
    model = ResolvedModel("scale", 1, spec.model.format, spec.model.uri)
    plan = ModelDeploymentPlan(
        status=None,  # type: ignore[arg-type]  # the builder never reads it
        target=model,
        target_replicas=replicas,
        serving=served(model),
    )
    return modeldeployment_changes(spec, factory.ref(), plan)


def by_kind(changes: ChildChanges) -> dict[str, dict[str, object]]:
    return {m["kind"]: m for m in changes.apply}


def test_every_child_is_owned_and_the_service_fronts_every_revision() -> None:
    made = by_kind(children())
    assert set(made) == {"Service", "PodDisruptionBudget", "Deployment"}
    for manifest in made.values():
        (owner,) = manifest["metadata"]["ownerReferences"]  # type: ignore[index]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "ModelDeployment",
            "scale",
            True,
        )
    service = made["Service"]
    assert service["spec"]["selector"] == {"plinth.dev/modeldeployment": "scale"}  # type: ignore[index]
    assert [p["port"] for p in service["spec"]["ports"]] == [8000, 8001, 8002]  # type: ignore[index]
    assert made["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1  # type: ignore[index]


def test_triton_pods_get_gpus_ports_and_truthful_probes() -> None:
    deployment = by_kind(children({"runtime": {"startupTimeoutSeconds": 900}}))["Deployment"]
    assert deployment["spec"]["replicas"] == 2  # type: ignore[index]
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    (triton,) = pod["containers"]
    assert triton["resources"] == {
        "requests": {"nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [
        "NVIDIA-H100-80GB-HBM3"
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert [p["containerPort"] for p in triton["ports"]] == [8000, 8001, 8002]
    startup = triton["startupProbe"]
    assert startup["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] == 900
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/models/scale/versions/1/ready"
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "--load-model=scale" in triton["args"] and "--exit-on-error=false" in triton["args"]
    (loader,) = pod["initContainers"]
    assert loader["command"] == ["python3", "-m", "plinth_client.model_loader"]
    assert f"--uri={SCALE_MODEL}" in loader["args"]
    config = next(e["value"] for e in loader["env"] if e["name"] == "PLINTH_MODEL_CONFIG")
    assert 'name: "scale"' in config
    assert loader["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_a_pvc_model_is_mounted_read_only_into_the_loader() -> None:
    changes = children({"model": {"uri": "pvc://models/resnet", "format": "onnx"}})
    pod = by_kind(changes)["Deployment"]["spec"]["template"]["spec"]  # type: ignore[index]
    assert {
        "name": "plinth-model-source",
        "persistentVolumeClaim": {"claimName": "models", "readOnly": True},
    } in pod["volumes"]
    assert "--uri=/mnt/model-source/resnet" in pod["initContainers"][0]["args"]


def test_an_hpa_owns_the_replica_count() -> None:
    fields = {"autoscaling": {"minReplicas": 1, "maxReplicas": 5, "target": 10, "backend": "hpa"}}
    made = by_kind(children(fields, replicas=None))
    assert "replicas" not in made["Deployment"]["spec"]  # type: ignore[operator]
    hpa = made["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == made["Deployment"]["metadata"]["name"]  # type: ignore[index]


def test_plinth_render_prints_a_deployments_children() -> None:
    document = a_modeldeployment().body()
    rendered = render_documents([document])
    assert [m["kind"] for m in rendered.manifests] == [
        "Service",
        "PodDisruptionBudget",
        "Deployment",
    ]
    assert build_deployment  # the builder the operator applies is the one render shows
    assert rendered.waiting_for_cluster == ()


def test_plinth_render_says_a_model_from_a_sweep_has_no_children_without_a_cluster() -> None:
    document = a_modeldeployment().with_model(uri=None, fromSweep={"name": "search"}).body()
    rendered = render_documents([document])
    assert rendered.manifests == ()
    assert rendered.waiting_for_cluster == (f"ModelDeployment/{document['metadata']['name']}",)


# ---- the model loader ----------------------------------------------------------------------


def test_the_loader_fetches_exactly_the_schemes_the_api_admits() -> None:
    assert set(model_loader.FETCHERS) == {"", *MODEL_URI_SCHEMES} - {"pvc"}
    assert {f.value: n for f, n in DEFAULT_MODEL_FILENAMES.items()} == model_loader.FORMAT_FILENAMES


def test_the_loader_copies_a_folder_and_writes_the_config(tmp_path: Path) -> None:
    folder = model_loader.load(str(SCALE_MODEL), "python", tmp_path / "scale", 3, "name: 'x'\n")
    assert (folder / "model.py").is_file() and folder == tmp_path / "scale" / "3"
    assert (tmp_path / "scale" / "config.pbtxt").read_text() == "name: 'x'\n"


@pytest.fixture
def served_files(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving `tmp_path/www`."""
    www = tmp_path / "www"
    www.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(www))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_loader_downloads_files_and_unpacks_archives(served_files: str, tmp_path: Path) -> None:
    www = tmp_path / "www"
    (www / "resnet.onnx").write_bytes(b"onnx")
    with tarfile.open(www / "saved.tar.gz", "w:gz") as archive:
        archive.add(SCALE_MODEL / "model.py", arcname="model.py")
    single = model_loader.load(f"{served_files}/resnet.onnx", "onnx", tmp_path / "a", 1, None)
    assert (single / "model.onnx").read_bytes() == b"onnx"
    unpacked = model_loader.load(f"{served_files}/saved.tar.gz", "python", tmp_path / "b", 1, None)
    assert (unpacked / "model.py").is_file()


def test_the_loader_fails_with_a_reason_on_its_last_line(
    served_files: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = model_loader.main(
        [
            f"--uri={served_files}/missing.onnx",
            "--format=onnx",
            f"--model-dir={tmp_path}",
            "--version=1",
        ]
    )
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "HTTP 404" in last and "missing.onnx" in last
    with pytest.raises(model_loader.LoadError, match="cannot fetch s3://"):
        model_loader.load("s3://bucket/m", "onnx", tmp_path / "s3", 1, None)
