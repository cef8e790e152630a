"""Every file of examples/ (the GitOps ones included) applied as Argo CD or Flux would:
server-side apply, twice, with the operator running in between. The second apply changes
nothing, metadata.generation moves only when the user changes a spec, and Plinth owns no
field of a user's spec or labels (it writes status and its own annotations only).

Argo CD's and Flux's controllers are not part of the emulated cluster: the test installs
minimal CRDs for Application, GitRepository and HelmRelease (schema-less), so their files
are applied by the real API server like any GitOps-managed object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import EXAMPLES_DIR, kubectl, kubectl_json, start_operator

MANAGER = "gitops"
GITOPS_KINDS = [
    ("argoproj.io", "Application", "applications"),
    ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
    ("helm.toolkit.fluxcd.io", "HelmRelease", "helmreleases"),
]
PLINTH_PLURALS = {"TrainingJob": "trainingjobs", "AutoMLSweep": "automlsweeps",
                  "ModelDeployment": "modeldeployments"}  # fmt: skip


def minimal_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    version = (
        "v2" if kind == "HelmRelease" else ("v1" if group.endswith("fluxcd.io") else "v1alpha1")
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [{
                "name": version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def gitops_crds(installed_crds: ClusterInfo) -> ClusterInfo:
    crds = [minimal_crd(*kind) for kind in GITOPS_KINDS]
    text = "\n---\n".join(json.dumps(crd) for crd in crds)
    kubectl(installed_crds, "apply", "--server-side", "-f", "-", input_text=text)
    for crd in crds:
        kubectl(installed_crds, "wait", "--for=condition=Established", "--timeout=60s",
                "crd", crd["metadata"]["name"])  # fmt: skip
    for namespace in ("argocd", "flux-system"):
        kubectl(installed_crds, "create", "namespace", namespace, check=False)
    return installed_crds


def example_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.rglob("*.yaml"))


def apply_all(cluster: ClusterInfo, namespace: str) -> None:
    for path in example_files():
        # Files that name their namespace (the GitOps ones) go there; the others into ours.
        named = [
            d for d in yaml.safe_load_all(path.read_text()) if d and "namespace" in d["metadata"]
        ]
        where = ["-n", namespace] if not named else []
        kubectl(cluster, *where, "apply", "--server-side", f"--field-manager={MANAGER}",
                "-f", str(path))  # fmt: skip


def objects(cluster: ClusterInfo, namespace: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    found = {}
    for path in example_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            where = doc["metadata"].get("namespace", namespace)
            live = kubectl_json(cluster, "-n", where, "get",
                                f"{doc['kind']}.{doc['apiVersion'].split('/')[0]}",
                                doc["metadata"]["name"])  # fmt: skip
            found[(doc["kind"], where, doc["metadata"]["name"])] = live
    return found


def fields_of_others(obj: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """Managers other than the user's, with the top-level fields they own."""
    owned = []
    for entry in obj["metadata"].get("managedFields", []):
        if entry["manager"] != MANAGER:
            fields = entry.get("fieldsV1", {})
            names = [*fields.keys(), *(f"metadata.{k}" for k in fields.get("f:metadata", {}))]
            owned.append((entry["manager"], names))
    return owned


def test_second_apply_changes_nothing_and_plinth_leaves_user_fields_alone(
    gitops_crds: ClusterInfo, namespace: str, tmp_path: Path
) -> None:
    cluster = gitops_crds
    operator = start_operator(cluster.kubeconfig, tmp_path / "operator.log")
    try:
        apply_all(cluster, namespace)

        def all_reconciled() -> bool:
            live = objects(cluster, namespace)
            return all(
                obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
                for (kind, _, _), obj in live.items() if kind in PLINTH_PLURALS
            )  # fmt: skip

        wait_for(all_reconciled, what="every example reconciled", timeout=90)
        first = objects(cluster, namespace)
        apply_all(cluster, namespace)
        second = objects(cluster, namespace)
        for key, obj in first.items():
            assert second[key]["metadata"]["generation"] == obj["metadata"]["generation"], key
            assert second[key]["spec"] == obj["spec"], key
            assert second[key]["metadata"].get("labels") == obj["metadata"].get("labels"), key
            for manager, fields in fields_of_others(second[key]):
                assert "f:spec" not in fields, (key, manager)
                assert "metadata.f:labels" not in fields, (key, manager)

        # A user's change of a spec moves the generation by one, and only there.
        (job_key,) = [k for k in first if k[0] == "TrainingJob" and k[2] == "mlp-single"]
        change = '{"spec": {"activeDeadlineSeconds": 7200}}'
        kubectl(cluster, "-n", namespace, "patch", "trainingjob", "mlp-single", "--type=merge",
                f"--field-manager={MANAGER}", "-p", change)  # fmt: skip
        wait_for(all_reconciled, what="the change reconciled", timeout=60)
        third = objects(cluster, namespace)
        for key, obj in third.items():
            moved = obj["metadata"]["generation"] - first[key]["metadata"]["generation"]
            assert moved == (1 if key == job_key else 0), key
    finally:
        operator.stop()
