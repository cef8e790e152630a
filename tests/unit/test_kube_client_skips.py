"""What the API client leaves unsent: a merge patch that restates what it last wrote to an
object (RFC 7386 semantics), so a reconcile that changes nothing writes nothing."""

from __future__ import annotations

from plinth.kube.client import _merged, _restates

APPLIED = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "llm-r0", "annotations": {"plinth.dev/carried-failures": "0"}},
    "spec": {"suspend": False, "parallelism": 4},
}


def test_a_patch_of_what_was_applied_restates_it() -> None:
    patch = {
        "metadata": {"annotations": {"plinth.dev/carried-failures": "0", "gone": None}},
        "spec": {"suspend": False},
    }
    assert _restates(patch, APPLIED)


def test_a_patch_that_changes_removes_or_adds_a_field_does_not() -> None:
    assert not _restates({"spec": {"suspend": True}}, APPLIED)
    assert not _restates({"spec": {"parallelism": None}}, APPLIED)
    assert not _restates({"metadata": {"labels": {"team": "a"}}}, APPLIED)
    assert not _restates({"spec": {"parallelism": {"nested": 1}}}, APPLIED)


def test_patches_merge_into_what_is_known_of_the_object() -> None:
    suspended = _merged(APPLIED, {"spec": {"suspend": True}, "metadata": {"annotations": None}})
    assert suspended["spec"] == {"suspend": True, "parallelism": 4}
    assert "annotations" not in suspended["metadata"]
    assert _restates({"spec": {"suspend": True}}, suspended)
    assert APPLIED["spec"] == {"suspend": False, "parallelism": 4}  # not changed in place
