"""The chart's ServiceAccount may do exactly what the operator's code needs — and cannot read
a Secret.

What it may do is asked of the real API server (a SelfSubjectRulesReview with the
ServiceAccount's own token) and compared, rule by rule, with the table below, which is
taken from the code: `plinth.kube.client` (every request the operator sends) and the Kopf
watches of `plinth.runtime.wiring` (every kind and child source of the adapters), plus, in
the release namespace only, the label each replica puts on its own pod
(`plinth.runtime.podrole`). A grant beyond the table fails, and so does a missing one. The
operator then runs every example under that identity.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from plinth_devcluster import ClusterInfo
from plinth_devcluster.waiting import wait_for
from tests.plinth_testing import (
    EXAMPLES_DIR,
    OperatorProcess,
    kubectl,
    kubectl_json,
    start_operator,
)
from tests.support.chart import (
    RELEASE,
    Rule,
    allowed_rules,
    as_identity,
    can_i,
    installed_release,
    service_account_kubeconfig,
)


def rules(group: str, resources: str, verbs: str) -> set[Rule]:
    return {(group, r, v) for r in resources.split() for v in verbs.split()}


#: What the operator needs inside a namespace it watches, and why.
NAMESPACED: set[Rule] = (
    # Kopf lists and watches the three kinds; the intake reads a TrainingJob it has not
    # indexed yet (get); a sweep applies its trials (create, patch) and removes pruned ones;
    # a TrainingJob past its ttlSecondsAfterFinished is deleted.
    rules("plinth.dev", "trainingjobs", "get list watch create patch delete")
    | rules("plinth.dev", "automlsweeps modeldeployments", "list watch")
    | rules(
        "plinth.dev", "trainingjobs/status automlsweeps/status modeldeployments/status", "patch"
    )
    # Children watched (Kopf indexes) and applied / removed by server-side apply.
    | rules("batch", "jobs", "list watch create patch delete")
    | rules("apps", "deployments", "list watch create patch delete")
    | rules("autoscaling", "horizontalpodautoscalers", "list watch create patch delete")
    | rules("", "pods", "list watch")
    # Applied only: headless Service and token Secret of a job (write-only), a deployment's
    # Service and PodDisruptionBudget, a keda ScaledObject.
    | rules("", "services secrets", "create patch")
    | rules("policy", "poddisruptionbudgets", "create patch")
    | rules("keda.sh", "scaledobjects", "create patch delete")
    # TrainingJob gangs: a PodGroup per attempt (native gang scheduling); the quotas and
    # claims a gang is judged against before it is created.
    | rules("scheduling.k8s.io", "podgroups", "create patch delete")
    | rules("", "resourcequotas persistentvolumeclaims", "list")
    | rules("", "events", "create")
)
#: Cluster-wide reads wherever it watches: nodes, the pods that hold GPUs and the attempt
#: Jobs of admitted gangs (to judge whether a gang fits), CRDs (Kopf notices new ones).
CLUSTER_READS: set[Rule] = (
    rules("", "nodes", "get list")
    | rules("", "pods", "list")
    | rules("batch", "jobs", "list")
    | rules("apiextensions.k8s.io", "customresourcedefinitions", "list watch")
)
CLUSTER_PEERING = rules("kopf.dev", "clusterkopfpeerings", "list watch patch")
NAMESPACE_PEERING = rules("kopf.dev", "kopfpeerings", "list watch patch")
#: Kopf, given a list of namespaces, follows them being created and deleted.
NAMESPACE_WATCH = rules("", "namespaces", "list watch")
#: In the release namespace only: each replica merge-patches its own pod's peering-role
#: label (no read first), which the intake Service selects on.
OWN_POD = rules("", "pods", "patch")


@pytest.fixture(scope="module")
def baseline(installed_crds: ClusterInfo, tmp_path_factory: pytest.TempPathFactory) -> set[Rule]:
    """What any ServiceAccount with no bindings may do (the cluster's default roles)."""
    namespace = f"rbac-baseline-{secrets.token_hex(3)}"
    kubectl(installed_crds, "create", "namespace", namespace)
    kubectl(installed_crds, "-n", namespace, "create", "serviceaccount", "nobody")
    path = tmp_path_factory.mktemp("baseline") / "kubeconfig"
    try:
        config = service_account_kubeconfig(installed_crds, namespace, path, account="nobody")
        return allowed_rules(installed_crds, config, "default")
    finally:
        kubectl(installed_crds, "delete", "namespace", namespace, "--wait=false")


@pytest.fixture(scope="module")
def release(installed_crds: ClusterInfo) -> Iterator[str]:
    with installed_release(installed_crds, f"plinth-rbac-{secrets.token_hex(3)}") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def identity(
    installed_crds: ClusterInfo, release: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("identity") / "kubeconfig"
    return service_account_kubeconfig(installed_crds, release, path)


def test_service_account_may_do_exactly_what_the_code_needs(
    installed_crds: ClusterInfo, release: str, identity: Path, baseline: set[Rule]
) -> None:
    watched = NAMESPACED | CLUSTER_READS | CLUSTER_PEERING
    for where, needed in (("default", watched), (release, watched | OWN_POD)):
        granted = allowed_rules(installed_crds, identity, where) - baseline
        assert granted - needed == set(), f"granted beyond what the code needs in {where}"
        assert needed - granted == set(), f"needed by the code but not granted in {where}"
        assert not any("*" in part for rule in granted for part in rule)


def test_service_account_cannot_read_secrets(
    installed_crds: ClusterInfo, release: str, identity: Path, namespace: str
) -> None:
    account = f"{release}:{RELEASE}"
    kubectl(
        installed_crds, "-n", namespace, "create", "secret", "generic", "team-db",
        "--from-literal=password=hunter2",
    )  # fmt: skip
    for where in (namespace, release, "kube-system"):
        for verb in ("get", "list", "watch"):
            assert not can_i(installed_crds, account, verb, "secrets", "-n", where)
    # Real requests with the ServiceAccount's own token: a team's Secret, the chart's own
    # intake key, every Secret in the cluster.
    for request in (
        ("-n", namespace, "get", "secret", "team-db"),
        ("-n", release, "get", "secret", f"{RELEASE}-intake-key"),
        ("get", "secrets", "--all-namespaces"),
    ):
        answer = as_identity(installed_crds, identity, *request, "-o", "name", check=False)
        assert answer.returncode != 0
        assert "Forbidden" in answer.stderr, answer.stderr
        assert "hunter2" not in answer.stdout


def test_watch_namespaces_confines_the_operator(
    installed_crds: ClusterInfo, baseline: set[Rule], tmp_path: Path
) -> None:
    suffix = secrets.token_hex(3)
    team_a, team_b = f"team-a-{suffix}", f"team-b-{suffix}"
    kubectl(installed_crds, "create", "namespace", team_a)
    kubectl(installed_crds, "create", "namespace", team_b)
    try:
        with installed_release(
            installed_crds,
            f"plinth-teams-{suffix}",
            f"watchNamespaces={{{team_a}}}",
            release="plinth-teams",
        ) as release:
            identity = service_account_kubeconfig(
                installed_crds, release, tmp_path / "kc", account="plinth-teams"
            )
            watched = allowed_rules(installed_crds, identity, team_a) - baseline
            elsewhere = allowed_rules(installed_crds, identity, team_b) - baseline
            cluster_wide = CLUSTER_READS | NAMESPACE_WATCH
            home = allowed_rules(installed_crds, identity, release) - baseline
            assert watched == NAMESPACED | NAMESPACE_PEERING | cluster_wide
            assert elsewhere == cluster_wide
            assert home == cluster_wide | OWN_POD
            peering = kubectl_json(installed_crds, "-n", team_a, "get", "kopfpeering", "plinth")
            assert peering["kind"] == "KopfPeering"
    finally:
        kubectl(installed_crds, "delete", "namespace", team_a, team_b, "--wait=false")


def test_operator_runs_every_example_as_the_chart_identity(
    installed_crds: ClusterInfo, identity: Path, namespace: str, tmp_path: Path
) -> None:
    operator: OperatorProcess = start_operator(
        identity, tmp_path / "operator.log", "--peering", "plinth"
    )
    try:
        kubectl(installed_crds, "-n", namespace, "apply", "-f", str(EXAMPLES_DIR))
        names = {
            plural: [item["metadata"]["name"] for item in kubectl_json(
                installed_crds, "-n", namespace, "get", plural)["items"]]
            for plural in ("trainingjobs", "automlsweeps", "modeldeployments")
        }  # fmt: skip

        def children_made() -> bool:
            jobs = kubectl_json(installed_crds, "-n", namespace, "get", "jobs")["items"]
            deployments = kubectl_json(installed_crds, "-n", namespace, "get", "deployments")
            trials = kubectl_json(
                installed_crds, "-n", namespace, "get", "trainingjobs",
                "-l", "plinth.dev/automlsweep",
            )["items"]  # fmt: skip
            owners = {job["metadata"]["labels"].get("plinth.dev/trainingjob") for job in jobs}
            return (
                set(names["trainingjobs"]) <= owners
                and len(trials) > 0
                and len(deployments["items"]) > 0
            )

        wait_for(
            children_made, what="Jobs, trials and Deployments under the chart's RBAC", timeout=90
        )

        def unobserved() -> list[tuple[str, str]]:
            return [
                (plural, name)
                for plural, listed in names.items()
                for name in listed
                if kubectl_json(installed_crds, "-n", namespace, "get", plural, name)
                .get("status", {})
                .get("observedGeneration")
                != 1
            ]

        # a status update superseded by its children's events follows them within seconds
        wait_for(lambda: not unobserved(), what="every status written", timeout=30)
        # An RBAC denial reads `... is forbidden: User "system:serviceaccount:..." cannot
        # <verb> resource ...` (other 403s, e.g. a terminating namespace, are not RBAC's).
        denials = re.findall(
            r'User "system:serviceaccount:[^"]+" cannot [^"]+', operator.log_text()
        )
        assert denials == []
    finally:
        operator.stop()
