"""parse_spec at the edge: good specs parse, bad ones are refused naming the field and rule.

The invalid-input corpus lives in tests/support/invalid_specs.py; the integration tier runs
the same cases against a real API server. The tests at the end keep the corpus complete:
every rule the API declares has a case there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from plinth.api.v1alpha1 import (
    API_GROUP,
    API_VERSION,
    KINDS,
    AlgorithmName,
    EarlyStoppingName,
    InvalidSpecError,
    InvalidStatusError,
    TrainingJobSpec,
    TrainingJobStatus,
    parse_spec,
    parse_status,
)
from plinth.builders.render import RenderError, render_documents
from tests.support.invalid_specs import (
    BASES,
    INVALID_NAMES,
    INVALID_SPECS,
    INVALID_UPDATES,
    InvalidCase,
    InvalidName,
    declared_spec_rules,
    merged,
    sweep,
    training_job,
)

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


# --------------------------------------------------------------------------------------
# Valid input
# --------------------------------------------------------------------------------------


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(EXAMPLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and str(document.get("apiVersion", "")).startswith("plinth.dev/"):
                documents.append((f"{path.name}:{document['metadata']['name']}", document))
    return documents


@pytest.mark.parametrize(
    "document", [d for _, d in example_documents()], ids=[name for name, _ in example_documents()]
)
def test_every_example_parses(document: dict[str, Any]) -> None:
    spec = parse_spec(document["kind"], document["spec"])
    assert isinstance(spec, KINDS[document["kind"]].spec_model)


def test_examples_show_every_kind() -> None:
    # Also keeps the example tests here and in the integration tier from running on nothing.
    kinds = {document["kind"] for _, document in example_documents()}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("kind", list(BASES))
def test_the_bases_of_the_invalid_cases_parse(kind: str) -> None:
    # An invalid base would make every case built on it pass for the wrong reason.
    assert isinstance(parse_spec(kind, BASES[kind]()), KINDS[kind].spec_model)


def test_a_minimal_training_job_gets_the_documented_defaults() -> None:
    spec = parse_spec("TrainingJob", {"image": "x", "nodes": 2})
    assert isinstance(spec, TrainingJobSpec)
    assert spec.resources.gpus == 0
    assert spec.restart_policy.backoff_limit == 3
    assert spec.scheduling.gang is True
    assert spec.scheduling.schedule_timeout_seconds == 300
    assert spec.suspend is False
    assert spec.effective_procs_per_node == 1
    assert (spec.min_nodes, spec.max_nodes) == (2, 2)


def test_procs_per_node_defaults_to_one_per_gpu() -> None:
    spec = parse_spec("TrainingJob", {"image": "x", "nodes": 1, "resources": {"gpus": 8}})
    assert spec.effective_procs_per_node == 8


def test_quantities_accept_integers_and_strings_and_keep_the_string_form() -> None:
    spec = parse_spec(
        "TrainingJob", {"image": "x", "nodes": 1, "resources": {"cpu": 4, "memory": "16Gi"}}
    )
    assert (spec.resources.cpu, spec.resources.memory) == ("4", "16Gi")


def test_fields_can_be_given_by_python_name_too() -> None:
    spec = TrainingJobSpec(image="x", nodes=1, procs_per_node=1)
    assert spec.procs_per_node == 1


def test_to_dict_round_trips_in_yaml_spelling() -> None:
    original = merged(
        training_job(),
        {
            "podTemplate": {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}]
            }
        },
    )
    spec = parse_spec("TrainingJob", original)
    dumped = spec.to_dict()
    assert dumped["podTemplate"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert parse_spec("TrainingJob", dumped) == spec


def test_specs_are_immutable() -> None:
    spec = parse_spec("TrainingJob", training_job())
    with pytest.raises(ValueError, match="frozen"):
        spec.image = "other"  # type: ignore[misc]


def test_a_minimal_sweep_gets_the_documented_defaults() -> None:
    spec = parse_spec("AutoMLSweep", sweep())
    assert spec.algorithm.name == AlgorithmName.TPE
    assert spec.early_stopping.name == EarlyStoppingName.NONE
    assert (spec.budget.parallel_trials, spec.budget.max_failed_trials) == (1, 3)


def test_a_minimal_deployment_runs_one_replica_without_canary() -> None:
    spec = parse_spec("ModelDeployment", {"model": {"uri": "https://m/r.onnx", "format": "onnx"}})
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (1, 1)
    assert spec.rollout.canary is None
    assert spec.resources.gpus == 0


def test_categorical_choices_are_integers_or_strings() -> None:
    spec = merged(
        sweep(),
        {
            "parameters": [
                {"name": "batch", "type": "categorical", "values": [32, 64]},
                {"name": "opt", "type": "categorical", "values": ["adam", "sgd"]},
            ]
        },
    )
    parsed = parse_spec("AutoMLSweep", spec)
    assert [p.values for p in parsed.parameters] == [(32, 64), ("adam", "sgd")]
    with pytest.raises(InvalidSpecError, match=r"spec\.parameters\[0\]\.values\[0\]: .*quote"):
        parse_spec(
            "AutoMLSweep",
            merged(
                sweep(), {"parameters": [{"name": "p", "type": "categorical", "values": [0.1]}]}
            ),
        )


# --------------------------------------------------------------------------------------
# Invalid input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.id)
def test_invalid_specs_are_refused_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec(case.kind, case.spec())
    if case.rule is None:
        named = [problem.split(": ", 1)[0] for problem in caught.value.problems]
        assert case.field in named, f"{case.field} not in {caught.value}"
    else:
        expected = f"{case.field}: {case.rule}"
        assert any(
            problem == expected or problem.startswith(f"{expected}: ")
            for problem in caught.value.problems
        ), str(caught.value)


def test_a_template_placeholder_that_names_nothing_is_named_in_the_error() -> None:
    template = {"args": ["--lr=${params.lr}", "--m=${params.momentum}", "--out=${trial.nmae}"]}
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("AutoMLSweep", merged(sweep(), {"trialTemplate": template}))
    (problem,) = caught.value.problems
    assert problem.startswith("spec.trialTemplate: trialTemplate may only refer to")
    assert problem.endswith(": unknown ${params.momentum}, ${trial.nmae}")


def test_a_list_whose_only_item_is_bad_is_not_also_called_empty() -> None:
    one_bad = [{"name": "lr", "type": "float", "min": 1.0, "max": 0.1}]
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("AutoMLSweep", merged(sweep(), {"parameters": one_bad}))
    assert caught.value.problems == [
        "spec.parameters[0].min: min must be less than or equal to max"
    ]
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("AutoMLSweep", merged(sweep(), {"parameters": []}))
    assert [p.split(": ")[0] for p in caught.value.problems] == ["spec.parameters"]


def test_the_error_message_reads_path_colon_problem() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("TrainingJob", merged(training_job(), {"resources": {"gpus": 100}}))
    assert str(caught.value) == "spec.resources.gpus: Input should be less than or equal to 64"
    assert caught.value.kind == "TrainingJob"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_spec("TrainingJob", {"nodes": 0, "resources": {"cpu": "lots"}})
    named = {problem.split(": ", 1)[0] for problem in caught.value.problems}
    assert named == {"spec.image", "spec.nodes", "spec.resources.cpu"}


def test_a_spec_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match=r"^spec: Input should be"):
        parse_spec("TrainingJob", "image: x")  # type: ignore[call-overload]


def test_unknown_kinds_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown kind 'Notebook'"):
        parse_spec("Notebook", {})


# --------------------------------------------------------------------------------------
# The corpus covers every rule
# --------------------------------------------------------------------------------------


def test_rule_messages_tell_the_rules_apart() -> None:
    # The corpus names a rule by its message, so no two rules may share one.
    messages = [rule.message for _, rule in declared_spec_rules()]
    assert len(messages) == len(set(messages)), sorted(messages)


def test_every_cross_field_rule_has_a_bad_input_case() -> None:
    declared = {rule.message: model.__name__ for model, rule in declared_spec_rules()}
    covered = {case.rule for case in INVALID_SPECS if case.rule is not None}
    missing = [
        f"{model}: {message}" for message, model in declared.items() if message not in covered
    ]
    assert not missing, f"rules without a case in tests/support/invalid_specs.py: {missing}"
    assert covered <= set(declared), (
        f"cases of rules that no longer exist: {covered - set(declared)}"
    )


def test_only_rules_without_cel_are_left_to_the_operator() -> None:
    has_cel = {rule.message: rule.cel is not None for _, rule in declared_spec_rules()}
    for case in INVALID_SPECS:
        if case.rule is not None:
            assert case.server_refuses == has_cel[case.rule], case.id
        else:
            assert case.server_refuses, case.id


def test_every_transition_rule_has_a_bad_update_case() -> None:
    declared = {
        (kind, rule.message) for kind, info in KINDS.items() for rule in info.spec_transition_rules
    }
    covered = {(case.kind, case.rule) for case in INVALID_UPDATES}
    assert declared == covered, {"without a case": declared - covered, "stale": covered - declared}


def test_every_object_rule_has_a_bad_name_case() -> None:
    declared = {(kind, rule.message) for kind, info in KINDS.items() for rule in info.object_rules}
    covered = {(case.kind, case.rule) for case in INVALID_NAMES}
    assert declared == covered, {"without a case": declared - covered, "stale": covered - declared}


@pytest.mark.parametrize("case", INVALID_NAMES, ids=lambda c: c.id)
def test_plinth_render_refuses_every_bad_name_with_the_rules_message(case: InvalidName) -> None:
    document = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": case.kind,
        "metadata": {"name": case.name},
        "spec": BASES[case.kind](),
    }
    with pytest.raises(RenderError) as refused:
        render_documents([document])
    assert case.field in str(refused.value)
    assert case.rule in str(refused.value)


def test_every_update_case_is_a_valid_spec_the_stored_object_forbids() -> None:
    # A transition case must fail only because of the stored object, not as a new spec.
    for case in INVALID_UPDATES:
        parse_spec(case.kind, merged(BASES[case.kind](), case.changes))


# --------------------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------------------


def test_a_new_object_has_an_empty_status() -> None:
    status = parse_status("TrainingJob", None)
    assert isinstance(status, TrainingJobStatus)
    assert status.phase is None
    assert status.restarts == 0


def test_status_ignores_fields_it_does_not_know() -> None:
    status = parse_status("TrainingJob", {"phase": "Running", "fromNewerOperator": 1})
    assert status.phase == "Running"


def test_status_round_trips_with_kubernetes_timestamps() -> None:
    raw = {
        "phase": "Running",
        "conditions": [
            {
                "type": "Running",
                "status": "True",
                "reason": "AllWorkersRunning",
                "message": "2/2 workers running",
                "lastTransitionTime": "2025-01-02T03:04:05Z",
                "observedGeneration": 1,
            }
        ],
        "startTime": "2025-01-02T03:04:05.123456+00:00",
    }
    dumped = parse_status("TrainingJob", raw).to_dict()
    assert dumped["conditions"][0]["lastTransitionTime"] == "2025-01-02T03:04:05Z"
    assert dumped["startTime"] == "2025-01-02T03:04:05Z"


def test_bad_status_names_the_field() -> None:
    with pytest.raises(InvalidStatusError, match=r"status\.restarts: "):
        parse_status("TrainingJob", {"restarts": -1})
